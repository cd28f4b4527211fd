/* Multishot operations: one SQE, many completions, queued in an object
 * until a task takes them.  The acceptor (multishot accept), provided
 * buffer rings and the multishot recv stream. */
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

struct uco_bufring {
    struct uco_rt *rt;
    struct io_uring_buf_ring *ring;
    size_t ring_bytes;
    char *bufs;
    size_t buf_size;
    unsigned nbufs, out;
    unsigned short bgid;
};

/* Buffer group ids are per ring: a counter in the runtime. */
static unsigned short next_bgid(struct uco_rt *rt)
{
    return (unsigned short)(++rt->bgid_seq);
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
    if (br->ring == MAP_FAILED || !br->bufs) {
        if (br->ring != MAP_FAILED)
            munmap(br->ring, br->ring_bytes);
        free(br->bufs);
        free(br);
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
        munmap(br->ring, br->ring_bytes);
        free(br->bufs);
        free(br);
        return ret;
    }
    for (unsigned i = 0; i < nbufs; i++)
        io_uring_buf_ring_add(br->ring, br->bufs + (size_t)i * buf_size, (unsigned)buf_size,
                              (unsigned short)i, io_uring_buf_ring_mask(nbufs), (int)i);
    io_uring_buf_ring_advance(br->ring, (int)nbufs);
    *out = br;
    return 0;
}

void uco_buf_release(uco_bufring *br, unsigned id)
{
    if (!br || id >= br->nbufs || !br->out)
        return;
    io_uring_buf_ring_add(br->ring, br->bufs + (size_t)id * br->buf_size,
                          (unsigned)br->buf_size, (unsigned short)id,
                          io_uring_buf_ring_mask(br->nbufs), 0);
    io_uring_buf_ring_advance(br->ring, 1);
    br->out--;
}

int uco_bufring_destroy(uco_bufring *br)
{
    if (!br)
        return -EINVAL;
    if (br->out)
        return -EBUSY;
    if (uco_rt_cur == br->rt)
        io_uring_unregister_buf_ring(reactor_ring(br->rt), br->bgid);
    munmap(br->ring, br->ring_bytes);
    free(br->bufs);
    free(br);
    return 0;
}

/* A completion that carries a buffer: hand it out, or give it straight
 * back when there is nothing in it. */
static ssize_t take_buf(uco_bufring *br, int res, unsigned flags, void **buf, unsigned *id)
{
    *buf = NULL;
    *id = 0;
    if (!(flags & IORING_CQE_F_BUFFER))
        return res;
    unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
    br->out++;
    if (res <= 0) {
        uco_buf_release(br, bid);
        return res;
    }
    *buf = br->bufs + (size_t)bid * br->buf_size;
    *id = bid;
    vg_defined(*buf, (size_t)res);
    return res;
}

static void prep_recv_select(struct io_uring_sqe *sqe, int fd, uco_bufring *br, bool multi)
{
    if (multi)
        io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    else
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
    GET_SQE(sqe);
    prep_recv_select(sqe, fd, br, false);
    unsigned flags = 0;
    int res = uco_await_flags(sqe, &flags);
    return take_buf(br, res, flags, buf, id);
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
    struct chunk *q; /* completions not yet taken: at most one per buffer + 1 */
    unsigned head, len, cap;
    bool armed, oneshot, dry, eof;
    struct waitq waiters;
};

static void rs_handler(struct uco_rt *rt, struct uco_op *op, int res, unsigned flags)
{
    struct uco_recv_stream *s = container_of(op, struct uco_recv_stream, op);
    bool more = flags & IORING_CQE_F_MORE;
    if (res == -ENOBUFS && !more) {
        s->dry = true; /* re-armed by next() once buffers come back */
    } else if (res == -EINVAL && !s->oneshot && !(flags & IORING_CQE_F_BUFFER) && !s->len) {
        s->oneshot = true; /* no multishot recv in this kernel */
    } else if (res != -ECANCELED || (flags & IORING_CQE_F_BUFFER)) {
        s->q[(s->head + s->len++) % s->cap] = (struct chunk){res, flags};
    }
    if (!more) {
        s->armed = false;
        sched_wake_all(rt, &s->waiters, 0);
    } else {
        wake_first(rt, &s->waiters);
    }
}

static void rs_arm(struct uco_recv_stream *s)
{
    struct io_uring_sqe *sqe = reactor_sqe(s->rt);
    prep_recv_select(sqe, s->fd, s->br, !s->oneshot);
    reactor_arm(s->rt, sqe, &s->op);
    s->armed = true;
    s->dry = false;
}

int uco_recv_multishot(int fd, uco_bufring *br, uco_recv_stream **out)
{
    struct uco_rt *rt = uco_rt_cur;
    if (!rt || !rt->current)
        return -EPERM;
    if (!br || !out || fd < 0)
        return -EINVAL;
    if (br->rt != rt)
        return -EPERM;
    struct uco_recv_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->cap = br->nbufs + 2;
    s->q = calloc(s->cap, sizeof(*s->q));
    if (!s->q) {
        free(s);
        return -ENOMEM;
    }
    s->rt = rt;
    s->br = br;
    s->fd = fd;
    s->op.handler = rs_handler;
    rs_arm(s);
    *out = s;
    return 0;
}

ssize_t uco_recv_stream_next(uco_recv_stream *s, void **buf, unsigned *id)
{
    if (!s || !buf || !id)
        return -EINVAL;
    struct uco_rt *rt = uco_rt_cur;
    if (!rt || !rt->current || s->rt != rt)
        return -EPERM;
    for (;;) {
        if (s->len) {
            struct chunk c = s->q[s->head];
            s->head = (s->head + 1) % s->cap;
            s->len--;
            if (c.res == 0)
                s->eof = true;
            return take_buf(s->br, c.res, c.flags, buf, id);
        }
        *buf = NULL;
        *id = 0;
        if (s->eof)
            return 0;
        if (!s->armed) {
            if (s->dry && s->br->out == s->br->nbufs)
                return -ENOBUFS; /* the caller holds every buffer */
            rs_arm(s);
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
    if (s->armed) {
        reactor_cancel(rt, &s->op);
        wait_disarmed(rt, &s->waiters, &s->armed);
    }
    while (s->len) { /* buffers filled but never taken go back to the ring */
        struct chunk c = s->q[s->head];
        s->head = (s->head + 1) % s->cap;
        s->len--;
        void *b;
        unsigned id;
        if (take_buf(s->br, c.res, c.flags, &b, &id) > 0)
            uco_buf_release(s->br, id);
    }
    free(s->q);
    free(s);
    return 0;
}
