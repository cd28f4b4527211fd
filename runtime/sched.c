/* Tasks, the run queue and the loop: uco_run, spawn, join, gather, yield,
 * park and wake.  Knows nothing of io_uring: the reactor is reached only
 * through reactor_poll(), so this layer also runs ringless under qemu. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#if defined(__has_include) && __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#else
#define VALGRIND_MAKE_MEM_NOACCESS(a, n) ((void)(a), (void)(n))
#define VALGRIND_MAKE_MEM_DEFINED(a, n) ((void)(a), (void)(n))
#endif

/* The only global state: this thread's runtime, NULL outside uco_run. */
__thread struct uco_rt *uco_rt_cur __attribute__((tls_model("initial-exec")));

/* Next task of the pass being run, or NULL when the pass is over. */
static inline uco_task *next_in_pass(struct uco_rt *rt)
{
    uco_task *t = rt->pass;
    if (t)
        rt->pass = t->next;
    return t;
}

/* Starts a pass with what is runnable now, in order (asyncio's "ready"
 * snapshot): tasks woken during the pass wait for the next one.  Returns
 * its first task, or NULL when nothing is runnable. */
static uco_task *pass_begin(struct uco_rt *rt)
{
    uco_task *t = rt->runq_head;
    if (!t)
        return NULL;
    rt->pass = t->next;
    rt->runq_head = rt->runq_tail = NULL;
    return t;
}

static void timers_fire(struct uco_rt *rt);

/* ---- debug mode: slow tasks and tasks never joined ---- */

static void task_name(const uco_task *t, char *buf, size_t len)
{
    Dl_info info;
    if (dladdr((void *)(uintptr_t)t->fn, &info) && info.dli_sname)
        snprintf(buf, len, "task %llu (%s)", (unsigned long long)t->id, info.dli_sname);
    else
        snprintf(buf, len, "task %llu (entry %p)", (unsigned long long)t->id,
                 (void *)(uintptr_t)t->fn);
}

/* asyncio's slow-callback warning: a task that holds the loop this long
 * delays every other task and every completion. */
void sched_debug_leave(struct uco_rt *rt, const uco_task *t)
{
    uint64_t ran = uco_now() - t->run_since;
    if (ran < rt->debug_slow_ns)
        return;
    char name[160];
    task_name(t, name, sizeof(name));
    fprintf(stderr, "uco: debug: %s ran %llu ms without awaiting (threshold %llu ms)\n",
            name, (unsigned long long)(ran / 1000000u),
            (unsigned long long)(rt->debug_slow_ns / 1000000u));
}

static void debug_unjoined(struct uco_rt *rt)
{
    for (const uco_task *t = rt->all; t; t = t->all_next) {
        if (t->state != T_DONE || (t->flags & (TF_JOINED | TF_DETACHED)))
            continue;
        char name[160];
        task_name(t, name, sizeof(name));
        fprintf(stderr, "uco: debug: %s finished but was never joined or detached "
                        "(result %lld)\n", name, (long long)t->result);
    }
}

/* The pass is over and the task leaving cannot go on.  When all the loop
 * would do before the next pass is a poll (no spare stack to unmap while
 * idle), it is done here, on that task's stack, and the next pass starts
 * from here: a task awaiting alone resumes without two switches through
 * the loop's context, and a yield ping-pong never enters it.  NULL sends
 * the caller to the loop, which also decides about idle, deadlock and
 * exit. */
__attribute__((noinline)) uco_task *sched_poll_inline(struct uco_rt *rt)
{
    bool block = !rt->runq_head;
    if (block && rt->pool.nspare)
        return NULL;
    if (!block && !rt->inflight && !rt->timers) /* nothing to poll or fire */
        return pass_begin(rt);
    uco_task *self = rt->current;
    rt->current = NULL; /* completion handlers run as in the loop */
    reactor_poll(rt, block);
    timers_fire(rt);
    rt->current = self;
    return pass_begin(rt);
}

/* sched_enter(), and in debug mode the time the task starts running. */
static struct coro *enter_timed(struct uco_rt *rt, uco_task *next)
{
    if (unlikely(rt->debug) && next)
        next->run_since = uco_now();
    return sched_enter(rt, next);
}

/* sched_switch_from() in debug mode: every task is timed from when it is
 * switched in to when it leaves. */
void sched_switch_debug(struct uco_rt *rt, uco_task *from)
{
    sched_debug_leave(rt, from);
    uco_task *next = sched_pick(rt);
    if (next == from) {
        rt->current = from;
        from->state = T_RUNNING;
        from->run_since = uco_now();
        return;
    }
    coro_switch(&from->ctx, enter_timed(rt, next));
    if (rt->deadlock)
        coro_exit(&rt->sched_ctx);
}

void sched_park(struct uco_rt *rt, enum task_state st)
{
    sched_park_inline(rt, st);
}

static void all_link(struct uco_rt *rt, uco_task *t)
{
    t->all_prev = NULL;
    t->all_next = rt->all;
    if (rt->all)
        rt->all->all_prev = t;
    rt->all = t;
}

/* Cache-line aligned: the hot fields then share one line. */
#define TASK_BYTES ((sizeof(uco_task) + 63) & ~(size_t)63)

/*
 * Joined tasks' structs are kept for the next spawns, as many as the stack
 * pool holds stacks: spawn + join then calls no allocator (679 instructions
 * instead of 813, by callgrind) and gets a struct still in the caches.
 * A kept struct is off limits to valgrind, and ASan builds keep none, so
 * both still see a task used after its join.
 */
static uco_task *task_alloc(struct uco_rt *rt)
{
    uco_task *t = rt->task_cache;
    if (!t)
        return aligned_alloc(64, TASK_BYTES);
    VALGRIND_MAKE_MEM_DEFINED(t, TASK_BYTES);
    rt->task_cache = t->all_next;
    rt->ntask_cache--;
    return t;
}

static void task_release(struct uco_rt *rt, uco_task *t)
{
#ifndef UCO_ASAN
    if (rt->ntask_cache < rt->pool.cap) {
        t->all_next = rt->task_cache;
        rt->task_cache = t;
        rt->ntask_cache++;
        VALGRIND_MAKE_MEM_NOACCESS(t, TASK_BYTES);
        return;
    }
#endif
    free(t);
}

static void task_free(struct uco_rt *rt, uco_task *t)
{
    if (t->all_prev)
        t->all_prev->all_next = t->all_next;
    else
        rt->all = t->all_next;
    if (t->all_next)
        t->all_next->all_prev = t->all_prev;
    stack_unmap(&t->stack);
    task_release(rt, t);
}

/* Who runs after a finished task: the rest of the pass, or, when the pass
 * is over, a new pass straight away if nothing is in flight and no timer
 * is armed (a joiner the task just woke resumes in one switch, not two
 * through the loop: 2 switches per spawn + join instead of 3).  Nothing
 * is polled here: a completion handler could spawn a task and take the
 * pooled stack this code still runs on.  NULL: the loop. */
static uco_task *finish_next(struct uco_rt *rt)
{
    uco_task *t = next_in_pass(rt);
    if (t || rt->inflight || rt->timers)
        return t;
    return pass_begin(rt);
}

static __attribute__((noreturn)) void task_finish(uco_task *t)
{
    struct uco_rt *rt = t->rt;
    if (unlikely(rt->debug))
        sched_debug_leave(rt, t);
    t->state = T_DONE;
    rt->live--;
    sched_wake_all(rt, &t->joinq, 0);
    /* Still running on this stack: pooling it is safe (nothing reuses it
     * before we switch away); unmapping it is not, so the loop does that. */
    struct stack s = t->stack;
    t->stack.base = NULL;
    if (!stack_pool_put(&rt->pool, &s))
        rt->dead = s;
    if (t->flags & TF_DETACHED)
        task_free(rt, t);
    coro_exit(enter_timed(rt, rt->dead.base ? NULL : finish_next(rt)));
}

static void task_entry(void *arg)
{
    uco_task *t = arg;
    coro_started();
    t->result = t->fn(t->arg);
    task_finish(t);
}

static int task_create(struct uco_rt *rt, uco_fn fn, void *arg, size_t size, uco_task **out)
{
    uco_task *t = task_alloc(rt);
    if (!t)
        return -ENOMEM;
    memset(t, 0, sizeof(*t));
    int ret = stack_get(&rt->pool, size, &t->stack);
    if (ret < 0) {
        task_release(rt, t);
        return ret;
    }
    t->id = ++rt->next_id;
    /* Stacks are page-aligned, so the top frames of all tasks would fall
     * into the same few L1 sets and evict each other after 8 tasks (a pass
     * over 64 awaiting tasks missed twice per switch).  Large stacks leave
     * the top (id % 64) lines unused instead, so the frames spread over
     * every set; a 4 KiB loss on 128 KiB or more. */
    size_t usable = stack_usable(&t->stack);
    size_t color = usable >= STACK_COLOR_MIN ? (size_t)(t->id % 32) * 64 : 0;
    coro_init(&t->ctx, stack_lo(&t->stack), usable - color, task_entry, t);
    t->aop.task = t; /* handler stays NULL: a plain await wakes its task */
    t->rt = rt;
    t->fn = fn;
    t->arg = arg;
    all_link(rt, t);
    rt->live++;
    sched_wake(rt, t);
    *out = t;
    return 0;
}

int uco_spawn_ex(uco_task **out, uco_fn fn, void *arg, size_t stack_size)
{
    struct uco_rt *rt = uco_rt_cur;
    if (!rt)
        return -EPERM;
    if (!out || !fn || (stack_size && stack_size < UCO_STACK_MIN))
        return -EINVAL;
    size_t size = stack_size ? stack_round(stack_size) : rt->pool.size;
    return task_create(rt, fn, arg, size, out);
}

uco_task *uco_spawn(uco_fn fn, void *arg)
{
    uco_task *t = NULL;
    return uco_spawn_ex(&t, fn, arg, 0) == 0 ? t : NULL;
}

int uco_join(uco_task *t, intptr_t *result)
{
    struct uco_rt *rt = uco_rt_cur;
    uco_task *self = rt ? rt->current : NULL;
    if (!self)
        return -EPERM;
    if (t == self)
        return -EDEADLK;
    if (!t || t->rt != rt || (t->flags & (TF_DETACHED | TF_JOINED)))
        return -EINVAL;
    if (t->state != T_DONE) {
        /* Claimed while we wait: a second joiner gets -EINVAL. */
        t->flags |= TF_JOINED;
        struct wnode n = {.task = self};
        waitq_push(&t->joinq, &n);
        intptr_t ret = sched_wait(rt, &n, 1);
        if (ret < 0) { /* timed out or cancelled: t stays joinable */
            t->flags &= ~TF_JOINED;
            return (int)ret;
        }
    }
    if (result)
        *result = t->result;
    task_free(rt, t);
    return 0;
}

int uco_gather(uco_task *const *tasks, size_t n, intptr_t *results)
{
    if (!sched_current())
        return -EPERM;
    if (n && !tasks)
        return -EINVAL;
    int first = 0;
    for (size_t i = 0; i < n; i++) {
        int ret = uco_join(tasks[i], results ? &results[i] : NULL);
        if (ret < 0 && !first)
            first = ret;
    }
    return first;
}

int uco_detach(uco_task *t)
{
    struct uco_rt *rt = uco_rt_cur;
    if (!t || (t->flags & (TF_DETACHED | TF_JOINED)))
        return -EINVAL;
    if (t->rt != rt)
        return -EPERM;
    if (t->state == T_DONE)
        task_free(rt, t);
    else
        t->flags |= TF_DETACHED;
    return 0;
}

int uco_yield(void)
{
    struct uco_rt *rt = uco_rt_cur;
    uco_task *self = rt ? rt->current : NULL;
    if (!self)
        return -EPERM;
    int ret = sched_await_check(self);
    if (ret < 0)
        return ret;
    sched_wake_onto(rt, &rt->runq_tail, self); /* its stack is the one in use */
    sched_switch_from(rt, self);
    return 0;
}

uco_task *uco_self(void)
{
    return sched_current();
}

int uco_park(void)
{
    struct uco_rt *rt = uco_rt_cur;
    uco_task *self = rt ? rt->current : NULL;
    if (!self)
        return -EPERM;
    struct wnode n = {.task = self};
    waitq_push(&self->parkq, &n);
    return (int)sched_wait(rt, &n, 1);
}

int uco_wake(uco_task *t, int value)
{
    struct uco_rt *rt = uco_rt_cur;
    if (!t)
        return -EINVAL;
    if (!rt || t->rt != rt)
        return -EPERM;
    if (waitq_empty(&t->parkq) || !sched_wake_node(rt, t->parkq.head, value))
        return -EINVAL;
    return 0;
}

/* ---- timers: a pairing heap of the nodes inside parked tasks ----
 * Sleeps, deadline waits and the deadlines of awaits never reach the
 * kernel one by one: the loop waits there only until the earliest deadline
 * and fires what is due.  (One IORING_OP_TIMEOUT per sleep made the kernel
 * keep 10,000 hrtimers and a long list, and cost a submission each; a
 * linked timeout per timed await armed and cancelled an hrtimer for every
 * request a server read, where a deadline rarely passes.)  A pairing heap needs no
 * array to grow, inserts in O(1) and removes in amortised O(log n). */

static bool timer_before(const struct timer *a, const struct timer *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

/* Joins two heap roots into one. */
static struct timer *timer_meld(struct timer *a, struct timer *b)
{
    if (timer_before(b, a)) {
        struct timer *x = a;
        a = b;
        b = x;
    }
    b->prev = a;
    b->sibling = a->child;
    if (a->child)
        a->child->prev = b;
    a->child = b;
    return a;
}

/* One heap out of a list of siblings: melds them in pairs left to right,
 * then the pairs right to left (what keeps the amortised bound). */
static struct timer *timer_merge_pairs(struct timer *first)
{
    struct timer *stack = NULL;
    while (first) {
        struct timer *a = first, *b = a->sibling;
        first = b ? b->sibling : NULL;
        a->sibling = a->prev = NULL;
        if (b) {
            b->sibling = b->prev = NULL;
            a = timer_meld(a, b);
        }
        a->sibling = stack;
        stack = a;
    }
    struct timer *root = stack;
    if (!root)
        return NULL;
    stack = root->sibling;
    root->sibling = NULL;
    while (stack) {
        struct timer *n = stack;
        stack = n->sibling;
        n->sibling = NULL;
        root = timer_meld(root, n);
    }
    return root;
}

static void timer_add(struct uco_rt *rt, struct timer *t, uint64_t at)
{
    t->at = at ? at : 1; /* 0 means unarmed */
    t->seq = ++rt->timer_seq;
    t->child = t->sibling = t->prev = NULL;
    rt->timers = rt->timers ? timer_meld(rt->timers, t) : t;
}

static void timer_remove(struct uco_rt *rt, struct timer *t)
{
    if (t == rt->timers) {
        rt->timers = timer_merge_pairs(t->child);
    } else {
        if (t->prev->child == t)
            t->prev->child = t->sibling;
        else
            t->prev->sibling = t->sibling;
        if (t->sibling)
            t->sibling->prev = t->prev;
        struct timer *sub = timer_merge_pairs(t->child);
        if (sub)
            rt->timers = timer_meld(rt->timers, sub);
    }
    t->at = 0;
    t->child = t->sibling = t->prev = NULL;
}

/* Wakes, in deadline order, the tasks whose timers are due, and cancels
 * the operations of those parked on an await (they wake on its final
 * completion).  A task that a waker or a cancel made runnable first just
 * loses its timer. */
static void timers_fire(struct uco_rt *rt)
{
    if (!rt->timers)
        return;
    uint64_t now = uco_now();
    while (rt->timers && rt->timers->at <= now) {
        struct timer *t = rt->timers;
        timer_remove(rt, t);
        uco_task *task = (uco_task *)((char *)t - offsetof(uco_task, timer));
        if (task->state == T_PARKED_WAIT) {
            sched_wake(rt, task);
        } else if (task->state == T_PARKED_IO && !task->aop.done) {
            task->timed_out = true;
            reactor_cancel(rt, &task->aop);
        }
    }
}

/* Parks the running task until a wake, or until at (slack applied) when
 * nobody wakes it first. */
static void park_state_until(struct uco_rt *rt, uco_task *self, enum task_state st,
                             uint64_t at)
{
    timer_add(rt, &self->timer, at);
    sched_park(rt, st);
    if (self->timer.at) /* woken or completed before the deadline */
        timer_remove(rt, &self->timer);
}

static void park_until(struct uco_rt *rt, uco_task *self, uint64_t at)
{
    park_state_until(rt, self, T_PARKED_WAIT, at);
}

void sched_park_io_until(struct uco_rt *rt, uco_task *self, uint64_t at)
{
    park_state_until(rt, self, T_PARKED_IO, at);
}

int sched_sleep(struct uco_rt *rt, uint64_t at)
{
    uco_task *self = rt->current;
    int ret = sched_await_check(self);
    if (ret < 0)
        return ret;
    at = sched_slack(rt, at);
    uint64_t limit = self->deadline ? sched_slack(rt, self->deadline) : 0;
    bool by_deadline = limit && limit <= at;
    park_until(rt, self, by_deadline ? limit : at);
    if (self->cancelling) { /* only a cancel ends a sleep early */
        self->cancelling = false;
        return -ECANCELED;
    }
    return by_deadline ? -ETIMEDOUT : 0;
}

/* ---- waits, deadlines, cancellation ---- */

int sched_await_slow(uco_task *self)
{
    if (self->cancel_pending) {
        self->cancel_pending = false;
        return -ECANCELED;
    }
    if (self->deadline && uco_now() >= self->deadline)
        return -ETIMEDOUT;
    return 0;
}

static void unlink_all(struct wnode *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        waitq_remove(&nodes[i]);
}

intptr_t sched_wait(struct uco_rt *rt, struct wnode *nodes, size_t n)
{
    uco_task *self = rt->current;
    int ret = sched_await_check(self);
    if (ret < 0) {
        unlink_all(nodes, n);
        return ret;
    }
    self->woken = false;
    if (self->deadline)
        park_until(rt, self, sched_slack(rt, self->deadline));
    else
        sched_park(rt, T_PARKED_WAIT);
    unlink_all(nodes, n);
    bool cancelled = self->cancelling;
    self->cancelling = false;
    if (self->woken) {
        /* Handed something (an item, a lock): keep it, and keep the
         * cancellation for the next await. */
        if (cancelled)
            self->cancel_pending = true;
        return self->wake_value;
    }
    return cancelled ? -ECANCELED : -ETIMEDOUT;
}

intptr_t sched_wait_until_fired(struct uco_rt *rt, struct wnode *node)
{
    uco_task *self = rt->current;
    bool cancelled = false;
    while (!node->fired) { /* a cancel wakes us early: park again */
        self->woken = false;
        sched_park(rt, T_PARKED_WAIT);
        cancelled |= self->cancelling;
        self->cancelling = false;
    }
    if (cancelled)
        self->cancel_pending = true;
    return self->wake_value;
}

bool sched_wake_node(struct uco_rt *rt, struct wnode *n, intptr_t value)
{
    waitq_remove(n);
    n->fired = true;
    uco_task *t = n->task;
    if (t->woken)
        return false;
    t->woken = true;
    t->wake_value = value;
    if (t->state == T_PARKED_IO)
        reactor_cancel(rt, &t->aop); /* resumes on the operation's completion */
    else if (t->state == T_PARKED_WAIT)
        sched_wake(rt, t);
    return true;
}

void sched_wake_all(struct uco_rt *rt, struct waitq *q, intptr_t value)
{
    while (q->head)
        sched_wake_node(rt, q->head, value);
}

int uco_cancel(uco_task *t)
{
    struct uco_rt *rt = uco_rt_cur;
    if (!t)
        return -EINVAL;
    if (!rt || t->rt != rt)
        return -EPERM;
    if (t->state == T_DONE)
        return 0;
    if (t->cancel_pending || t->cancelling)
        return 1;
    if (t->state == T_READY || t->state == T_RUNNING) {
        t->cancel_pending = true; /* delivered by its next await */
        return 1;
    }
    t->cancelling = true;
    if (t->state == T_PARKED_IO)
        reactor_cancel(rt, &t->aop); /* resumes on the operation's final completion */
    else
        sched_wake(rt, t);
    return 1;
}

uint64_t uco_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int uco_timeout_begin(uint64_t nsec, uint64_t *saved)
{
    uco_task *self = sched_current();
    if (!self)
        return -EPERM;
    if (!saved)
        return -EINVAL;
    uint64_t at = uco_now() + nsec;
    *saved = self->deadline;
    if (!self->deadline || at < self->deadline)
        self->deadline = at;
    return 0;
}

int uco_timeout_end(uint64_t saved)
{
    uco_task *self = sched_current();
    if (!self)
        return -EPERM;
    self->deadline = saved;
    return 0;
}

int uco_wait_any(uco_task *const *tasks, size_t n)
{
    struct uco_rt *rt = uco_rt_cur;
    uco_task *self = rt ? rt->current : NULL;
    if (!self)
        return -EPERM;
    if (!n || !tasks)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!tasks[i] || tasks[i]->rt != rt || tasks[i] == self)
            return -EINVAL;
        if (tasks[i]->state == T_DONE)
            return (int)i;
    }
    struct wnode local[16];
    struct wnode *nodes = n <= 16 ? local : calloc(n, sizeof(*nodes));
    if (!nodes)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        nodes[i] = (struct wnode){.task = self};
        waitq_push(&tasks[i]->joinq, &nodes[i]);
    }
    intptr_t ret = sched_wait(rt, nodes, n);
    if (ret >= 0) {
        for (size_t i = 0; i < n; i++)
            if (tasks[i]->state == T_DONE) {
                ret = (intptr_t)i;
                break;
            }
    }
    if (nodes != local)
        free(nodes);
    return (int)ret;
}

/* Nothing can complete and nothing runs, but a timer is armed: sleep in
 * the kernel until it is due (the ring has nothing to wait for). */
static void sleep_until_timer(struct uco_rt *rt)
{
    uint64_t at = sched_next_timer(rt);
    struct timespec ts = {.tv_sec = (time_t)(at / 1000000000u),
                          .tv_nsec = (long)(at % 1000000000u)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* One pass runs the tasks that were runnable when it began (asyncio's
 * "ready" snapshot); tasks woken meanwhile wait for the next pass, after
 * the reactor has submitted and reaped and due timers have fired. */
static void sched_loop(struct uco_rt *rt)
{
    for (;;) {
        if (rt->dead.base)
            stack_unmap(&rt->dead);
        if (!rt->live)
            return;
        /* A pass cut short to unmap a finished task's stack goes on. */
        uco_task *t = next_in_pass(rt);
        if (!t) {
            bool block = !rt->runq_head;
            if (block && rt->pool.nspare) {
                /* Idle: unmap spare stacks a few at a time, polling between
                 * batches, and block only once they are all gone. */
                stack_pool_trim(&rt->pool, 16);
                block = rt->pool.nspare == 0;
            }
            unsigned inflight = reactor_poll(rt, block);
            timers_fire(rt);
            t = pass_begin(rt);
            if (!t) {
                if (!block || inflight)
                    continue;
                if (rt->timers) {
                    sleep_until_timer(rt);
                    continue;
                }
                rt->deadlock = true;
                fprintf(stderr, "uco: deadlock: %zu task(s) parked with nothing in flight "
                                "that could wake them\n", rt->live);
                return;
            }
        }
        coro_switch(&rt->sched_ctx, enter_timed(rt, t));
        rt->current = NULL;
    }
}

/* After a deadlock, each parked task is resumed once only to leave through
 * coro_exit(), so that the sanitizers drop its state as for any finished
 * task.  Its own frames are abandoned, not unwound. */
static void discard_parked(struct uco_rt *rt)
{
    for (uco_task *t = rt->all; t; t = t->all_next) {
        if (t->state == T_DONE)
            continue;
        rt->current = t;
        coro_switch(&rt->sched_ctx, &t->ctx);
    }
    rt->current = NULL;
}

static void rt_destroy(struct uco_rt *rt)
{
    if (rt->debug)
        debug_unjoined(rt);
    if (rt->deadlock)
        discard_parked(rt);
    offload_fini(rt); /* no worker may touch a task's stack after this */
    while (rt->all)
        task_free(rt, rt->all);
    while (rt->task_cache) /* what task_free kept, too */
        free(task_alloc(rt));
    stack_unmap(&rt->dead);
    overflow_remove(rt);
    reactor_fini(rt);
    stack_pool_fini(&rt->pool);
    free(rt);
}

static int rt_create(const uco_config *c, struct uco_rt **out)
{
    if (c->stack_size && c->stack_size < UCO_STACK_MIN)
        return -EINVAL;
    if (c->flags & ~(UCO_CFG_NO_DEFER_TASKRUN | UCO_CFG_DEBUG))
        return -EINVAL;
    if (c->offload_threads > 1024)
        return -EINVAL;
    struct uco_rt *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return -ENOMEM;
    size_t size = stack_round(c->stack_size ? c->stack_size : UCO_STACK_DEFAULT);
    int ret = stack_pool_init(&rt->pool, size, c->stack_pool ? c->stack_pool : 256);
    if (ret < 0) {
        free(rt);
        return ret;
    }
    coro_init_thread(&rt->sched_ctx);
    rt->offload_threads = c->offload_threads ? c->offload_threads : 4;
    rt->timer_slack = c->timer_slack_ns ? c->timer_slack_ns : 50000;
    const char *env = getenv("UCO_DEBUG");
    rt->debug = (c->flags & UCO_CFG_DEBUG) || (env && strcmp(env, "1") == 0);
    rt->debug_slow_ns = (uint64_t)(c->debug_slow_ms ? c->debug_slow_ms : 100) * 1000000u;
    ret = reactor_init(rt, c);
    if (ret == 0)
        ret = overflow_install(rt);
    if (ret < 0) {
        rt_destroy(rt);
        return ret;
    }
    *out = rt;
    return 0;
}

intptr_t uco_run(uco_fn fn, void *arg, const uco_config *cfg)
{
    if (uco_rt_cur)
        return -EBUSY;
    if (!fn)
        return -EINVAL;
    uco_config c = {0};
    if (cfg)
        c = *cfg;
    struct uco_rt *rt;
    int ret = rt_create(&c, &rt);
    if (ret < 0)
        return ret;
    uco_rt_cur = rt;
    uco_task *main_task;
    intptr_t res = task_create(rt, fn, arg, rt->pool.size, &main_task);
    if (res == 0) {
        main_task->flags |= TF_JOINED; /* uco_run takes its result */
        sched_loop(rt);
        res = rt->deadlock ? -EDEADLK : main_task->result;
    }
    rt_destroy(rt);
    uco_rt_cur = NULL;
    return res;
}
