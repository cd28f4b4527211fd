/* The ring: one per runtime.  SQEs are handed out to awaiting tasks and
 * submitted in one batch per loop pass; completions wake their owners. */
#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct reactor {
    struct io_uring ring;
    unsigned setup_flags; /* what the kernel accepted (compat.c) */
    /* Timed waits: the timeout goes with io_uring_enter (EXT_ARG, 5.11+);
     * older kernels get an absolute IORING_OP_TIMEOUT for the earliest
     * timer, re-armed only when an earlier one is needed or it fired. */
    bool ext_arg;
    uint64_t kt_at;   /* deadline of the armed kernel timeout; 0 = none */
    int64_t kt_ts[2]; /* its struct __kernel_timespec */
};

/* user_data of that kernel timeout: no uco_op lives at address 1, so
 * one comparison tells it and fire-and-forget CQEs (0) from the rest. */
#define KT_USER_DATA 1u

static struct io_uring_sqe *get_sqe(struct uco_rt *rt);


int reactor_init(struct uco_rt *rt, const uco_config *cfg)
{
    struct reactor *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    unsigned entries = cfg->ring_entries ? cfg->ring_entries : 256;
    int ret = compat_ring_init(&r->ring, entries, cfg->flags, &r->setup_flags);
    if (ret < 0) {
        free(r);
        return ret;
    }
    r->ext_arg = r->ring.features & IORING_FEAT_EXT_ARG;
    rt->reactor = r;
    return 0;
}

void reactor_fini(struct uco_rt *rt)
{
    if (!rt->reactor)
        return;
    io_uring_queue_exit(&rt->reactor->ring);
    free(rt->reactor);
    rt->reactor = NULL;
}

/* Dispatches every completion in the CQ.  Each CQE is consumed before
 * its owner runs: a handler may need an SQE, and getting one may submit
 * and reap again (a full SQ against a full CQ), which must not see this
 * CQE twice; so head and tail are read afresh after a handler.  (The ring
 * never has CQE32: one index per entry.) */
static unsigned reap(struct uco_rt *rt)
{
    struct reactor *r = rt->reactor;
    struct io_uring_cq *cq = &r->ring.cq;
    unsigned n = 0;
    unsigned head = *cq->khead;
    unsigned tail = io_uring_smp_load_acquire(cq->ktail);
    /* The run queue's tail and the in-flight count stay in registers
     * across plain completions; a handler sees them written back. */
    uco_task *last = rt->runq_tail;
    unsigned done = 0;
    while (head != tail) {
        struct io_uring_cqe *cqe = &cq->cqes[head & cq->ring_mask];
        struct uco_op *op = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        unsigned flags = cqe->flags;
        io_uring_smp_store_release(cq->khead, ++head);
        n++;
        if (unlikely((uintptr_t)op <= KT_USER_DATA)) {
            /* Fire-and-forget (cancels), or our wait's
             * timeout (an older one may come first: re-arm). */
            if (op)
                r->kt_at = 0;
        } else {
            if (!(flags & IORING_CQE_F_MORE)) {
                op->done = true;
                done++;
            }
            if (op->handler) {
                rt->runq_tail = last;
                rt->inflight -= done;
                done = 0;
                op->handler(rt, op, res, flags);
                last = rt->runq_tail;
                head = *cq->khead;
                tail = io_uring_smp_load_acquire(cq->ktail);
                continue;
            }
            op->res = res;
            op->flags = flags;
            if (n > 1 || head != tail)
                sched_prefetch_stack(op->task);
            sched_wake_onto(rt, &last, op->task);
        }
        if (head == tail) /* more may have landed meanwhile */
            tail = io_uring_smp_load_acquire(cq->ktail);
    }
    rt->runq_tail = last;
    rt->inflight -= done;
    return n;
}

/* Completions the kernel could not fit in the CQ wait on its overflow
 * list (IORING_FEAT_NODROP); flush them until the list is empty. */
static void reap_all(struct uco_rt *rt)
{
    struct io_uring *ring = &rt->reactor->ring;
    reap(rt);
    while (io_uring_cq_has_overflow(ring)) {
        io_uring_get_events(ring);
        if (!reap(rt))
            break;
    }
}

/* Without EXT_ARG: one kernel timeout at the earliest deadline wakes the
 * wait.  One already armed for that time or earlier will do. */
static void kernel_timer_arm(struct uco_rt *rt, uint64_t at)
{
    struct reactor *r = rt->reactor;
    if (r->kt_at && r->kt_at <= at)
        return;
    struct io_uring_sqe *sqe = get_sqe(rt);
    r->kt_ts[0] = (int64_t)(at / 1000000000u);
    r->kt_ts[1] = (int64_t)(at % 1000000000u);
    io_uring_prep_timeout(sqe, (struct __kernel_timespec *)r->kt_ts, 0, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(sqe, KT_USER_DATA);
    r->kt_at = at;
}

/* Submits and waits for wait completions, no later than until. */
static __attribute__((noinline)) int wait_timed(struct uco_rt *rt, unsigned wait, uint64_t until)
{
    struct io_uring *ring = &rt->reactor->ring;
    if (!rt->reactor->ext_arg) {
        kernel_timer_arm(rt, until);
        return io_uring_submit_and_wait(ring, wait);
    }
    uint64_t now = uco_now();
    if (until <= now) /* a timer is due: do not wait */
        return rt->inflight ? io_uring_submit_and_get_events(ring)
                                     : io_uring_submit(ring);
    uint64_t left = until - now;
    struct __kernel_timespec ts = {.tv_sec = (long long)(left / 1000000000u),
                                   .tv_nsec = (long long)(left % 1000000000u)};
    struct io_uring_cqe *cqe;
    return io_uring_submit_and_wait_timeout(ring, &cqe, wait, &ts, NULL);
}

/* Submits everything queued; with wait, waits for that many completions
 * but no later than the absolute time until (0 = no limit).  A kernel
 * short of CQ room answers -EBUSY (older) or -EAGAIN: make room by
 * reaping, then try again. */
static int submit(struct uco_rt *rt, unsigned wait, uint64_t until)
{
    struct io_uring *ring = &rt->reactor->ring;
    for (;;) {
        int ret;
        if (unlikely(wait && until)) {
            ret = wait_timed(rt, wait, until);
        } else if (wait) {
            ret = io_uring_submit_and_wait(ring, wait);
        } else if (rt->inflight) {
            ret = io_uring_submit_and_get_events(ring); /* runs deferred work */
        } else {
            ret = io_uring_submit(ring);
        }
        if (ret >= 0 || ret == -EINTR || ret == -ETIME)
            return 0;
        if (ret != -EBUSY && ret != -EAGAIN)
            return ret;
        if (!reap(rt))
            io_uring_get_events(ring);
        reap(rt);
        wait = 0;
    }
}

/* io_uring_enter fails for good only when the ring itself is gone
 * (EBADF, EFAULT, ENXIO): no operation can complete any more, so every
 * parked task is lost.  Say so plainly instead of hanging. */
static __attribute__((noreturn)) void ring_broken(int err)
{
    fprintf(stderr, "uco: io_uring_enter failed: %s; the runtime cannot go on\n",
            strerror(-err));
    abort();
}

unsigned reactor_poll(struct uco_rt *rt, bool block)
{
    struct reactor *r = rt->reactor;
    if (!block && !rt->inflight && !io_uring_sq_ready(&r->ring))
        return 0;
    bool wait = block && rt->inflight;
    int ret;
    if (wait && !rt->timers) {
        /* The wait a task awaiting one operation at a time makes after
         * every submit: straight to the kernel.  Any error takes the
         * general path, which retries or reports it. */
        ret = io_uring_submit_and_wait(&r->ring, 1);
        if (unlikely(ret < 0) && ret != -EINTR && ret != -ETIME)
            ret = submit(rt, 1, 0);
        else
            ret = 0;
    } else {
        ret = submit(rt, wait, wait ? sched_next_timer(rt) : 0);
    }
    if (ret < 0)
        ring_broken(ret);
    reap_all(rt);
    return rt->inflight;
}

/* A full SQ is submitted and retried, never dropped. */
static __attribute__((noinline)) struct io_uring_sqe *get_sqe_full(struct uco_rt *rt)
{
    struct io_uring *ring = &rt->reactor->ring;
    int ret = submit(rt, 0, 0);
    if (ret < 0)
        ring_broken(ret);
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    memset(sqe, 0, sizeof(*sqe));
    return sqe;
}

/* An SQE.  By hand rather than io_uring_sq_space_left() + io_uring_get_sqe(),
 * which read the kernel's head twice: the ring never has SQPOLL (the
 * head moves only inside our own io_uring_enter) nor SQE128. */
static inline struct io_uring_sqe *get_sqe(struct uco_rt *rt)
{
    struct io_uring_sq *sq = &rt->reactor->ring.sq;
    unsigned tail = sq->sqe_tail;
    if (unlikely(tail + 1 - IO_URING_READ_ONCE(*sq->khead) > sq->ring_entries))
        return get_sqe_full(rt);
    sq->sqe_tail = tail + 1;
    struct io_uring_sqe *sqe = &sq->sqes[tail & sq->ring_mask];
    memset(sqe, 0, sizeof(*sqe));
    return sqe;
}

struct io_uring_sqe *reactor_sqe(struct uco_rt *rt)
{
    return get_sqe(rt);
}

struct io_uring_sqe *uco_sqe(void)
{
    struct uco_rt *rt = uco_rt_cur;
    if (!rt || !rt->current)
        return NULL;
    return get_sqe(rt);
}

void reactor_arm(struct uco_rt *rt, struct io_uring_sqe *sqe, struct uco_op *op)
{
    op->done = false;
    io_uring_sqe_set_data(sqe, op);
    rt->inflight++;
}

void reactor_cancel(struct uco_rt *rt, struct uco_op *op)
{
    if (op->done)
        return;
    struct io_uring_sqe *sqe = get_sqe(rt);
    io_uring_prep_cancel(sqe, op, 0);
    io_uring_sqe_set_data(sqe, NULL);
}

/* Parks the caller on op until its final completion.  With a deadline,
 * a timer in the runtime's heap cancels the operation when it passes
 * (sched_park_io_until).  Not a linked IORING_OP_LINK_TIMEOUT: that armed
 * and cancelled a kernel hrtimer and cost an SQE on every timed await, for
 * deadlines a server's reads and sends almost never reach. */
static void park_on(struct uco_rt *rt, uco_task *self, struct io_uring_sqe *sqe,
                    struct uco_op *op, uint64_t deadline)
{
    reactor_arm(rt, sqe, op);
    if (deadline)
        sched_park_io_until(rt, self, sched_slack(rt, deadline));
    else
        sched_park(rt, T_PARKED_IO);
}

/* What an await returns once its operation has completed. */
static int await_result(uco_task *self, const struct uco_op *op)
{
    if (unlikely(self->cancelling)) {
        self->cancelling = false;
        if (op->res == -ECANCELED || op->res == -EINTR)
            return -ECANCELED;
        self->cancel_pending = true; /* completed anyway: keep its result */
        return op->res;
    }
    if (unlikely(self->timed_out)) {
        self->timed_out = false;
        if (op->res == -ECANCELED || op->res == -EINTR)
            return -ETIMEDOUT;
        return op->res; /* completed before the cancel took */
    }
    return op->res;
}

/* The task's own op for an await: a task has one await in flight at a
 * time and stays parked until its final completion, so the op can live
 * in the task rather than on its stack.  Reaping then writes the result
 * beside the task's state, in memory shared with the other tasks, and
 * does not touch 64 stacks' pages for 64 completions. */
static inline struct uco_op *task_op(uco_task *self)
{
    struct uco_op *op = &self->aop;
    *op = (struct uco_op){.task = self};
    return op;
}

/* An await with a cancellation pending or a deadline scope open. */
static __attribute__((noinline)) int await_slow(struct uco_rt *rt, uco_task *self,
                                                struct io_uring_sqe *sqe, unsigned *cqe_flags)
{
    int ret = sched_await_check(self);
    if (ret < 0) {
        /* The SQE is already in the ring: turn it into a harmless NOP. */
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data(sqe, NULL);
        return ret;
    }
    struct uco_op *op = task_op(self);
    park_on(rt, self, sqe, op, self->deadline);
    if (cqe_flags)
        *cqe_flags = op->flags;
    return await_result(self, op);
}

/* The await of a task that is alone: its operation the only one in
 * flight, no other task runnable, no timer, nothing for the loop to do
 * while idle.  The scheduler would park it, poll, find its completion and
 * resume it without a switch; this makes the same wait directly and, when
 * the one completion there is its own and final, takes it without the run
 * queue (a sequential client, a file copy: one await after another).  The
 * semantics are the general path's, which anything else (an error, another
 * completion first, a multishot's) falls back to.  True: op->res is set. */
static __attribute__((noinline)) bool await_alone(struct uco_rt *rt, struct uco_op *op)
{
    if (rt->pass || rt->runq_head || rt->timers || rt->debug || rt->pool.nspare)
        return false;
    struct io_uring *ring = &rt->reactor->ring;
    if (io_uring_submit_and_wait(ring, 1) < 0)
        return false;
    struct io_uring_cq *cq = &ring->cq;
    unsigned head = *cq->khead;
    if (io_uring_smp_load_acquire(cq->ktail) - head != 1)
        return false;
    const struct io_uring_cqe *cqe = &cq->cqes[head & cq->ring_mask];
    if (cqe->user_data != (uintptr_t)op || (cqe->flags & IORING_CQE_F_MORE))
        return false;
    op->res = cqe->res;
    op->flags = cqe->flags;
    op->done = true;
    io_uring_smp_store_release(cq->khead, head + 1);
    rt->inflight--;
    return true;
}

/* Both public awaits, inlined into each: uco_await then costs no extra
 * call and no test of cqe_flags. */
static inline __attribute__((always_inline)) int await_op(struct io_uring_sqe *sqe,
                                                          unsigned *cqe_flags)
{
    struct uco_rt *rt = uco_rt_cur;
    uco_task *self = rt ? rt->current : NULL;
    if (!self)
        return -EPERM;
    if (!sqe)
        return -EINVAL;
    if (unlikely(self->cancel_pending || self->deadline))
        return await_slow(rt, self, sqe, cqe_flags);
    /* The common case: no check to make, no deadline.  Only the
     * fields the reactor reads before completion are set. */
    struct uco_op *op = &self->aop;
    op->done = false;
    io_uring_sqe_set_data(sqe, op);
    if (++rt->inflight != 1 || !await_alone(rt, op))
        sched_park_inline(rt, T_PARKED_IO);
    if (cqe_flags)
        *cqe_flags = op->flags;
    return await_result(self, op);
}

int reactor_await_always(struct uco_rt *rt, struct io_uring_sqe *sqe)
{
    uco_task *self = rt->current;
    struct uco_op *op = task_op(self);
    park_on(rt, self, sqe, op, 0);
    if (self->cancelling) { /* cancelled meanwhile: deliver it later */
        self->cancelling = false;
        self->cancel_pending = true;
    }
    return op->res;
}

struct io_uring *reactor_ring(struct uco_rt *rt)
{
    return &rt->reactor->ring;
}

int uco_await_flags(struct io_uring_sqe *sqe, unsigned *cqe_flags)
{
    return await_op(sqe, cqe_flags);
}

int uco_await(struct io_uring_sqe *sqe)
{
    return await_op(sqe, NULL);
}
