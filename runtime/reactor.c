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
    unsigned inflight;    /* awaited operations not yet completed */
    unsigned setup_flags; /* what the kernel accepted (compat.c) */
};

/* What an awaiting task leaves in user_data; lives on its stack, which
 * stays put until the completion has been delivered. */
struct await_op {
    uco_task *task;
    int res;
    unsigned flags;
};

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

unsigned reactor_inflight(struct uco_rt *rt)
{
    return rt->reactor->inflight;
}

static unsigned reap(struct uco_rt *rt)
{
    struct reactor *r = rt->reactor;
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&r->ring, head, cqe) {
        struct await_op *op = io_uring_cqe_get_data(cqe);
        n++;
        if (!op) /* fire-and-forget (cancellations): nobody waits */
            continue;
        op->res = cqe->res;
        op->flags = cqe->flags;
        r->inflight--;
        sched_wake(rt, op->task);
    }
    io_uring_cq_advance(&r->ring, n);
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

/* Submits everything queued.  A kernel short of CQ room answers -EBUSY
 * (older) or -EAGAIN: make room by reaping, then try again. */
static int submit(struct uco_rt *rt, unsigned wait)
{
    struct io_uring *ring = &rt->reactor->ring;
    for (;;) {
        int ret;
        if (wait)
            ret = io_uring_submit_and_wait(ring, wait);
        else if (rt->reactor->inflight)
            ret = io_uring_submit_and_get_events(ring); /* runs deferred work */
        else
            ret = io_uring_submit(ring);
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
    if (!block && !r->inflight && !io_uring_sq_ready(&r->ring))
        return 0;
    int ret = submit(rt, block && r->inflight ? 1 : 0);
    if (ret < 0)
        ring_broken(ret);
    reap_all(rt);
    return r->inflight;
}

struct io_uring_sqe *uco_sqe(void)
{
    struct uco_rt *rt = uco_rt_cur;
    if (!rt || !rt->current)
        return NULL;
    struct io_uring *ring = &rt->reactor->ring;
    struct io_uring_sqe *sqe;
    /* A full SQ is submitted and retried, never dropped. */
    while (!(sqe = io_uring_get_sqe(ring))) {
        int ret = submit(rt, 0);
        if (ret < 0)
            ring_broken(ret);
    }
    memset(sqe, 0, sizeof(*sqe));
    return sqe;
}

int uco_await_flags(struct io_uring_sqe *sqe, unsigned *cqe_flags)
{
    struct uco_rt *rt = uco_rt_cur;
    if (!rt || !rt->current)
        return -EPERM;
    if (!sqe)
        return -EINVAL;
    struct await_op op = {.task = rt->current};
    io_uring_sqe_set_data(sqe, &op);
    rt->reactor->inflight++;
    sched_park(rt, T_PARKED_IO);
    if (cqe_flags)
        *cqe_flags = op.flags;
    return op.res;
}

int uco_await(struct io_uring_sqe *sqe)
{
    return uco_await_flags(sqe, NULL);
}
