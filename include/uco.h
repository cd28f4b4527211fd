/*
 * uco: io_uring coroutines for C.
 *
 * A coroutine (a "task") is a C function running on its own small stack.
 * Every await fills an io_uring SQE and parks the task; the runtime's
 * completion reactor resumes it with the CQE's result.  One runtime runs
 * per thread, started by uco_run().
 *
 * Conventions (as in liburing): functions that can fail return >= 0 on
 * success and -errno on failure; errno is never used to report errors.
 * Calls that may suspend say so.  Calls that await return -EPERM when made
 * outside a coroutine (Python's "await outside async def").
 */
#ifndef UCO_H
#define UCO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct io_uring_sqe;
struct open_how;
struct statx;

/* A task: opaque, owned by the runtime until joined or detached. */
typedef struct uco_task uco_task;

/* A task's entry function; its return value is what uco_join() reports. */
typedef intptr_t (*uco_fn)(void *arg);

/* Default stack size of a task: 256 KiB of address space, committed lazily
 * (an idle task touches one or two pages).  A guard page sits below. */
#define UCO_STACK_DEFAULT ((size_t)256 * 1024)
/* Smallest stack accepted by uco_spawn_ex(). */
#define UCO_STACK_MIN ((size_t)16 * 1024)

#define UCO_NSEC(n) ((uint64_t)(n))
#define UCO_USEC(n) ((uint64_t)(n) * 1000u)
#define UCO_MSEC(n) ((uint64_t)(n) * 1000000u)
#define UCO_SEC(n) ((uint64_t)(n) * 1000000000u)

/* Runtime settings for uco_run(); zero fields take the defaults. */
typedef struct uco_config {
    size_t stack_size;        /* default task stack; 0 = UCO_STACK_DEFAULT */
    unsigned ring_entries;    /* SQ size (CQ is 4x); 0 = 256 */
    unsigned stack_pool;      /* freed stacks kept for reuse, and as many joined
                                 tasks' structs; 0 = 256 (a burst may leave up
                                 to 32x more stacks, reusable, unmapped while
                                 the loop is idle) */
    unsigned flags;           /* UCO_CFG_* */
    unsigned offload_threads; /* uco_offload() pool size; 0 = 4 */
    unsigned debug_slow_ms;   /* debug mode: warn past this run time; 0 = 100 */
    /* Timer slack: sleeps and deadlines end no earlier than asked and at
     * most this much later, rounded up to a multiple of it, so that timers
     * due close together share one expiry (a timer interrupt each is what
     * makes 10,000 concurrent sleeps late).  0 = 50 us; 1 = none. */
    unsigned timer_slack_ns;
} uco_config;

/* Do not ask the kernel for IORING_SETUP_DEFER_TASKRUN / SINGLE_ISSUER
 * (the runtime also falls back by itself when the kernel refuses them). */
#define UCO_CFG_NO_DEFER_TASKRUN 1u
/* Debug mode (also turned on by the environment variable UCO_DEBUG=1):
 * warns on stderr, naming the task, when a task runs longer than
 * debug_slow_ms without awaiting (asyncio's slow-callback warning), and at
 * exit lists the tasks that finished but were never joined or detached. */
#define UCO_CFG_DEBUG 2u

/*
 * asyncio.run(): starts a runtime on the calling thread, runs fn(arg) as the
 * main task and returns its result once main and every task it spawned
 * (directly or not, joined or not) have finished.  Tasks still running when
 * main returns keep running; uco_run waits for them and frees those never
 * joined.  cfg may be NULL.
 * Returns main's result, or -EBUSY when called inside a runtime (never nest
 * uco_run), -EINVAL for a bad cfg, -ENOMEM, a ring setup error, or
 * -EDEADLK when every task is parked with nothing in flight that could
 * wake one (the parked tasks are discarded).  Main should return >= 0 to
 * keep its result apart from these errors.
 * Known kernel behaviour: the kernel finishes tearing the ring down with
 * task work on the calling thread shortly after uco_run returns, so one
 * blocking system call made soon after on that thread that cannot be
 * restarted (a recv with SO_RCVTIMEO, epoll_wait ...) may fail with EINTR
 * once; retry it.
 */
intptr_t uco_run(uco_fn fn, void *arg, const uco_config *cfg);

/* asyncio.create_task(): spawns fn(arg) as a new task, runnable at once
 * (it first runs when the caller next awaits or yields).  Returns NULL
 * outside a runtime or when out of memory.  Does not suspend. */
uco_task *uco_spawn(uco_fn fn, void *arg);

/* uco_spawn() with a stack of stack_size bytes (0 = the runtime default,
 * rounded up to whole pages).  Stores the task in *out.  Returns 0,
 * -EPERM outside a runtime, -EINVAL for a stack under UCO_STACK_MIN,
 * -ENOMEM. */
int uco_spawn_ex(uco_task **out, uco_fn fn, void *arg, size_t stack_size);

/* Awaits task t and frees it; its result goes to *result (may be NULL).
 * Each task is joined at most once.  May suspend.  Returns 0, -EPERM
 * outside a coroutine, -EDEADLK when t is the caller, -EINVAL when t is
 * NULL, detached, or already has a joiner. */
int uco_join(uco_task *t, intptr_t *result);

/* asyncio.gather(): joins the n tasks in order, results[i] for tasks[i]
 * (results may be NULL).  Always joins every task; returns 0 or the first
 * error from uco_join().  May suspend. */
int uco_gather(uco_task *const *tasks, size_t n, intptr_t *results);

/* Lets t run without a joiner: its memory is freed when it finishes.
 * Returns 0, or -EINVAL when t is NULL, already detached or joined. */
int uco_detach(uco_task *t);

/* Lets every other runnable task run once, then resumes.  Returns 0, or
 * -EPERM outside a coroutine. */
int uco_yield(void);

/* The running task, or NULL outside a coroutine. */
uco_task *uco_self(void);

/* asyncio.sleep(): suspends the caller for nsec nanoseconds on
 * CLOCK_MONOTONIC (a timer kept by the runtime, no SQE per sleep: the loop
 * waits in the kernel until the earliest timer is due); 0 yields.  Returns
 * 0, -ETIMEDOUT when a deadline scope ends first, -ECANCELED, or -EPERM
 * outside a coroutine. */
int uco_sleep(uint64_t nsec);

/*
 * Custom awaitables (Python's __await__), built from any io_uring operation:
 *     struct io_uring_sqe *sqe = uco_sqe();
 *     io_uring_prep_xxx(sqe, ...);
 *     int res = uco_await(sqe);
 * uco_sqe() returns a cleared SQE of the running runtime's ring (the full
 * queue is submitted first when needed; NULL outside a coroutine).  The
 * caller preps it, leaves user_data alone, and awaits it before any other
 * await.  uco_await() submits it with the next batch, parks the caller and
 * returns the CQE's res (>= 0 or -errno).  Memory the SQE points to must
 * stay valid until uco_await returns.  -EPERM outside a coroutine, -EINVAL
 * for a NULL sqe.
 */
struct io_uring_sqe *uco_sqe(void);
int uco_await(struct io_uring_sqe *sqe);

/* Same, also storing the CQE's flags (IORING_CQE_F_*) in *cqe_flags. */
int uco_await_flags(struct io_uring_sqe *sqe, unsigned *cqe_flags);

/*
 * Park / wake, for awaitables that are not io_uring operations.
 * uco_park() suspends the caller until another task of the same runtime
 * calls uco_wake(t, value); it then returns value.  -EPERM outside a
 * coroutine.  uco_wake() makes a parked task runnable and does not
 * suspend; it returns 0, -EINVAL when t is not parked in uco_park(), or
 * -EPERM outside the runtime that owns t.
 */
int uco_park(void);
int uco_wake(uco_task *t, int value);

/* ------------------------------------------------------------------ */
/* Time, deadlines, cancellation                                       */
/* ------------------------------------------------------------------ */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t uco_now(void);

/*
 * asyncio.timeout() / wait_for(): every await of the calling task made
 * before uco_timeout_end() fails with -ETIMEDOUT once nsec have passed
 * (an operation in flight at that moment is cancelled by the runtime's
 * timer, an IORING_OP_ASYNC_CANCEL; its final completion is awaited first,
 * and a result that beat the cancel is kept).  Scopes
 * nest: the earliest deadline wins.  *saved receives the enclosing
 * deadline, to give back to uco_timeout_end().  Both return 0, or -EPERM
 * outside a coroutine (-EINVAL for a NULL saved).
 */
int uco_timeout_begin(uint64_t nsec, uint64_t *saved);
int uco_timeout_end(uint64_t saved);

/*
 * Cancels task t (asyncio's Task.cancel()).  If t is parked in an
 * operation, a wait, a join, a sleep or an offload, that await returns
 * -ECANCELED; the runtime first waits for the cancelled operation's final
 * completion, so no buffer is written after the await returns.  If that
 * operation completed anyway (bytes received, an fd accepted), its result
 * is returned instead, nothing is lost, and the cancellation stays pending:
 * it is delivered as -ECANCELED by t's next await.  The same holds when t
 * is runnable or is the caller itself.  Delivery consumes the request, so a
 * cancelled task can still await to clean up (close fds, free memory).
 * Returns 1 when a cancellation was requested (or already pending), 0 when
 * t had already finished (nothing to do), -EINVAL for NULL, -EPERM when t
 * belongs to another runtime.  Does not suspend.
 */
int uco_cancel(uco_task *t);

/* asyncio.wait(FIRST_COMPLETED): waits until one of the n tasks has
 * finished and returns its index (the lowest, if several have); joins
 * none of them.  -EINVAL for n == 0, -ETIMEDOUT, -ECANCELED, -EPERM. */
int uco_wait_any(uco_task *const *tasks, size_t n);

/* ------------------------------------------------------------------ */
/* Files.  Each call is one io_uring operation; each may suspend.       */
/* Offsets: >= 0 is positional (pread), -1 uses and moves the file's    */
/* current position (read).  Reads and writes may be short, as the      */
/* system calls are; uco_write_all() loops.  -errno on failure.         */
/* ------------------------------------------------------------------ */

int uco_open(const char *path, int flags, mode_t mode);            /* openat(AT_FDCWD) */
int uco_openat(int dfd, const char *path, int flags, mode_t mode);
/* openat2(2): how->resolve takes RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS ... */
int uco_openat2(int dfd, const char *path, const struct open_how *how);
ssize_t uco_read(int fd, void *buf, size_t len, int64_t offset);
ssize_t uco_write(int fd, const void *buf, size_t len, int64_t offset);
ssize_t uco_readv(int fd, const struct iovec *iov, int iovcnt, int64_t offset);
ssize_t uco_writev(int fd, const struct iovec *iov, int iovcnt, int64_t offset);
/* splice(2): moves up to len bytes from fd_in to fd_out inside the kernel;
 * one must be a pipe (offset -1).  Returns bytes moved (may be short), 0 at
 * end of input, -EINVAL without a pipe, -ESPIPE for an offset on a pipe,
 * -EAGAIN only with SPLICE_F_NONBLOCK.  Deadlines hold while it waits for a
 * pipe or an O_NONBLOCK socket; a blocking socket end ignores them. */
ssize_t uco_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out, size_t len,
                   unsigned flags);
/* Writes all len bytes (advancing offset unless it is -1): returns len, or
 * -errno with *done (may be NULL) telling how many bytes were written. */
ssize_t uco_write_all(int fd, const void *buf, size_t len, int64_t offset, size_t *done);
int uco_fsync(int fd);
int uco_fdatasync(int fd);
int uco_statx(int dfd, const char *path, int flags, unsigned mask, struct statx *out);
/* Closes fd.  Not a cancellation point: it runs even with a cancellation
 * pending, so cancelled tasks can always clean up.  As with close(2), the
 * file itself is released when its last reference drops: an operation that
 * ran in one of io_uring's workers (shutdown, for one) can hold it a moment
 * longer, so a peer may see the close just after this returns. */
int uco_close(int fd);
int uco_fallocate(int fd, int mode, int64_t offset, int64_t len);
int uco_unlink(const char *path);
int uco_rename(const char *from, const char *to);
int uco_mkdir(const char *path, mode_t mode);

/* ------------------------------------------------------------------ */
/* Sockets.  Sends never raise SIGPIPE (MSG_NOSIGNAL): a closed peer    */
/* gives -EPIPE.  recv returns 0 at end of stream.                      */
/* ------------------------------------------------------------------ */

int uco_socket(int domain, int type, int protocol);
int uco_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);
/* Returns the new fd (flags: SOCK_NONBLOCK, SOCK_CLOEXEC); addr may be NULL. */
int uco_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);
ssize_t uco_recv(int fd, void *buf, size_t len, int flags);
ssize_t uco_send(int fd, const void *buf, size_t len, int flags);
/* Sends all len bytes: returns len, or -errno with *done bytes sent. */
ssize_t uco_send_all(int fd, const void *buf, size_t len, size_t *done);
ssize_t uco_recvmsg(int fd, struct msghdr *msg, int flags);
ssize_t uco_sendmsg(int fd, const struct msghdr *msg, int flags);
int uco_shutdown(int fd, int how);

/* A listening TCP socket on host:port (IPv4 or IPv6 literal or name;
 * NULL or "" = all IPv6 and IPv4 addresses), SO_REUSEADDR, close-on-exec.
 * port 0 picks a free port: read it back with uco_local_port(). */
int uco_listen_tcp(const char *host, uint16_t port, int backlog);
/* asyncio.open_connection(): resolves host off the loop (getaddrinfo runs
 * on the offload pool) and connects to each address in turn.  Returns the
 * connected fd, -ENOENT when the name does not resolve, or the last
 * connect error (-ECONNREFUSED ...). */
int uco_dial_tcp(const char *host, uint16_t port);
/* The local port of a bound socket, or -errno.  Does not suspend. */
int uco_local_port(int fd);

/* Awaits readiness of any fd (IORING_OP_POLL_ADD), for libraries with a
 * non-blocking API of their own.  events: POLLIN, POLLOUT ...  Returns
 * the revents mask. */
int uco_wait_fd(int fd, unsigned events);

/* A multishot accept: one SQE keeps accepting into a queue.
 * uco_acceptor_next() returns the next accepted fd (the caller owns it);
 * uco_acceptor_close() stops accepting, waits for the kernel to let go,
 * closes fds accepted but never taken and frees the acceptor; -EBUSY while
 * another task waits in uco_acceptor_next() (cancel that task first).
 * An error that ends the multishot (-EMFILE ...) is returned once by next;
 * the call after it re-arms. */
typedef struct uco_acceptor uco_acceptor;
int uco_accept_multishot(int fd, int flags, uco_acceptor **out);
int uco_acceptor_next(uco_acceptor *a);
int uco_acceptor_close(uco_acceptor *a);

/* A ring of provided buffers (IORING_REGISTER_PBUF_RING): the kernel picks
 * a buffer when data arrives, so idle connections hold no memory.  Each
 * buffer handed out must be given back with uco_buf_release().  One ring
 * can serve many streams (see below); nbufs is a power of 2, <= 32768.
 * The kernel takes buffers in FIFO order, so only about one per stream on
 * the ring, plus a margin (64 at least), is kept in its hands; the rest
 * wait in a LIFO reserve that refills it as buffers are taken (and grows
 * it when the kernel still finds it empty).  The buffers in use then stay
 * in the caches however large nbufs is. */
typedef struct uco_bufring uco_bufring;
int uco_bufring_create(unsigned nbufs, size_t buf_size, uco_bufring **out);
/* -EBUSY while buffers are out or streams are open on br. */
int uco_bufring_destroy(uco_bufring *br);
void uco_buf_release(uco_bufring *br, unsigned id);
/* One recv into a buffer of br: returns the length (0 at end of stream)
 * and sets *buf and *id, or -errno (-ENOBUFS when all buffers are out). */
ssize_t uco_recv_buf(int fd, uco_bufring *br, void **buf, unsigned *id);

/* A multishot recv through br: uco_recv_stream_next() returns the next
 * chunk as uco_recv_buf() does, 0 at end of stream.  A stream holds at
 * most max_bufs buffers (queued or handed out, not yet released; 0 means
 * UCO_RECV_STREAM_BUFS; at most nbufs): at the cap its recv is stopped,
 * and restarted when a release takes it below, so a reader that falls
 * behind (or never reads) cannot drain a ring that other streams share;
 * the peer is pushed back by TCP flow control.  (Kernels before 6.17 take
 * no byte limit on a multishot recv: there the stream may take a few
 * more before its cancel lands.)  Size a shared ring for
 * max_bufs times the streams that may hold buffers at once.  When the
 * ring runs dry the stream waits, without spinning, and streams are
 * re-armed in the order they ran dry as buffers come back.  next()
 * returns -ENOBUFS only when waiting would wait for the caller: it holds
 * max_bufs buffers of this stream, or the ring is dry and no other stream
 * holds any.  Uses one-shot recvs (one SQE per chunk, same behaviour) on
 * kernels without multishot recv and on sockets other than IPv4 and
 * IPv6: on an AF_UNIX socket whose data and end of stream are both queued
 * when the recv is armed, Linux (6.18, raw liburing too) delivers the data
 * and never the end of stream; TCP reports the pending FIN. */
#define UCO_RECV_STREAM_BUFS 8
typedef struct uco_recv_stream uco_recv_stream;
int uco_recv_multishot(int fd, uco_bufring *br, uco_recv_stream **out);
int uco_recv_multishot_max(int fd, uco_bufring *br, unsigned max_bufs, uco_recv_stream **out);
ssize_t uco_recv_stream_next(uco_recv_stream *s, void **buf, unsigned *id);
/* Stops the stream, waits for the kernel to let go and gives queued
 * buffers back (buffers handed out stay the caller's to release); -EBUSY
 * while a task waits in next(). */
int uco_recv_stream_close(uco_recv_stream *s);

/* ------------------------------------------------------------------ */
/* Sync primitives between the tasks of one runtime.  Every call that   */
/* may wait is a cancellation point even when it would not wait: a      */
/* pending cancel or a passed deadline is returned first (-ECANCELED,   */
/* -ETIMEDOUT).  None spins or allocates per operation.  Objects are    */
/* created outside or inside a runtime and destroyed when no task waits */
/* on them (-EBUSY otherwise).  Waking calls (close, unlock, release,   */
/* set, add/done) return -EPERM, changing nothing, when tasks wait and  */
/* the caller is not on their runtime's thread.  *_create sets *out to  */
/* NULL on failure (-EINVAL, -ENOMEM).                                  */
/* ------------------------------------------------------------------ */

/* A bounded channel of elem_size-byte items (cap 0: each send waits for
 * a receiver).  send copies *elem in; recv copies an item to *out.  After
 * uco_chan_close(): send returns -EPIPE, recv drains what is buffered and
 * then returns -EPIPE; every waiter is woken with -EPIPE. */
typedef struct uco_chan uco_chan;
int uco_chan_create(size_t elem_size, size_t cap, uco_chan **out);
int uco_chan_send(uco_chan *c, const void *elem);
int uco_chan_recv(uco_chan *c, void *out);
int uco_chan_close(uco_chan *c);
int uco_chan_destroy(uco_chan *c); /* -EBUSY while tasks wait on it */

/* A mutex handed over in FIFO order. */
typedef struct uco_mutex uco_mutex;
int uco_mutex_create(uco_mutex **out);
int uco_mutex_lock(uco_mutex *m);    /* -EDEADLK if the caller holds it */
int uco_mutex_trylock(uco_mutex *m); /* 0, or -EBUSY; does not suspend; -EPERM outside a task */
int uco_mutex_unlock(uco_mutex *m);  /* -EPERM if the caller is not the owner */
int uco_mutex_destroy(uco_mutex *m);

typedef struct uco_sem uco_sem;
int uco_sem_create(unsigned value, uco_sem **out);
int uco_sem_acquire(uco_sem *s);
int uco_sem_release(uco_sem *s); /* -EOVERFLOW at UINT_MAX */
int uco_sem_destroy(uco_sem *s);

/* An event: wait returns at once while set; set wakes every waiter. */
typedef struct uco_event uco_event;
int uco_event_create(uco_event **out);
int uco_event_set(uco_event *e);
int uco_event_clear(uco_event *e);
int uco_event_wait(uco_event *e);
int uco_event_destroy(uco_event *e);

/* A wait group (Go's sync.WaitGroup): wait returns when the count is 0. */
typedef struct uco_wg uco_wg;
int uco_wg_create(uco_wg **out);
int uco_wg_add(uco_wg *g, int delta); /* -EINVAL if the count would go negative */
int uco_wg_done(uco_wg *g);
int uco_wg_wait(uco_wg *g);
int uco_wg_destroy(uco_wg *g);

/* ------------------------------------------------------------------ */
/* Blocking offload (asyncio.to_thread)                                 */
/* ------------------------------------------------------------------ */

/* Runs fn(arg) on the runtime's bounded thread pool (uco_config.
 * offload_threads, at most 1024) and awaits its return value in *result
 * (result may be NULL), without blocking the loop: completion reaches the
 * ring through an eventfd.  For blocking calls and CPU-heavy work.
 * Returns 0; -EPERM outside a coroutine; -EINVAL for a NULL fn;
 * -ECANCELED or -ETIMEDOUT when cancelled or past the deadline before fn
 * started (fn then never runs); -EAGAIN when no worker thread could be
 * started; -EMFILE/-ENFILE/-ENOMEM when the pool could not be set up.
 * Once fn has started it runs to the end and its result is returned; a
 * cancel that came meanwhile is delivered by the next await. */
int uco_offload(intptr_t (*fn)(void *arg), void *arg, intptr_t *result);

#ifdef __cplusplus
}
#endif
#endif /* UCO_H */
