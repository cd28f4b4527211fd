/* Blocking offload (asyncio.to_thread): a bounded per-runtime thread pool.
 *
 * A job lives in the awaiting task's frame.  Workers take jobs from a
 * mutex+condvar queue, run them, move them to a done list and write 1 to
 * an eventfd.  The loop keeps one IORING_OP_READ on that eventfd in flight
 * while jobs are outstanding: the reactor counts it (so waiting on a job
 * is never mistaken for a deadlock) and the loop sleeps in the kernel
 * until a job ends.  Its completion handler hands results back. */
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

#if defined(__has_include) && __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define ON_VALGRIND() RUNNING_ON_VALGRIND
#else
#define ON_VALGRIND() 0
#endif

enum job_state { J_QUEUED, J_RUNNING, J_DONE };

/* One uco_offload() call, in the caller's frame: no allocation per call. */
struct job {
    uco_fn fn;
    void *arg;
    intptr_t result;          /* written by the worker under the mutex */
    enum job_state state;     /* under the mutex */
    struct job *prev, *next;  /* the queue, then the done list (under the mutex) */
    struct waitq waitq;       /* private: only the caller waits on it */
    struct wnode node;
};

struct offload {
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* idle workers wait here */
    struct job *qhead, *qtail; /* doubly linked: a cancelled job leaves from anywhere */
    struct job *dhead, *dtail; /* finished, not yet handed back */
    unsigned nqueued, nidle, nthreads, max;
    bool stop;
    pthread_t *threads;        /* max slots, nthreads used */
    int efd;
    /* The loop thread's own: */
    unsigned outstanding;      /* jobs submitted whose caller is not yet answered */
    bool armed;                /* the eventfd read is in flight */
    uint64_t count;            /* the read's buffer */
    struct uco_op op;
    bool vg_tick;              /* under valgrind: see tick_arm() */
    bool tick_armed;
    struct uco_op tick;
    int64_t tick_ts[2];        /* its struct __kernel_timespec */
};

/* ---- the queue and the workers (mutex held unless said otherwise) ---- */

static void queue_unlink(struct offload *off, struct job *job)
{
    if (job->prev)
        job->prev->next = job->next;
    else
        off->qhead = job->next;
    if (job->next)
        job->next->prev = job->prev;
    else
        off->qtail = job->prev;
    off->nqueued--;
}

static void queue_push(struct offload *off, struct job *job)
{
    job->state = J_QUEUED;
    job->next = NULL;
    job->prev = off->qtail;
    if (off->qtail)
        off->qtail->next = job;
    else
        off->qhead = job;
    off->qtail = job;
    off->nqueued++;
}

/* Completes the loop's eventfd read.  Cannot fail: an eventfd write
 * only blocks on a full counter, and 2^64 - 2 wake-ups never pile up. */
static void notify(struct offload *off)
{
    uint64_t one = 1;
    ssize_t n = write(off->efd, &one, sizeof(one));
    (void)n;
}

/* The done list goes back whole to the loop, after a read completion that
 * follows the write made when the list became non-empty: one write per
 * batch is enough (later jobs ride on the same wake-up). */
static void job_done(struct offload *off, struct job *job, intptr_t result)
{
    job->result = result;
    job->state = J_DONE;
    job->next = NULL;
    bool was_empty = !off->dhead;
    if (off->dtail)
        off->dtail->next = job;
    else
        off->dhead = job;
    off->dtail = job;
    if (was_empty)
        notify(off);
}

/* The next job to run, or NULL when the pool stops.  Stop comes only once
 * nothing is queued (see offload_fini). */
static struct job *worker_next(struct offload *off)
{
    while (!off->qhead && !off->stop) {
        off->nidle++;
        pthread_cond_wait(&off->cv, &off->mu);
        off->nidle--;
    }
    if (off->stop)
        return NULL;
    struct job *job = off->qhead;
    queue_unlink(off, job);
    job->state = J_RUNNING; /* from now on the caller must wait for the end */
    return job;
}

static void *worker_main(void *arg)
{
    struct offload *off = arg;
    struct job *job;
    pthread_mutex_lock(&off->mu);
    while ((job = worker_next(off))) {
        pthread_mutex_unlock(&off->mu);
        intptr_t result = job->fn(job->arg);
        pthread_mutex_lock(&off->mu);
        job_done(off, job, result);
    }
    pthread_mutex_unlock(&off->mu);
    return NULL;
}

/* The worker is born with every signal blocked (it inherits the mask of
 * its creator), so process signals always reach the application's own
 * threads, never a worker, not even before it could block them itself. */
static int worker_start(struct offload *off)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&off->threads[off->nthreads], NULL, worker_main, off);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err)
        return -err;
    off->nthreads++;
    return 0;
}

/* Queues job, starting a worker when the queued jobs outnumber the idle
 * workers (an idle worker already signalled still counts as idle until it
 * takes a job, so comparing with nqueued avoids under-starting).  A failed
 * start only matters when no worker exists at all. */
static int pool_push(struct offload *off, struct job *job)
{
    int ret = 0;
    pthread_mutex_lock(&off->mu);
    if (off->nqueued >= off->nidle && off->nthreads < off->max)
        ret = worker_start(off);
    if (off->nthreads) {
        queue_push(off, job);
        pthread_cond_signal(&off->cv);
        ret = 0;
    }
    pthread_mutex_unlock(&off->mu);
    return ret;
}

/* Takes job back if no worker has picked it yet; false once it started. */
static bool pool_unqueue(struct offload *off, struct job *job)
{
    pthread_mutex_lock(&off->mu);
    bool queued = job->state == J_QUEUED;
    if (queued)
        queue_unlink(off, job);
    pthread_mutex_unlock(&off->mu);
    return queued;
}

/* ---- loop side ---- */

static void read_arm(struct uco_rt *rt, struct offload *off)
{
    struct io_uring_sqe *sqe = reactor_sqe(rt);
    io_uring_prep_read(sqe, off->efd, &off->count, sizeof(off->count), 0);
    reactor_arm(rt, sqe, &off->op);
    off->armed = true;
}

/* valgrind runs one thread at a time and does not know that io_uring_enter
 * blocks (3.19 at least): while the loop waits in the kernel, no worker
 * gets to run, and the job the loop waits for never ends.  So under
 * valgrind a 1 ms timer keeps waking the loop while jobs are out, and its
 * handler yields to the workers (sched_yield lets valgrind switch). */
static void tick_arm(struct uco_rt *rt, struct offload *off)
{
    struct io_uring_sqe *sqe = reactor_sqe(rt);
    off->tick_ts[0] = 0;
    off->tick_ts[1] = 1000000;
    io_uring_prep_timeout(sqe, (struct __kernel_timespec *)off->tick_ts, 0, 0);
    reactor_arm(rt, sqe, &off->tick);
    off->tick_armed = true;
}

static void on_tick(struct uco_rt *rt, struct uco_op *op, int res, unsigned flags)
{
    struct offload *off = rt->offload;
    off->tick_armed = false;
    sched_yield();
    if (off->outstanding)
        tick_arm(rt, off);
}

/* The eventfd read completed (a job ended, or a stale count): hand every
 * finished job back, and keep a read in flight while jobs are out.  An
 * error result changes nothing: the done list is the truth. */
static void on_read(struct uco_rt *rt, struct uco_op *op, int res, unsigned flags)
{
    struct offload *off = rt->offload;
    off->armed = false;
    pthread_mutex_lock(&off->mu);
    struct job *job = off->dhead;
    off->dhead = off->dtail = NULL;
    pthread_mutex_unlock(&off->mu);
    while (job) {
        struct job *next = job->next; /* once woken, the caller may return */
        off->outstanding--;
        sched_wake_node(rt, &job->node, 0);
        job = next;
    }
    if (off->outstanding)
        read_arm(rt, off);
}

/* A job left the queue unanswered.  When it was the last one out, the
 * read still in flight would wait for nothing, yet the reactor would count
 * it and so hide a real deadlock: complete it by writing the eventfd. */
static void job_forget(struct offload *off)
{
    if (!--off->outstanding && off->armed)
        notify(off);
}

static int pool_create(struct uco_rt *rt)
{
    struct offload *off = calloc(1, sizeof(*off));
    pthread_t *threads = calloc(rt->offload_threads, sizeof(*threads));
    if (!off || !threads) {
        free(off);
        free(threads);
        return -ENOMEM;
    }
    int efd = eventfd(0, EFD_CLOEXEC);
    if (efd < 0) {
        int err = -errno;
        free(off);
        free(threads);
        return err;
    }
    /* Default attributes: these inits cannot fail on Linux. */
    pthread_mutex_init(&off->mu, NULL);
    pthread_cond_init(&off->cv, NULL);
    off->threads = threads;
    off->max = rt->offload_threads;
    off->efd = efd;
    off->op.handler = on_read;
    off->tick.handler = on_tick;
    off->vg_tick = ON_VALGRIND();
    rt->offload = off;
    return 0;
}

static int job_submit(struct uco_rt *rt, struct offload *off, struct job *job)
{
    int ret = pool_push(off, job);
    if (ret < 0)
        return ret;
    off->outstanding++;
    if (!off->armed)
        read_arm(rt, off);
    if (off->vg_tick && !off->tick_armed)
        tick_arm(rt, off);
    waitq_push(&job->waitq, &job->node);
    return 0;
}

/* Waits for job.  A deadline or a cancel ends the wait only while fn has
 * not started; afterwards the worker writes into this frame, so we must
 * see it through.  Returns 0 (result ready) or the error of the wait. */
static int job_wait(struct uco_rt *rt, struct offload *off, struct job *job)
{
    intptr_t ret = sched_wait(rt, &job->node, 1);
    if (ret >= 0)
        return 0;
    if (pool_unqueue(off, job)) {
        job_forget(off);
        return (int)ret;
    }
    /* We return the result, not -ECANCELED: the cancel stays pending for
     * the next await.  (A passed deadline is seen again by itself.) */
    if (ret == -ECANCELED)
        rt->current->cancel_pending = true;
    waitq_push(&job->waitq, &job->node);
    sched_wait_until_fired(rt, &job->node);
    return 0;
}

int uco_offload(intptr_t (*fn)(void *arg), void *arg, intptr_t *result)
{
    struct uco_rt *rt = uco_rt_cur;
    uco_task *self = rt ? rt->current : NULL;
    if (!self)
        return -EPERM;
    if (!fn)
        return -EINVAL;
    /* A caller already cancelled or late must not start fn at all. */
    int ret = sched_await_check(self);
    if (ret == 0 && !rt->offload)
        ret = pool_create(rt);
    if (ret < 0)
        return ret;
    struct job job = {.fn = fn, .arg = arg, .node = {.task = self}};
    ret = job_submit(rt, rt->offload, &job);
    if (ret == 0)
        ret = job_wait(rt, rt->offload, &job);
    if (ret == 0 && result)
        *result = job.result;
    return ret;
}

/* A read left in flight (see job_forget) or a tick still points into
 * *off: let them complete and reap them before off is freed.  Nothing is
 * outstanding any more, so the handlers do not re-arm. */
static void ops_settle(struct uco_rt *rt, struct offload *off)
{
    if (off->armed)
        notify(off);
    while (off->armed || off->tick_armed)
        reactor_poll(rt, true);
}

void offload_fini(struct uco_rt *rt)
{
    struct offload *off = rt->offload;
    if (!off)
        return;
    pthread_mutex_lock(&off->mu);
    off->stop = true;
    pthread_cond_broadcast(&off->cv);
    pthread_mutex_unlock(&off->mu);
    for (unsigned i = 0; i < off->nthreads; i++)
        pthread_join(off->threads[i], NULL);
    ops_settle(rt, off);
    close(off->efd);
    pthread_cond_destroy(&off->cv);
    pthread_mutex_destroy(&off->mu);
    free(off->threads);
    free(off);
    rt->offload = NULL;
}
