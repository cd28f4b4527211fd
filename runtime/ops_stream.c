/* Multishot operations: one SQE, many completions, queued in an object
 * until a task takes them.  The acceptor (multishot accept), provided
 * buffer rings and the multishot recv stream. */
#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define container_of(p, T, m) ((T *)((char *)(p) - offsetof(T, m)))

/* Wakes the first task waiting for a result, if any. */
static void wake_first(struct uco_rt *rt, struct waitq *q)
{
    if (q->head)
        sched_wake_node(rt, q->head, 0);
}

/* Waits until the object's operation has delivered its final completion. */
static void wait_disarmed(struct uco_rt *rt, struct waitq *q, const bool *armed)
{
    while (*armed) {
        struct wnode n = {.task = rt->current};
        waitq_push(q, &n);
        sched_wait_until_fired(rt, &n);
    }
}

/* ---- acceptor ---- */

struct uco_acceptor {
    struct uco_rt *rt;
    struct uco_op op;
    int fd, flags;
    int *fds;          /* accepted, not yet taken (a growable ring) */
    unsigned head, len, cap;
    int err;           /* an error that ended the multishot, reported once */
    bool armed, closing;
    struct waitq waiters;
};

static int acc_push(struct uco_acceptor *a, int fd)
{
    if (a->len == a->cap) {
        unsigned cap = a->cap ? a->cap * 2 : 64;
        int *n = malloc(cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        for (unsigned i = 0; i < a->len; i++)
            n[i] = a->fds[(a->head + i) % a->cap];
        free(a->fds);
        a->fds = n;
        a->head = 0;
        a->cap = cap;
    }
    a->fds[(a->head + a->len++) % a->cap] = fd;
    return 0;
}

static void acc_handler(struct uco_rt *rt, struct uco_op *op, int res, unsigned flags)
{
    struct uco_acceptor *a = container_of(op, struct uco_acceptor, op);
    if (res >= 0) {
        if (acc_push(a, res) < 0) { /* no room: refuse this one, keep going */
            close(res);
            a->err = -ENOMEM;
        }
    } else if (res != -ECANCELED || !a->closing) {
        a->err = res;
    }
    if (!(flags & IORING_CQE_F_MORE)) {
        a->armed = false;
        sched_wake_all(rt, &a->waiters, 0); /* the closer waits here too */
    } else {
        wake_first(rt, &a->waiters);
    }
}

static void acc_arm(struct uco_acceptor *a)
{
    struct io_uring_sqe *sqe = reactor_sqe(a->rt);
    io_uring_prep_multishot_accept(sqe, a->fd, NULL, NULL, a->flags);
    reactor_arm(a->rt, sqe, &a->op);
    a->armed = true;
}

int uco_accept_multishot(int fd, int flags, uco_acceptor **out)
{
    struct uco_rt *rt = uco_rt_cur;
    if (!rt || !rt->current)
        return -EPERM;
    if (!out || fd < 0)
        return -EINVAL;
    struct uco_acceptor *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->rt = rt;
    a->fd = fd;
    a->flags = flags;
    a->op.handler = acc_handler;
    acc_arm(a);
    *out = a;
    return 0;
}

int uco_acceptor_next(uco_acceptor *a)
{
    if (!a)
        return -EINVAL;
    struct uco_rt *rt = uco_rt_cur;
    if (!rt || !rt->current || a->rt != rt)
        return -EPERM;
    for (;;) {
        if (a->len) {
            int fd = a->fds[a->head];
            a->head = (a->head + 1) % a->cap;
            a->len--;
            return fd;
        }
        if (a->closing)
            return -EBADF;
        if (a->err) { /* e.g. EMFILE: say it once, re-arm on the next call */
            int err = a->err;
            a->err = 0;
            return err;
        }
        if (!a->armed)
            acc_arm(a);
        struct wnode n = {.task = rt->current};
        waitq_push(&a->waiters, &n);
        intptr_t ret = sched_wait(rt, &n, 1);
        if (ret < 0)
            return (int)ret;
    }
}

int uco_acceptor_close(uco_acceptor *a)
{
    if (!a)
        return -EINVAL;
    struct uco_rt *rt = uco_rt_cur;
    if (!rt || !rt->current || a->rt != rt)
        return -EPERM;
    if (!waitq_empty(&a->waiters) || a->closing)
        return -EBUSY; /* a task is in next(): cancel it first */
    a->closing = true; /* next() from now on: -EBADF */
    if (a->armed) {
        reactor_cancel(rt, &a->op);
        wait_disarmed(rt, &a->waiters, &a->armed);
    }
    while (a->len) { /* accepted but never taken: ours to close */
        close(a->fds[a->head]);
        a->head = (a->head + 1) % a->cap;
        a->len--;
    }
    free(a->fds);
    free(a);
    return 0;
}

/* ---- provided buffer rings ---- */

struct uco_recv_stream;

struct uco_bufring {
    struct uco_rt *rt;
    struct io_uring_buf_ring *ring;
    size_t ring_bytes;
    char *bufs;
    size_t buf_size;
    unsigned nbufs, out;         /* out: taken by the kernel, not yet released */
    unsigned stream_held;        /* ... of which streams hold this many */
    unsigned nstreams;
    /* The kernel's ring is FIFO: a buffer given back is taken again only
     * after every other buffer in the ring.  With all nbufs in it, each
     * recv would write into the coldest buffer of the lot (64 MiB for
     * echo_server's 4096 x 16 KiB).  So the ring holds only about as many
     * as there are streams (ring_want) and the rest wait in a LIFO reserve
     * whose top, the buffer released last, refills the ring first. */
    unsigned in_ring;            /* in the kernel's ring, as far as completions say */
    unsigned floor;              /* least ring_want; doubled when the ring ran dry early */
    unsigned grown;              /* times it was doubled: tells stale ENOBUFS from new */
    unsigned nspare;
    unsigned short *spare;       /* the reserve, a stack of buffer ids */
    struct uco_recv_stream **owner; /* the stream each buffer out belongs to */
    /* Streams whose recv ended with ENOBUFS, re-armed first come first
     * served as buffers come back. */
    struct uco_recv_stream *dry_head, *dry_tail;
    unsigned short bgid;
};

/* Buffer group ids are per ring: a counter in the runtime. */
static unsigned short next_bgid(struct uco_rt *rt)
{
    return (unsigned short)(++rt->bgid_seq);
}

static void br_free(struct uco_bufring *br)
{
    if (br->ring != MAP_FAILED)
        munmap(br->ring, br->ring_bytes);
    free(br->bufs);
    free(br->owner);
    free(br->spare);
    free(br);
}

#define RING_MARGIN 32 /* buffers in the ring beyond one per stream */
#define RING_FLOOR 64  /* the least kept in the ring */

static unsigned ring_want(const uco_bufring *br)
{
    unsigned want = br->nstreams + RING_MARGIN;
    if (want < br->floor)
        want = br->floor;
    return want < br->nbufs ? want : br->nbufs;
}

/* Puts buffer id in the kernel's ring, behind those already there. */
static void ring_put(uco_bufring *br, unsigned id)
{
    io_uring_buf_ring_add(br->ring, br->bufs + (size_t)id * br->buf_size,
                          (unsigned)br->buf_size, (unsigned short)id,
                          io_uring_buf_ring_mask(br->nbufs), 0);
    io_uring_buf_ring_advance(br->ring, 1);
    br->in_ring++;
}

/* Refills the ring to ring_want from the top of the reserve. */
static void ring_top_up(uco_bufring *br)
{
    unsigned want = ring_want(br);
    while (br->in_ring < want && br->nspare)
        ring_put(br, br->spare[--br->nspare]);
}

/* Whether a recv that found the ring empty should go again: true when a
 * new recv can find a buffer now.  It was armed when the ring had been
 * doubled `epoch` times; if it has not grown since and the reserve has
 * buffers, the ring was kept too short for this load: twice as long from
 * now on.  A burst of recvs submitted together all fail at once, and only
 * the first of their ENOBUFS doubles it (each doubling would otherwise
 * empty the reserve into the ring). */
static bool ring_retry(uco_bufring *br, unsigned epoch)
{
    if (epoch == br->grown && br->nspare) {
        unsigned want = ring_want(br);
        br->floor = want * 2 < br->nbufs ? want * 2 : br->nbufs;
        br->grown++;
        ring_top_up(br);
    }
    return br->in_ring > 0;
}

int uco_bufring_create(unsigned nbufs, size_t buf_size, uco_bufring **out)
{
    struct uco_rt *rt = uco_rt_cur;
    if (!rt)
        return -EPERM;
    if (!out || !nbufs || nbufs > 32768 || (nbufs & (nbufs - 1)) || !buf_size ||
        buf_size > (1u << 30))
        return -EINVAL;
    struct uco_bufring *br = calloc(1, sizeof(*br));
    if (!br)
        return -ENOMEM;
    br->ring_bytes = stack_round(nbufs * sizeof(struct io_uring_buf));
    br->ring = mmap(NULL, br->ring_bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    br->bufs = malloc(nbufs * buf_size);
    br->owner = calloc(nbufs, sizeof(*br->owner));
    br->spare = malloc(nbufs * sizeof(*br->spare));
    if (br->ring == MAP_FAILED || !br->bufs || !br->owner || !br->spare) {
        br_free(br);
        return -ENOMEM;
    }
    br->rt = rt;
    br->buf_size = buf_size;
    br->nbufs = nbufs;
    io_uring_buf_ring_init(br->ring);
    struct io_uring_buf_reg reg = {.ring_addr = (uintptr_t)br->ring, .ring_entries = nbufs};
    int ret = -EEXIST;
    /* Group ids are 16 bits: after wrapping, skip the ones still in use. */
    for (unsigned tries = 0; ret == -EEXIST && tries < 65536; tries++) {
        br->bgid = next_bgid(rt);
        reg.bgid = br->bgid;
        ret = io_uring_register_buf_ring(reactor_ring(rt), &reg, 0);
    }
    if (ret < 0) {
        br_free(br);
        return ret;
    }
    /* Buffer 0 on top of the reserve: the ring starts with the first
     * buffers, in order. */
    for (unsigned i = 0; i < nbufs; i++)
        br->spare[br->nspare++] = (unsigned short)(nbufs - 1 - i);
    br->floor = RING_FLOOR;
    ring_top_up(br);
    *out = br;
    return 0;
}

int uco_bufring_destroy(uco_bufring *br)
{
    if (!br)
        return -EINVAL;
    if (br->out || br->nstreams)
        return -EBUSY;
    if (uco_rt_cur == br->rt)
        io_uring_unregister_buf_ring(reactor_ring(br->rt), br->bgid);
    br_free(br);
    return 0;
}

/* ---- multishot recv stream ---- */

struct chunk {
    int res;
    unsigned flags;
};

struct uco_recv_stream {
    struct uco_rt *rt;
    struct uco_op op;
    uco_bufring *br;
    int fd;
    /* Completions not yet taken, a ring of cap (a power of 2) entries:
     * sized for the stream's cap, not the ring's nbufs, so that the few
     * lines a busy stream writes stay in the caches (a 4098-entry queue
     * per stream had every chunk land on a cold line); grown if a kernel
     * without the byte limit overshoots.  At most one per buffer + 2. */
    struct chunk *q;
    unsigned head, len, cap;
    unsigned held, max_held; /* buffers queued or handed out, and the cap */
    bool armed, oneshot, eof;
    bool nolimit; /* the kernel takes no byte limit on a multishot recv */
    bool dry;    /* ended by ENOBUFS: on the ring's dry list */
    bool capped; /* stopped at max_held: re-armed when a buffer comes back */
    bool stopping; /* the cancel for the cap is on its way */
    bool turn;   /* re-armed off the dry list, no buffer taken yet */
    bool closing;
    unsigned epoch; /* the ring's `grown` when the recv was armed */
    struct uco_recv_stream *dry_prev, *dry_next;
    struct waitq waiters;
};

static void dry_push(uco_bufring *br, struct uco_recv_stream *s, bool front)
{
    s->dry = true;
    s->dry_prev = s->dry_next = NULL;
    if (!br->dry_head) {
        br->dry_head = br->dry_tail = s;
    } else if (front) {
        s->dry_next = br->dry_head;
        br->dry_head->dry_prev = s;
        br->dry_head = s;
    } else {
        s->dry_prev = br->dry_tail;
        br->dry_tail->dry_next = s;
        br->dry_tail = s;
    }
}

static void dry_unlink(uco_bufring *br, struct uco_recv_stream *s)
{
    if (!s->dry)
        return;
    if (s->dry_prev)
        s->dry_prev->dry_next = s->dry_next;
    else
        br->dry_head = s->dry_next;
    if (s->dry_next)
        s->dry_next->dry_prev = s->dry_prev;
    else
        br->dry_tail = s->dry_prev;
    s->dry = false;
    s->dry_prev = s->dry_next = NULL;
}

/* Arms the multishot recv.  POLL_FIRST: the kernel picks a buffer only
 * once data is there, so ENOBUFS always means "data waiting, no buffer",
 * and a stream re-armed for a returned buffer takes it (or ends).  The
 * byte limit (Linux 6.17+, in the field file_index shares) ends the
 * multishot once the stream's remaining allowance is filled: without it
 * the kernel fills every buffer it can for a full socket before the
 * cancel sent at the cap lands. */
static void rs_arm(struct uco_recv_stream *s)
{
    dry_unlink(s->br, s);
    struct io_uring_sqe *sqe = reactor_sqe(s->rt);
    uco_bufring *br = s->br;
    if (s->oneshot) {
        io_uring_prep_recv(sqe, s->fd, NULL, br->buf_size, 0);
    } else {
        io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
        unsigned room = s->held < s->max_held ? s->max_held - s->held : 1;
        uint64_t lim = (uint64_t)room * br->buf_size;
        if (!s->nolimit)
            sqe->file_index = lim > UINT32_MAX ? UINT32_MAX : (uint32_t)lim;
    }
    sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = br->bgid;
    reactor_arm(s->rt, sqe, &s->op);
    s->epoch = br->grown;
    s->armed = true;
    s->capped = false;
    s->stopping = false;
    s->turn = false;
}

void uco_buf_release(uco_bufring *br, unsigned id)
{
    if (!br || id >= br->nbufs || !br->out)
        return;
    br->out--;
    if (br->in_ring < ring_want(br))
        ring_put(br, id);
    else
        br->spare[br->nspare++] = (unsigned short)id;
    struct uco_recv_stream *s = br->owner[id];
    bool here = uco_rt_cur == br->rt; /* arming needs the ring's own thread */
    if (s) {
        br->owner[id] = NULL;
        s->held--;
        br->stream_held--;
        /* Below its cap again: a stopped stream starts receiving. */
        if (here && s->capped && !s->armed && !s->closing && s->held < s->max_held)
            rs_arm(s);
    }
    /* One buffer back, one stream waiting for a buffer re-armed: it has
     * data waiting, so it takes this buffer or another stream did. */
    if (here && br->dry_head) {
        struct uco_recv_stream *w = br->dry_head;
        rs_arm(w);
        w->turn = true;
    }
}

/* The kernel took buffer bid for s (or, s NULL, for a one-shot recv). */
static void buf_taken(uco_bufring *br, struct uco_recv_stream *s, unsigned bid)
{
    br->out++;
    if (br->in_ring)
        br->in_ring--;
    if (br->nspare)
        ring_top_up(br);
    if (s) {
        br->owner[bid] = s;
        s->held++;
        br->stream_held++;
    }
}

static void *buf_addr(uco_bufring *br, unsigned bid, int res)
{
    void *b = br->bufs + (size_t)bid * br->buf_size;
    vg_defined(b, (size_t)res);
    return b;
}

static void prep_recv_select(struct io_uring_sqe *sqe, int fd, uco_bufring *br)
{
    io_uring_prep_recv(sqe, fd, NULL, br->buf_size, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = br->bgid;
}

ssize_t uco_recv_buf(int fd, uco_bufring *br, void **buf, unsigned *id)
{
    if (!br || !buf || !id)
        return -EINVAL;
    if (br->rt != uco_rt_cur)
        return -EPERM;
    int res;
    unsigned flags;
    unsigned epoch;
    do { /* the ring found empty, buffers in it now: go again */
        GET_SQE(sqe);
        prep_recv_select(sqe, fd, br);
        flags = 0;
        epoch = br->grown;
        res = uco_await_flags(sqe, &flags);
    } while (res == -ENOBUFS && ring_retry(br, epoch));
    *buf = NULL;
    *id = 0;
    if (!(flags & IORING_CQE_F_BUFFER))
        return res;
    unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
    buf_taken(br, NULL, bid);
    if (res <= 0) { /* nothing in it: straight back */
        uco_buf_release(br, bid);
        return res;
    }
    *buf = buf_addr(br, bid, res);
    *id = bid;
    return res;
}

/* A completion the kernel delivered cannot be refused: a full queue
 * doubles, and if even that fails the process stops rather than drop
 * received bytes. */
static void q_push(struct uco_recv_stream *s, struct chunk c)
{
    if (unlikely(s->len == s->cap)) {
        struct chunk *n = malloc(2 * s->cap * sizeof(*n));
        if (!n) {
            fprintf(stderr, "uco: out of memory queueing a received chunk\n");
            abort();
        }
        for (unsigned i = 0; i < s->len; i++)
            n[i] = s->q[(s->head + i) & (s->cap - 1)];
        free(s->q);
        s->q = n;
        s->head = 0;
        s->cap *= 2;
    }
    s->q[(s->head + s->len++) & (s->cap - 1)] = c;
}

static struct chunk q_pop(struct uco_recv_stream *s)
{
    struct chunk c = s->q[s->head];
    s->head = (s->head + 1) & (s->cap - 1);
    s->len--;
    return c;
}

static void rs_handler(struct uco_rt *rt, struct uco_op *op, int res, unsigned flags)
{
    struct uco_recv_stream *s = container_of(op, struct uco_recv_stream, op);
    uco_bufring *br = s->br;
    bool more = flags & IORING_CQE_F_MORE;
    if (flags & IORING_CQE_F_BUFFER) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        buf_taken(br, s, bid);
        s->turn = false;
        if (res <= 0) { /* nothing in it: straight back */
            flags &= ~IORING_CQE_F_BUFFER;
            uco_buf_release(br, bid);
        }
    }
    if (!more) {
        s->armed = false;
        s->stopping = false;
    }
    if (res == -ENOBUFS && !more) {
        /* At its cap anyway: its own releases restart it.  Otherwise it
         * waits for a buffer, back at the front if it was re-armed for
         * one and another stream took it first: it keeps its turn; or,
         * with buffers in the ring (grown from the reserve if it was kept
         * too short), it goes on. */
        s->capped = s->held >= s->max_held;
        if (!s->closing && !s->capped) {
            if (ring_retry(br, s->epoch))
                rs_arm(s);
            else
                dry_push(br, s, s->turn);
        }
        s->turn = false;
    } else if (res == -EINVAL && !s->oneshot && !(flags & IORING_CQE_F_BUFFER) && !s->len) {
        /* An older kernel: first without the byte limit (the cancel at
         * the cap still holds), then without multishot recv. */
        if (s->nolimit)
            s->oneshot = true;
        s->nolimit = true;
    } else if (res != -ECANCELED) { /* ECANCELED: our own cancel, no data */
        q_push(s, (struct chunk){res, flags});
        if (res <= 0)
            s->capped = false; /* the stream ended: nothing to restart */
        else if (!more)
            s->capped = true; /* at its byte limit: restarted below the cap */
    }
    if (more && s->held >= s->max_held && !s->stopping && !s->closing) {
        /* At its cap: stop the kernel filling buffers for a reader that
         * does not keep up.  CQEs already on their way are queued. */
        reactor_cancel(rt, &s->op);
        s->stopping = true;
        s->capped = true;
    }
    if (!more) {
        /* Below the cap already (released before the cancel landed, or
         * ended at the byte limit with room left): go on receiving. */
        if (s->capped && !s->closing && s->held < s->max_held)
            rs_arm(s);
        sched_wake_all(rt, &s->waiters, 0);
    } else {
        wake_first(rt, &s->waiters);
    }
}

/* Multishot recv only where the kernel reports every end of stream.  On
 * an AF_UNIX socket (Linux 6.18) whose data and end of stream are both
 * queued when the recv is armed, the kernel delivers the data and then
 * waits for a wake-up that already happened: the end never comes.  TCP
 * counts a pending FIN as input still to read and goes on.  So sockets
 * of any family but IPv4 and IPv6 get one-shot recvs: one SQE per chunk,
 * every end of stream reported.  Not a socket: the kernel's recv says so. */
static bool multishot_safe(int fd)
{
    int domain = 0;
    socklen_t len = sizeof(domain);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
        return true;
    return domain == AF_INET || domain == AF_INET6;
}

int uco_recv_multishot_max(int fd, uco_bufring *br, unsigned max_bufs, uco_recv_stream **out)
{
    struct uco_rt *rt = uco_rt_cur;
    if (!rt || !rt->current)
        return -EPERM;
    if (!br || !out || fd < 0)
        return -EINVAL;
    if (br->rt != rt)
        return -EPERM;
    if (!max_bufs)
        max_bufs = UCO_RECV_STREAM_BUFS;
    if (max_bufs > br->nbufs)
        max_bufs = br->nbufs;
    struct uco_recv_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->cap = 8;
    while (s->cap < max_bufs + 4)
        s->cap *= 2;
    s->q = calloc(s->cap, sizeof(*s->q));
    if (!s->q) {
        free(s);
        return -ENOMEM;
    }
    s->rt = rt;
    s->br = br;
    s->fd = fd;
    s->max_held = max_bufs;
    s->oneshot = !multishot_safe(fd);
    s->op.handler = rs_handler;
    br->nstreams++;
    ring_top_up(br); /* one more buffer in the ring for it */
    rs_arm(s);
    *out = s;
    return 0;
}

int uco_recv_multishot(int fd, uco_bufring *br, uco_recv_stream **out)
{
    return uco_recv_multishot_max(fd, br, 0, out);
}

ssize_t uco_recv_stream_next(uco_recv_stream *s, void **buf, unsigned *id)
{
    if (!s || !buf || !id)
        return -EINVAL;
    struct uco_rt *rt = uco_rt_cur;
    if (!rt || !rt->current || s->rt != rt)
        return -EPERM;
    uco_bufring *br = s->br;
    for (;;) {
        if (s->len) {
            struct chunk c = q_pop(s);
            *buf = NULL;
            *id = 0;
            if (c.res == 0)
                s->eof = true;
            if (c.res > 0 && (c.flags & IORING_CQE_F_BUFFER)) {
                *id = c.flags >> IORING_CQE_BUFFER_SHIFT;
                *buf = buf_addr(br, *id, c.res);
            }
            return c.res;
        }
        *buf = NULL;
        *id = 0;
        if (s->eof)
            return 0;
        /* Every buffer this stream may hold is in the caller's hands:
         * waiting would wait for the caller. */
        if (s->held >= s->max_held)
            return -ENOBUFS;
        if (!s->armed) {
            if (!s->dry || br->out < br->nbufs)
                rs_arm(s); /* buffers are free (or never ran dry) */
            else if (br->stream_held == s->held)
                return -ENOBUFS; /* no other stream will give any back */
            /* else: on the dry list, re-armed as buffers come back */
        }
        struct wnode n = {.task = rt->current};
        waitq_push(&s->waiters, &n);
        intptr_t ret = sched_wait(rt, &n, 1); /* data stays queued on -ECANCELED */
        if (ret < 0)
            return ret;
    }
}

int uco_recv_stream_close(uco_recv_stream *s)
{
    if (!s)
        return -EINVAL;
    struct uco_rt *rt = uco_rt_cur;
    if (!rt || !rt->current || s->rt != rt)
        return -EPERM;
    if (!waitq_empty(&s->waiters))
        return -EBUSY; /* a task is in next(): cancel it first */
    uco_bufring *br = s->br;
    s->closing = true;
    dry_unlink(br, s);
    if (s->armed) {
        reactor_cancel(rt, &s->op);
        wait_disarmed(rt, &s->waiters, &s->armed);
    }
    dry_unlink(br, s); /* in case it ran dry while being cancelled */
    while (s->len) { /* buffers filled but never taken go back to the ring */
        struct chunk c = q_pop(s);
        if (c.res > 0 && (c.flags & IORING_CQE_F_BUFFER))
            uco_buf_release(br, c.flags >> IORING_CQE_BUFFER_SHIFT);
    }
    /* Buffers still in the caller's hands are released later, as anyone's. */
    for (unsigned i = 0; s->held && i < br->nbufs; i++) {
        if (br->owner[i] == s) {
            br->owner[i] = NULL;
            s->held--;
            br->stream_held--;
        }
    }
    br->nstreams--;
    free(s->q);
    free(s);
    return 0;
}
