/* Sync primitives between the tasks of one runtime: channel, mutex,
 * semaphore, event, wait group.  Each is a small object allocated once at
 * create, with wait queues of nodes living in the waiters' own frames.
 * A waker hands over what the waiter waits for (an item, the lock, a
 * unit) before waking it, so a woken waiter never competes for it again
 * and a waiter that times out or is cancelled was handed nothing. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- shared helpers ---- */

/* Entry of every call that may suspend: the runtime of the running task,
 * or -EPERM outside a coroutine, -EINVAL for NULL arguments (args_ok
 * false).  Like every await it is a cancellation point, even when it
 * would not suspend: a pending cancellation or a passed deadline is
 * reported first, so a busy channel cannot keep either from landing. */
static int await_enter(bool args_ok, struct uco_rt **rt)
{
    struct uco_rt *r = uco_rt_cur;
    if (!r || !r->current)
        return -EPERM;
    if (!args_ok)
        return -EINVAL;
    *rt = r;
    return sched_await_check(r->current);
}

/* Queues the running task on q (data: what the waker hands over through)
 * and parks it.  Returns the waker's value, -ETIMEDOUT or -ECANCELED; the
 * node is unlinked on return, so the object may be gone by then. */
static int wait_on(struct uco_rt *rt, struct waitq *q, void *data)
{
    struct wnode n = {.task = rt->current, .data = data};
    waitq_push(q, &n);
    return (int)sched_wait(rt, &n, 1);
}

/* The first waiter of q that can still be handed something, or NULL.
 * A task already woken through another node will not look at this one:
 * handing it anything would lose it, so it is dropped from the queue. */
static struct wnode *first_waiter(struct waitq *q)
{
    struct wnode *n;
    while ((n = q->head) && n->task->woken)
        waitq_remove(n);
    return n;
}

/* Whether the caller may wake q's waiters: only from their own runtime,
 * since waking touches its run queue.  Always true with no waiter, so
 * that non-suspending calls also work before or after uco_run. */
static bool may_wake(const struct waitq *q)
{
    struct uco_rt *rt = uco_rt_cur;
    return waitq_empty(q) || (rt && q->head->task->rt == rt);
}

/* ---- channel ---- */

/* Invariants: receivers wait only while the ring is empty, senders only
 * while it is full (always, for cap 0), never both at once. */
struct uco_chan {
    size_t elem_size, cap;
    size_t head, len; /* ring: index of the oldest item, items held */
    bool closed;
    struct waitq senders;   /* node data: the sender's item */
    struct waitq receivers; /* node data: the receiver's out buffer */
    char ring[];
};

int uco_chan_create(size_t elem_size, size_t cap, uco_chan **out)
{
    size_t bytes;
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!elem_size)
        return -EINVAL;
    if (__builtin_mul_overflow(elem_size, cap, &bytes) ||
        __builtin_add_overflow(bytes, sizeof(uco_chan), &bytes))
        return -ENOMEM;
    uco_chan *c = calloc(1, bytes);
    if (!c)
        return -ENOMEM;
    c->elem_size = elem_size;
    c->cap = cap;
    *out = c;
    return 0;
}

/* The i-th buffered item, counting from the oldest. */
static void *chan_slot(uco_chan *c, size_t i)
{
    return c->ring + ((c->head + i) % c->cap) * c->elem_size;
}

int uco_chan_send(uco_chan *c, const void *elem)
{
    struct uco_rt *rt;
    int ret = await_enter(c && elem, &rt);
    if (ret < 0)
        return ret;
    if (c->closed)
        return -EPIPE;
    struct wnode *r = first_waiter(&c->receivers);
    if (r) { /* the ring is empty: straight into the receiver's buffer */
        memcpy(r->data, elem, c->elem_size);
        sched_wake_node(rt, r, 0);
        return 0;
    }
    if (c->len < c->cap) {
        memcpy(chan_slot(c, c->len++), elem, c->elem_size);
        return 0;
    }
    /* Whoever takes the item copies it from elem: it stays valid and
     * untouched by anyone else until we return. */
    return wait_on(rt, &c->senders, (void *)elem);
}

int uco_chan_recv(uco_chan *c, void *out)
{
    struct uco_rt *rt;
    int ret = await_enter(c && out, &rt);
    if (ret < 0)
        return ret;
    struct wnode *s = first_waiter(&c->senders);
    if (c->len) {
        memcpy(out, chan_slot(c, 0), c->elem_size);
        c->head = (c->head + 1) % c->cap;
        c->len--;
        if (s) /* the freed slot goes to the first blocked sender's item */
            memcpy(chan_slot(c, c->len++), s->data, c->elem_size);
    } else if (s) { /* rendezvous: copy from the waiting sender itself */
        memcpy(out, s->data, c->elem_size);
    } else {
        return c->closed ? -EPIPE : wait_on(rt, &c->receivers, out);
    }
    if (s)
        sched_wake_node(rt, s, 0);
    return 0;
}

int uco_chan_close(uco_chan *c)
{
    if (!c)
        return -EINVAL;
    if (!may_wake(&c->senders) || !may_wake(&c->receivers))
        return -EPERM;
    /* Buffered items stay for recv to drain; blocked senders' items were
     * never taken, and -EPIPE tells them so. */
    c->closed = true;
    sched_wake_all(uco_rt_cur, &c->senders, -EPIPE);
    sched_wake_all(uco_rt_cur, &c->receivers, -EPIPE);
    return 0;
}

int uco_chan_destroy(uco_chan *c)
{
    if (!c)
        return -EINVAL;
    if (!waitq_empty(&c->senders) || !waitq_empty(&c->receivers))
        return -EBUSY;
    free(c);
    return 0;
}

/* ---- mutex ---- */

/* owner is NULL only when nobody waits: unlock hands the mutex straight
 * to the first waiter, so a newcomer cannot barge in ahead of it. */
struct uco_mutex {
    uco_task *owner;
    struct waitq waiters;
};

int uco_mutex_create(uco_mutex **out)
{
    if (!out)
        return -EINVAL;
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : -ENOMEM;
}

int uco_mutex_lock(uco_mutex *m)
{
    struct uco_rt *rt;
    int ret = await_enter(m != NULL, &rt);
    if (ret < 0)
        return ret;
    if (!m->owner) {
        m->owner = rt->current;
        return 0;
    }
    if (m->owner == rt->current) /* waiting for ourselves: never woken */
        return -EDEADLK;
    /* 0 means the unlocker has already made us the owner. */
    return wait_on(rt, &m->waiters, NULL);
}

int uco_mutex_trylock(uco_mutex *m)
{
    uco_task *self = sched_current();
    if (!self) /* an owner must be a task */
        return -EPERM;
    if (!m)
        return -EINVAL;
    if (m->owner)
        return -EBUSY;
    m->owner = self;
    return 0;
}

int uco_mutex_unlock(uco_mutex *m)
{
    if (!m)
        return -EINVAL;
    if (!m->owner || m->owner != sched_current())
        return -EPERM;
    struct wnode *n = first_waiter(&m->waiters);
    m->owner = n ? n->task : NULL;
    if (n)
        sched_wake_node(uco_rt_cur, n, 0);
    return 0;
}

int uco_mutex_destroy(uco_mutex *m)
{
    if (!m)
        return -EINVAL;
    if (m->owner || !waitq_empty(&m->waiters))
        return -EBUSY;
    free(m);
    return 0;
}

/* ---- semaphore ---- */

/* Tasks wait only while value is 0: release hands its unit straight to
 * the first waiter instead of counting it. */
struct uco_sem {
    unsigned value;
    struct waitq waiters;
};

int uco_sem_create(unsigned value, uco_sem **out)
{
    if (!out)
        return -EINVAL;
    *out = calloc(1, sizeof(**out));
    if (!*out)
        return -ENOMEM;
    (*out)->value = value;
    return 0;
}

int uco_sem_acquire(uco_sem *s)
{
    struct uco_rt *rt;
    int ret = await_enter(s != NULL, &rt);
    if (ret < 0)
        return ret;
    if (s->value) {
        s->value--;
        return 0;
    }
    return wait_on(rt, &s->waiters, NULL);
}

int uco_sem_release(uco_sem *s)
{
    if (!s)
        return -EINVAL;
    if (!may_wake(&s->waiters))
        return -EPERM;
    struct wnode *n = first_waiter(&s->waiters);
    if (n) {
        sched_wake_node(uco_rt_cur, n, 0);
        return 0;
    }
    if (s->value == UINT_MAX)
        return -EOVERFLOW;
    s->value++;
    return 0;
}

int uco_sem_destroy(uco_sem *s)
{
    if (!s)
        return -EINVAL;
    if (!waitq_empty(&s->waiters))
        return -EBUSY;
    free(s);
    return 0;
}

/* ---- event ---- */

struct uco_event {
    bool set;
    struct waitq waiters; /* only while not set */
};

int uco_event_create(uco_event **out)
{
    if (!out)
        return -EINVAL;
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : -ENOMEM;
}

int uco_event_set(uco_event *e)
{
    if (!e)
        return -EINVAL;
    if (!may_wake(&e->waiters))
        return -EPERM;
    e->set = true;
    /* Woken now, so a clear() before they run does not hold them back. */
    sched_wake_all(uco_rt_cur, &e->waiters, 0);
    return 0;
}

int uco_event_clear(uco_event *e)
{
    if (!e)
        return -EINVAL;
    e->set = false;
    return 0;
}

int uco_event_wait(uco_event *e)
{
    struct uco_rt *rt;
    int ret = await_enter(e != NULL, &rt);
    if (ret < 0)
        return ret;
    return e->set ? 0 : wait_on(rt, &e->waiters, NULL);
}

int uco_event_destroy(uco_event *e)
{
    if (!e)
        return -EINVAL;
    if (!waitq_empty(&e->waiters))
        return -EBUSY;
    free(e);
    return 0;
}

/* ---- wait group ---- */

struct uco_wg {
    int64_t count; /* a 64-bit sum of int deltas cannot overflow in practice */
    struct waitq waiters; /* only while count > 0 */
};

int uco_wg_create(uco_wg **out)
{
    if (!out)
        return -EINVAL;
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : -ENOMEM;
}

int uco_wg_add(uco_wg *g, int delta)
{
    if (!g)
        return -EINVAL;
    int64_t count = g->count + delta;
    if (count < 0)
        return -EINVAL;
    if (count == 0 && !may_wake(&g->waiters))
        return -EPERM;
    g->count = count;
    if (count == 0)
        sched_wake_all(uco_rt_cur, &g->waiters, 0);
    return 0;
}

int uco_wg_done(uco_wg *g)
{
    return uco_wg_add(g, -1);
}

int uco_wg_wait(uco_wg *g)
{
    struct uco_rt *rt;
    int ret = await_enter(g != NULL, &rt);
    if (ret < 0)
        return ret;
    return g->count ? wait_on(rt, &g->waiters, NULL) : 0;
}

int uco_wg_destroy(uco_wg *g)
{
    if (!g)
        return -EINVAL;
    if (!waitq_empty(&g->waiters))
        return -EBUSY;
    free(g);
    return 0;
}
