/* Private declarations shared by the runtime's layers; never installed.
 * Layers, bottom up: arch switch, stack, coro, sched, reactor, ops. */
#ifndef UCO_INTERNAL_H
#define UCO_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uco.h"

#define UCO_HIDDEN __attribute__((visibility("hidden")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#if defined(__SANITIZE_ADDRESS__)
#define UCO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UCO_ASAN 1
#endif
#endif

/* ---- arch: the hand-written switch (runtime/arch/<arch>/switch.S) ---- */
void uco_arch_switch(void **save_sp, void *new_sp) UCO_HIDDEN;
void uco_arch_trampoline(void) UCO_HIDDEN;

/* ---- stack.c: mmap'd stacks with a guard below, pooled ---- */
#define STACK_GUARD ((size_t)16 * 1024) /* never committed, any access faults */
/* Stacks this large start their first frame up to 63 cache lines below
 * the top, a different offset per task (see task_create). */
#define STACK_COLOR_MIN ((size_t)128 * 1024)

struct stack {
    char *base;     /* start of the mapping; the guard comes first */
    size_t len;     /* whole mapping, guard included */
    unsigned vg_id; /* valgrind's id for the registered stack */
};

struct stack_pool {
    struct stack *items;
    unsigned n, cap;
    /* Stacks freed past the pool while the loop is busy: unmapping them
     * there (a syscall each) would delay every wake-up behind a burst of
     * finishing tasks, so they wait here, reusable, until the loop is idle.
     * Bounded (32 times the pool): past that, they are unmapped at once. */
    struct stack *spare;
    unsigned nspare, spare_cap;
    size_t spare_bytes;
    size_t size;      /* usable size of pooled stacks (the default) */
    bool guard_advise; /* guards via MADV_GUARD_INSTALL, else mprotect */
};

int stack_pool_init(struct stack_pool *p, size_t size, unsigned cap) UCO_HIDDEN;
void stack_pool_fini(struct stack_pool *p) UCO_HIDDEN;
int stack_get(struct stack_pool *p, size_t size, struct stack *out) UCO_HIDDEN;
/* Pools s when there is room (safe while still running on it: nobody
 * reuses it before the caller switches away); else returns false. */
bool stack_pool_put(struct stack_pool *p, const struct stack *s) UCO_HIDDEN;
void stack_unmap(struct stack *s) UCO_HIDDEN;
/* Unmaps up to max spare stacks.  The loop calls it before blocking, a
 * few at a time, so that a wake-up arriving meanwhile waits for little. */
void stack_pool_trim(struct stack_pool *p, unsigned max) UCO_HIDDEN;
size_t stack_round(size_t size) UCO_HIDDEN;

static inline char *stack_lo(const struct stack *s) { return s->base + STACK_GUARD; }
static inline size_t stack_usable(const struct stack *s) { return s->len - STACK_GUARD; }

/* ---- compat.c: kernel feature probes and fallbacks, all in one place ---- */
struct io_uring;
struct io_uring_probe;
int compat_ring_init(struct io_uring *ring, unsigned entries, unsigned cfg_flags,
                     unsigned *setup_flags) UCO_HIDDEN;
bool compat_guard_probe(void) UCO_HIDDEN;
int compat_guard_install(void *addr, size_t len, bool advise) UCO_HIDDEN;

/* ---- coro.c: execution contexts on top of the switch ---- */
struct coro {
    void *sp;        /* saved stack pointer while suspended */
    void *stack_lo;  /* usable stack bounds, for the sanitizers */
    size_t stack_size;
    void *asan_fake; /* ASan's fake stack of this context while away */
};

void coro_init(struct coro *c, void *lo, size_t size, void (*entry)(void *), void *arg) UCO_HIDDEN;
void coro_init_thread(struct coro *c) UCO_HIDDEN;
void coro_started(void) UCO_HIDDEN;
void coro_exit(struct coro *to) __attribute__((noreturn)) UCO_HIDDEN;
void coro_stack_reuse(void *lo, size_t size) UCO_HIDDEN;

#ifdef UCO_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

/* Inline: every hand-off goes through here, and a call level more is
 * a measurable part of a switch that costs a few nanoseconds. */
static inline void coro_switch(struct coro *from, struct coro *to)
{
#ifdef UCO_ASAN
    __sanitizer_start_switch_fiber(&from->asan_fake, to->stack_lo, to->stack_size);
#endif
    uco_arch_switch(&from->sp, to->sp);
#ifdef UCO_ASAN
    __sanitizer_finish_switch_fiber(from->asan_fake, NULL, NULL);
#endif
}

/* ---- sched.c: tasks, run queue, waits, uco_run ---- */
/* One byte, so that the task's hot fields fit one cache line. */
enum __attribute__((packed)) task_state { T_READY, T_RUNNING, T_PARKED_IO, T_PARKED_WAIT, T_DONE };

/* A waiting task's place in a wait queue.  Lives in the waiter's frame;
 * a task may wait on several queues at once (uco_wait_any). */
struct waitq;
struct wnode {
    uco_task *task;
    struct wnode *prev, *next;
    struct waitq *q; /* NULL once unlinked */
    void *data;      /* for the primitive: e.g. a channel item buffer */
    bool fired;      /* this node woke the task */
};

struct waitq {
    struct wnode *head, *tail;
};

static inline bool waitq_empty(const struct waitq *q) { return q->head == NULL; }

static inline void waitq_push(struct waitq *q, struct wnode *n)
{
    n->q = q;
    n->next = NULL;
    n->prev = q->tail;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
}

static inline void waitq_remove(struct wnode *n)
{
    struct waitq *q = n->q;
    if (!q)
        return;
    if (n->prev)
        n->prev->next = n->next;
    else
        q->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        q->tail = n->prev;
    n->q = NULL;
}

/* An io_uring operation in flight: what user_data points to.  Lives in
 * the awaiting task's frame (or in an object such as an acceptor), and
 * stays put until its final completion has been delivered. */
struct uco_rt;
struct uco_op {
    uco_task *task; /* woken on completion when there is no handler */
    /* Called for each completion instead (multishot operations). */
    void (*handler)(struct uco_rt *rt, struct uco_op *op, int res, unsigned flags);
    int res;
    unsigned flags;
    bool done;      /* final completion delivered */
};

/* A task's timer: a node of the runtime's pairing heap, ordered by
 * deadline, then by arming order (timers due together fire in the order
 * they were set).  Inside the task: arming one allocates nothing. */
struct timer {
    uint64_t at;  /* absolute CLOCK_MONOTONIC ns, slack applied; 0 = not armed */
    uint64_t seq;
    struct timer *child, *sibling;
    struct timer *prev; /* the parent for a first child, else the left sibling */
};

#define TF_DETACHED 1u
#define TF_JOINED 2u /* a joiner waits, or has taken the result */

struct uco_task {
    /* What every await and hand-off reads or writes comes first, within
     * one cache line (tasks are allocated 64-byte aligned): a pass over
     * many tasks then touches one line of each. */
    enum task_state state;
    bool cancel_pending;  /* uco_cancel() not yet delivered */
    bool cancelling;      /* the current wait is being cancelled */
    bool woken;           /* a waker (not a timer or a cancel) ended the wait */
    bool timed_out;       /* the deadline cancelled the operation awaited */
    uint8_t flags;        /* TF_*: a byte, so the hot fields stay in one line */
    uint64_t deadline;    /* absolute CLOCK_MONOTONIC ns of the timeout scope; 0 = none */
    uco_task *next;       /* run queue */
    /* The await in flight (task, handler set at spawn); the task is parked
     * on it exactly while its state is T_PARKED_IO. */
    struct uco_op aop;
    struct coro ctx;      /* ctx.sp, its first field, ends the hot line */
    struct stack stack;
    struct uco_rt *rt;
    uco_fn fn;
    void *arg;
    intptr_t result;
    uint64_t id;
    intptr_t wake_value;
    struct timer timer;   /* armed while a sleep or a deadline wait parks it */
    struct waitq joinq;   /* joiners and uco_wait_any waiters */
    struct waitq parkq;   /* uco_park() */
    uint64_t run_since;   /* debug mode: when it was last switched in */
    uco_task *all_prev, *all_next; /* every task not yet freed */
};
_Static_assert(offsetof(struct uco_task, ctx.sp) + sizeof(void *) <= 64,
               "a task's hot fields must fit its first cache line");

struct reactor;

struct uco_rt {
    struct coro sched_ctx; /* the thread's own stack: runs the loop */
    uco_task *current;     /* NULL while the loop itself runs */
    uco_task *runq_head, *runq_tail; /* runnable, for the next pass */
    uco_task *pass;        /* the rest of the pass being run, in order */
    unsigned inflight;     /* awaited operations not yet completed (kept by
                              the reactor; the loop skips polling at 0) */
    size_t live;           /* tasks not finished */
    uco_task *all;
    uco_task *task_cache;  /* joined tasks' structs, for the next spawns */
    unsigned ntask_cache;  /* at most pool.cap */
    uint64_t next_id;
    struct stack_pool pool;
    struct stack dead;     /* a finished task's stack, unmapped off-stack */
    struct reactor *reactor;
    struct offload *offload;
    bool deadlock;
    bool debug;
    uint64_t debug_slow_ns;
    unsigned offload_threads; /* pool bound (uco_config.offload_threads) */
    unsigned bgid_seq;        /* last provided-buffer group id handed out */
    uint64_t timer_slack;     /* uco_config.timer_slack_ns */
    struct timer *timers;     /* root of the timer heap: the earliest deadline */
    uint64_t timer_seq;
    /* overflow.c */
    struct sigaction old_segv;
    stack_t old_altstack;
    void *altstack;
    bool segv_installed;
};

extern __thread struct uco_rt *uco_rt_cur
    __attribute__((tls_model("initial-exec"))) UCO_HIDDEN;

/* The running task of this thread's runtime, or NULL. */
static inline uco_task *sched_current(void)
{
    struct uco_rt *rt = uco_rt_cur;
    return rt ? rt->current : NULL;
}

/* An absolute deadline rounded up to the timer slack (see uco_config). */
static inline uint64_t sched_slack(const struct uco_rt *rt, uint64_t at)
{
    uint64_t s = rt->timer_slack;
    return s > 1 ? (at + s - 1) / s * s : at;
}

/* The earliest armed timer's deadline, or 0 when none is armed: the
 * reactor waits in the kernel no longer than that. */
static inline uint64_t sched_next_timer(const struct uco_rt *rt)
{
    return rt->timers ? rt->timers->at : 0;
}

/* Parks the running task in state st until sched_wake(); does not check. */
void sched_park(struct uco_rt *rt, enum task_state st) UCO_HIDDEN;
/* Parks the running task on its await (T_PARKED_IO) with a timer at at:
 * if the timer fires first, the operation is cancelled and the task's
 * timed_out set; it resumes on the operation's final completion. */
void sched_park_io_until(struct uco_rt *rt, uco_task *self, uint64_t at) UCO_HIDDEN;

void sched_debug_leave(struct uco_rt *rt, const uco_task *t) UCO_HIDDEN;
uco_task *sched_poll_inline(struct uco_rt *rt) UCO_HIDDEN;

/* Makes next (NULL: the loop) the running context; its coro to switch to. */
static inline struct coro *sched_enter(struct uco_rt *rt, uco_task *next)
{
    rt->current = next;
    if (!next)
        return &rt->sched_ctx;
    next->state = T_RUNNING;
    return &next->ctx;
}

/* The next task to run: the rest of the pass, or else what a poll makes
 * runnable (NULL: the loop decides). */
static inline __attribute__((always_inline)) uco_task *sched_pick(struct uco_rt *rt)
{
    uco_task *next = rt->pass;
    if (likely(next))
        rt->pass = next->next;
    else
        next = sched_poll_inline(rt);
    return next;
}

void sched_switch_debug(struct uco_rt *rt, uco_task *from) UCO_HIDDEN;

/* Leaves the running task `from` (already queued or parked) for the next
 * runnable task, directly: one switch per hand-off, none when `from` is
 * the next to run.  Inline, here, so that an await parks without a call
 * and a stack frame of its own between it and the switch.  Debug mode
 * (which times every task) takes the same steps out of line. */
static inline __attribute__((always_inline)) void sched_switch_from(struct uco_rt *rt,
                                                                   uco_task *from)
{
    if (unlikely(rt->debug)) {
        sched_switch_debug(rt, from);
        return;
    }
    uco_task *next = sched_pick(rt);
    if (next == from) {
        rt->current = from;
        from->state = T_RUNNING;
        return;
    }
    coro_switch(&from->ctx, sched_enter(rt, next));
    if (unlikely(rt->deadlock)) /* being discarded: see discard_parked() */
        coro_exit(&rt->sched_ctx);
}

static inline __attribute__((always_inline)) void sched_park_inline(struct uco_rt *rt,
                                                                    enum task_state st)
{
    uco_task *self = rt->current;
    self->state = st;
    sched_switch_from(rt, self);
}

/* Makes a parked task runnable (at the tail of the run queue: it runs in
 * the next pass).  Inline: the reactor calls it for every completion.
 * sched_wake_onto() appends behind *tail: reap keeps the queue's tail in a
 * local across completions and writes it back itself. */
static inline void sched_wake_onto(struct uco_rt *rt, uco_task **tail, uco_task *t)
{
    t->state = T_READY;
    t->next = NULL;
    if (*tail)
        (*tail)->next = t;
    else
        rt->runq_head = t;
    *tail = t;
}

/* A task woken among many runs after the rest of the pass: start fetching
 * the top of its stack, which the switch pops and its frames use, cold
 * with many tasks (fetched at the switch, it cost the switch ~60 ns with
 * 1,000 connections).  Left out where the stack has just run: reap() for
 * a lone completion, uco_yield() for the task itself. */
static inline void sched_prefetch_stack(const uco_task *t)
{
    const char *sp = t->ctx.sp;
    for (int i = 0; i < 4; i++)
        __builtin_prefetch(sp + 64 * i, 1, 3);
}

static inline void sched_wake(struct uco_rt *rt, uco_task *t)
{
    sched_prefetch_stack(t);
    sched_wake_onto(rt, &rt->runq_tail, t);
}

int sched_await_slow(uco_task *self) UCO_HIDDEN;

/* What every await checks first: a pending cancellation (delivered, and so
 * consumed: -ECANCELED) or an expired deadline (-ETIMEDOUT); else 0.
 * Inline, as the common case is neither. */
static inline int sched_await_check(uco_task *self)
{
    if (likely(!self->cancel_pending && !self->deadline))
        return 0;
    return sched_await_slow(self);
}

/* Parks the running task, whose n nodes the caller has queued, until a
 * waker fires one of them (returns the value given to sched_wake_node),
 * its deadline passes (-ETIMEDOUT) or it is cancelled (-ECANCELED).  All
 * nodes are unlinked on return; node->fired tells which one woke it.
 * Checks sched_await_check() first. */
intptr_t sched_wait(struct uco_rt *rt, struct wnode *nodes, size_t n) UCO_HIDDEN;

/* uco_sleep: parks the running task until the absolute time at (slack
 * applied here), its deadline (-ETIMEDOUT) or a cancel (-ECANCELED);
 * returns 0 when the sleep ran its course.  Checks sched_await_check(). */
int sched_sleep(struct uco_rt *rt, uint64_t at) UCO_HIDDEN;

/* Fires node n (unlinking it) and wakes its task with value.  Returns false,
 * doing nothing else, when the task was already woken through another node;
 * true means the waiter will see value (hand data over before calling). */
bool sched_wake_node(struct uco_rt *rt, struct wnode *n, intptr_t value) UCO_HIDDEN;

/* Wakes every node of q with value. */
void sched_wake_all(struct uco_rt *rt, struct waitq *q, intptr_t value) UCO_HIDDEN;

/* Waits until node (queued by the caller) is fired, whatever happens:
 * deadlines are ignored and a cancellation arriving meanwhile stays
 * pending for the next await.  For waits that must not end early because
 * another thread or the kernel still uses the waiter's memory. */
intptr_t sched_wait_until_fired(struct uco_rt *rt, struct wnode *node) UCO_HIDDEN;

/* ---- overflow.c: guard-page hits reported by name ---- */
int overflow_install(struct uco_rt *rt) UCO_HIDDEN;
void overflow_remove(struct uco_rt *rt) UCO_HIDDEN;

/* ---- reactor.c (or a ringless stand-in for the qemu tests) ---- */
int reactor_init(struct uco_rt *rt, const uco_config *cfg) UCO_HIDDEN;
void reactor_fini(struct uco_rt *rt) UCO_HIDDEN;
/* Submits queued SQEs and dispatches completions.  When block is set and
 * operations are in flight, waits for at least one completion, but not
 * past sched_next_timer(rt).  Returns how many operations are still in
 * flight (0 means nothing can ever complete). */
unsigned reactor_poll(struct uco_rt *rt, bool block) UCO_HIDDEN;
/* The runtime's ring, for the operations that need more than an SQE
 * (buffer ring registration). */
struct io_uring *reactor_ring(struct uco_rt *rt) UCO_HIDDEN;
/* Awaits sqe like uco_await() but is no cancellation point and takes no
 * deadline: for uco_close, which must always run. */
int reactor_await_always(struct uco_rt *rt, struct io_uring_sqe *sqe) UCO_HIDDEN;
/* A cleared SQE. */
struct io_uring_sqe *reactor_sqe(struct uco_rt *rt) UCO_HIDDEN;
/* Points sqe's user_data at op and counts it in flight until its final
 * completion (one without IORING_CQE_F_MORE). */
void reactor_arm(struct uco_rt *rt, struct io_uring_sqe *sqe, struct uco_op *op) UCO_HIDDEN;
/* Asks the kernel to cancel op (fire and forget); its own completion
 * still arrives.  A no-op once op is done. */
void reactor_cancel(struct uco_rt *rt, struct uco_op *op) UCO_HIDDEN;

/* Memory the kernel fills through io_uring is invisible to valgrind's
 * memcheck (no system call wrote it): the ops say what became defined.
 * A few instructions when not under valgrind. */
#if defined(__has_include) && __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define vg_defined(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#define vg_undefined(p, n) ((void)VALGRIND_MAKE_MEM_UNDEFINED((p), (n)))
#else
#define vg_defined(p, n) ((void)(p), (void)(n))
#define vg_undefined(p, n) ((void)(p), (void)(n))
#endif

static inline void vg_defined_iov(const struct iovec *iov, size_t cnt, ssize_t n)
{
    for (size_t i = 0; i < cnt && n > 0; i++) {
        size_t k = iov[i].iov_len < (size_t)n ? iov[i].iov_len : (size_t)n;
        vg_defined(iov[i].iov_base, k);
        n -= (ssize_t)k;
    }
}

/* For the ops_*.c files: declares sqe, or returns -EPERM outside a coroutine. */
#define GET_SQE(sqe)                      \
    struct io_uring_sqe *sqe = uco_sqe(); \
    if (!sqe)                             \
        return -EPERM

/* ---- offload.c ---- */
/* Stops and joins the pool's threads (every job has completed by then:
 * the loop only ends when no task is left waiting). */
void offload_fini(struct uco_rt *rt) UCO_HIDDEN;

#endif
