/* The offload pool: results come back, the loop keeps running, the thread
 * bound holds, cancels and deadlines stop only jobs not yet started, and
 * threads and fds are returned. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util.h"

/* Threads of this process. */
static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 2; /* "." and ".." */
}

/* ---- pthread_create as the runtime sees it ----
 * libuco.a is linked into this program, so its calls land here.  It can
 * fail on demand, or hold new threads at a gate before they start, to reach
 * paths that real failures and races reach only by chance. */

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

static int create_fail;  /* error to return instead of creating a thread */
static sem_t *create_gate; /* when set, new threads wait on it first */

struct gated {
    void *(*fn)(void *);
    void *arg;
    sem_t *gate;
};

static void *gated_start(void *p)
{
    struct gated g = *(struct gated *)p;
    free(p);
    while (sem_wait(g.gate) != 0)
        ;
    return g.fn(g.arg);
}

int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    create_fn real = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
    if (create_fail)
        return create_fail;
    if (!create_gate)
        return real(th, attr, fn, arg);
    struct gated *g = malloc(sizeof(*g));
    if (!g)
        return EAGAIN;
    *g = (struct gated){fn, arg, create_gate};
    int err = real(th, attr, gated_start, g);
    if (err)
        free(g);
    return err;
}

/* ---- shared jobs ---- */

static atomic_int marker_ran;

static intptr_t marker(void *arg)
{
    atomic_fetch_add(&marker_ran, 1);
    return 22;
}

static sem_t release; /* posted by the loop to let a blocker end */

static intptr_t blocker(void *arg)
{
    while (sem_wait(&release) != 0)
        ;
    return 11;
}

/* Runs fn on the pool; returns its result, or the error of uco_offload. */
static intptr_t offload_or_error(intptr_t (*fn)(void *), void *arg)
{
    intptr_t r = -1;
    int ret = uco_offload(fn, arg, &r);
    return ret < 0 ? ret : r;
}

static intptr_t blocker_task(void *arg) { return offload_or_error(blocker, NULL); }

static atomic_int marker_waiting;

static intptr_t marker_task(void *arg)
{
    atomic_store(&marker_waiting, 1);
    return offload_or_error(marker, NULL);
}

static void reset(void)
{
    atomic_store(&marker_ran, 0);
    atomic_store(&marker_waiting, 0);
    create_fail = 0;
    create_gate = NULL;
    sem_init(&release, 0, 0);
}

/* ---- results ---- */

struct triple {
    int in, out;
    pthread_t thread;
};

static intptr_t triple(void *arg)
{
    struct triple *t = arg;
    t->out = t->in * 3;
    t->thread = pthread_self();
    return t->in * 3 + 1;
}

static intptr_t result_main(void *arg)
{
    struct triple t = {.in = 14};
    intptr_t r = -1;
    ck_assert_int_eq(uco_offload(triple, &t, &r), 0);
    ck_assert_int_eq(r, 43);
    ck_assert_int_eq(t.out, 42);
    ck_assert(!pthread_equal(t.thread, pthread_self())); /* ran on a worker */
    t.in = 5;
    ck_assert_int_eq(uco_offload(triple, &t, NULL), 0); /* result is optional */
    ck_assert_int_eq(t.out, 15);
    return 0;
}

START_TEST(test_offload_returns_fn_result_and_side_effects)
{
    /* Main alone awaits the pool: no false deadlock either. */
    ck_assert_int_eq(uco_run(result_main, NULL, NULL), 0);
}
END_TEST

/* ---- the loop keeps running ---- */

static atomic_int job_busy;
static int sleeps_during_job, yields_during_job;
static int ticker_stop;

static intptr_t blocking_200ms(void *arg)
{
    atomic_store(&job_busy, 1);
    usleep(200000);
    atomic_store(&job_busy, 0);
    return 7;
}

static intptr_t ticker(void *arg)
{
    while (!ticker_stop) {
        uco_sleep(UCO_MSEC(5));
        sleeps_during_job += atomic_load(&job_busy);
        uco_yield();
        yields_during_job += atomic_load(&job_busy);
    }
    return 0;
}

static intptr_t progress_main(void *arg)
{
    uco_task *t = uco_spawn(ticker, NULL);
    intptr_t r = offload_or_error(blocking_200ms, NULL);
    ticker_stop = 1;
    ck_assert_int_eq(uco_join(t, NULL), 0);
    return r;
}

START_TEST(test_loop_runs_other_tasks_during_a_blocking_job)
{
    atomic_store(&job_busy, 0);
    sleeps_during_job = yields_during_job = ticker_stop = 0;
    ck_assert_int_eq(uco_run(progress_main, NULL, NULL), 7);
    /* About 40 rounds of 5 ms fit in the job's 200 ms. */
    ck_assert_msg(sleeps_during_job >= 10, "%d sleeps during the job", sleeps_during_job);
    ck_assert_msg(yields_during_job >= 10, "%d yields during the job", yields_during_job);
}
END_TEST

static intptr_t idle_main(void *arg)
{
    double *used = arg;
    ck_assert_int_eq(offload_or_error(marker, NULL), 22); /* start the pool first */
    double c0 = cpu_sec();
    intptr_t r = offload_or_error(blocking_200ms, NULL);
    *used = cpu_sec() - c0;
    return r;
}

START_TEST(test_waiting_for_a_job_blocks_in_the_kernel)
{
    double used = 1;
    reset();
    ck_assert_int_eq(uco_run(idle_main, &used, NULL), 7);
    /* Polling the done list would burn the whole 200 ms. */
    ck_assert_msg(used < 0.05, "used %.3f s of CPU while waiting", used);
}
END_TEST

/* ---- the thread bound ---- */

static atomic_int running, max_running;

static intptr_t nap(void *arg)
{
    int now = atomic_fetch_add(&running, 1) + 1;
    int max = atomic_load(&max_running);
    while (now > max && !atomic_compare_exchange_weak(&max_running, &max, now))
        ;
    usleep((useconds_t)(intptr_t)arg * 1000);
    atomic_fetch_sub(&running, 1);
    return (intptr_t)arg;
}

static intptr_t nap_task(void *arg) { return offload_or_error(nap, arg); }

struct pool_run {
    int jobs, ms;
    int threads_during; /* threads of the process while the pool lives */
};

static intptr_t pool_main(void *arg)
{
    struct pool_run *p = arg;
    uco_task *t[16];
    intptr_t r[16];
    for (int i = 0; i < p->jobs; i++)
        t[i] = uco_spawn(nap_task, (void *)(intptr_t)p->ms);
    ck_assert_int_eq(uco_gather(t, (size_t)p->jobs, r), 0);
    for (int i = 0; i < p->jobs; i++)
        ck_assert_int_eq(r[i], p->ms);
    p->threads_during = count_threads();
    return 0;
}

/* Runs jobs naps of ms on a pool of `threads`; returns the wall time. */
static double run_pool(unsigned threads, int jobs, int ms)
{
    struct pool_run p = {.jobs = jobs, .ms = ms};
    uco_config c = {.offload_threads = threads};
    atomic_store(&running, 0);
    atomic_store(&max_running, 0);
    double t0 = now_sec();
    ck_assert_int_eq(uco_run(pool_main, &p, &c), 0);
    return now_sec() - t0;
}

START_TEST(test_eight_jobs_on_four_threads_run_four_at_a_time)
{
    double dt = run_pool(4, 8, 100);
    ck_assert_msg(dt >= 0.19 && dt < 0.8, "took %.3f s", dt);
    ck_assert_int_eq(atomic_load(&max_running), 4);
}
END_TEST

START_TEST(test_bound_of_one_runs_jobs_one_at_a_time)
{
    double dt = run_pool(1, 4, 50);
    ck_assert_msg(dt >= 0.19 && dt < 0.8, "took %.3f s", dt);
    ck_assert_int_eq(atomic_load(&max_running), 1);
}
END_TEST

START_TEST(test_bound_of_two_runs_jobs_two_at_a_time)
{
    double dt = run_pool(2, 4, 100);
    ck_assert_msg(dt >= 0.19 && dt < 0.8, "took %.3f s", dt);
    ck_assert_int_eq(atomic_load(&max_running), 2);
}
END_TEST

START_TEST(test_default_bound_is_four)
{
    run_pool(0, 6, 50);
    ck_assert_int_eq(atomic_load(&max_running), 4);
}
END_TEST

/* ---- cancellation and deadlines ---- */

static intptr_t cancel_queued_main(void *arg)
{
    uco_task *b = uco_spawn(blocker_task, NULL);
    uco_task *m = uco_spawn(marker_task, NULL);
    ck_assert_int_eq(uco_yield(), 0); /* both submit; the blocker holds the only worker */
    ck_assert_int_eq(atomic_load(&marker_waiting), 1);
    ck_assert_int_eq(uco_cancel(m), 1);
    intptr_t r;
    ck_assert_int_eq(uco_join(m, &r), 0);
    ck_assert_int_eq(r, -ECANCELED);
    sem_post(&release);
    ck_assert_int_eq(uco_join(b, &r), 0);
    ck_assert_int_eq(r, 11);
    return 0;
}

START_TEST(test_cancel_while_queued_returns_ecanceled_and_fn_never_runs)
{
    reset();
    uco_config c = {.offload_threads = 1};
    ck_assert_int_eq(uco_run(cancel_queued_main, NULL, &c), 0);
    ck_assert_int_eq(atomic_load(&marker_ran), 0); /* the pool is gone: final */
}
END_TEST

static intptr_t timed_marker_task(void *arg)
{
    uint64_t saved;
    ck_assert_int_eq(uco_timeout_begin(UCO_MSEC(50), &saved), 0);
    intptr_t r = offload_or_error(marker, NULL);
    uco_timeout_end(saved);
    return r;
}

static intptr_t timeout_queued_main(void *arg)
{
    uco_task *b = uco_spawn(blocker_task, NULL);
    uco_task *m = uco_spawn(timed_marker_task, NULL);
    intptr_t r;
    ck_assert_int_eq(uco_join(m, &r), 0);
    ck_assert_int_eq(r, -ETIMEDOUT);
    sem_post(&release);
    ck_assert_int_eq(uco_join(b, &r), 0);
    ck_assert_int_eq(r, 11);
    return 0;
}

START_TEST(test_timeout_while_queued_returns_etimedout_and_fn_never_runs)
{
    reset();
    uco_config c = {.offload_threads = 1};
    ck_assert_int_eq(uco_run(timeout_queued_main, NULL, &c), 0);
    ck_assert_int_eq(atomic_load(&marker_ran), 0);
}
END_TEST

/* A job that says it started (through a pipe the loop can await), then
 * waits for the loop to release it. */
static int started_pipe[2];

static intptr_t announced_blocker(void *arg)
{
    ssize_t n = write(started_pipe[1], "s", 1);
    (void)n;
    return blocker(arg) + 22; /* 33 */
}

static int await_started(void)
{
    char c;
    struct io_uring_sqe *sqe = uco_sqe();
    io_uring_prep_read(sqe, started_pipe[0], &c, 1, 0);
    return uco_await(sqe);
}

struct outcome {
    int ret, next, after;
    intptr_t result;
    uint64_t timeout; /* a deadline scope around the offload; 0 = none */
};

/* Offloads announced_blocker, then awaits twice more. */
static intptr_t running_task(void *arg)
{
    struct outcome *o = arg;
    uint64_t saved = 0;
    if (o->timeout)
        uco_timeout_begin(o->timeout, &saved);
    o->ret = uco_offload(announced_blocker, NULL, &o->result);
    o->next = uco_yield();
    uco_timeout_end(saved);
    o->after = uco_yield();
    return 0;
}

static intptr_t cancel_running_main(void *arg)
{
    struct outcome *o = arg;
    uco_task *t = uco_spawn(running_task, o);
    ck_assert_int_eq(await_started(), 1); /* fn is running now */
    ck_assert_int_eq(uco_cancel(t), 1);
    ck_assert_int_eq(uco_yield(), 0); /* t sees the cancel while fn still runs */
    sem_post(&release);
    return uco_join(t, NULL);
}

START_TEST(test_cancel_while_running_keeps_the_result_and_cancels_the_next_await)
{
    reset();
    ck_assert_int_eq(pipe(started_pipe), 0);
    struct outcome o = {.ret = 1};
    ck_assert_int_eq(uco_run(cancel_running_main, &o, NULL), 0);
    ck_assert_int_eq(o.ret, 0);
    ck_assert_int_eq(o.result, 33);
    ck_assert_int_eq(o.next, -ECANCELED);
    ck_assert_int_eq(o.after, 0); /* delivered once */
    close(started_pipe[0]);
    close(started_pipe[1]);
}
END_TEST

static intptr_t timeout_running_main(void *arg)
{
    struct outcome *o = arg;
    uco_task *t = uco_spawn(running_task, o);
    ck_assert_int_eq(await_started(), 1);
    /* Ends after t's deadline, which was set before fn started. */
    ck_assert_int_eq(uco_sleep(2 * o->timeout), 0);
    sem_post(&release);
    return uco_join(t, NULL);
}

START_TEST(test_timeout_while_running_keeps_the_result)
{
    reset();
    ck_assert_int_eq(pipe(started_pipe), 0);
    struct outcome o = {.ret = 1, .timeout = UCO_MSEC(50)};
    ck_assert_int_eq(uco_run(timeout_running_main, &o, NULL), 0);
    ck_assert_int_eq(o.ret, 0);
    ck_assert_int_eq(o.result, 33);
    ck_assert_int_eq(o.next, -ETIMEDOUT); /* the scope's deadline has passed */
    ck_assert_int_eq(o.after, 0);        /* and is gone with the scope */
    close(started_pipe[0]);
    close(started_pipe[1]);
}
END_TEST

static intptr_t precancelled_main(void *arg)
{
    int threads = count_threads();
    ck_assert_int_eq(uco_cancel(uco_self()), 1);
    ck_assert_int_eq(offload_or_error(marker, NULL), -ECANCELED);
    uint64_t saved;
    uco_timeout_begin(0, &saved);
    ck_assert_int_eq(offload_or_error(marker, NULL), -ETIMEDOUT);
    uco_timeout_end(saved);
    ck_assert_int_eq(count_threads(), threads); /* not even a worker was started */
    return 0;
}

START_TEST(test_cancelled_or_late_caller_never_starts_fn)
{
    reset();
    ck_assert_int_eq(uco_run(precancelled_main, NULL, NULL), 0);
    ck_assert_int_eq(atomic_load(&marker_ran), 0);
}
END_TEST

/* The worker is held at its start, so the job is surely queued when the
 * cancel lands, and it was the only job out. */
static sem_t gate;

static intptr_t last_job_main(void *arg)
{
    uco_task *m = uco_spawn(marker_task, NULL);
    ck_assert_int_eq(uco_yield(), 0);
    ck_assert_int_eq(uco_cancel(m), 1);
    intptr_t r;
    ck_assert_int_eq(uco_join(m, &r), 0);
    ck_assert_int_eq(r, -ECANCELED);
    create_gate = NULL;
    sem_post(&gate);
    /* Nothing may be left in flight for the pool: this is a deadlock. */
    return uco_park();
}

START_TEST(test_cancelling_the_last_job_leaves_nothing_in_flight)
{
    reset();
    sem_init(&gate, 0, 0);
    create_gate = &gate;
    ck_assert_int_eq(uco_run(last_job_main, NULL, NULL), -EDEADLK);
    ck_assert_int_eq(atomic_load(&marker_ran), 0);
    sem_destroy(&gate);
}
END_TEST

/* ---- resources and errors ---- */

START_TEST(test_threads_and_fds_are_returned_after_uco_run)
{
    int fds = count_fds(), threads = count_threads();
    struct pool_run p = {.jobs = 8, .ms = 20};
    uco_config c = {.offload_threads = 4};
    ck_assert_int_eq(uco_run(pool_main, &p, &c), 0);
    ck_assert_int_eq(p.threads_during, threads + 4);
    ck_assert_int_eq(count_threads(), threads);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

static intptr_t einval_main(void *arg)
{
    int threads = count_threads();
    intptr_t r = 5;
    ck_assert_int_eq(uco_offload(NULL, NULL, &r), -EINVAL);
    ck_assert_int_eq(r, 5);
    ck_assert_int_eq(count_threads(), threads); /* no pool for nothing */
    return 0;
}

START_TEST(test_offload_argument_errors)
{
    reset();
    intptr_t r = 5;
    ck_assert_int_eq(uco_offload(marker, NULL, &r), -EPERM);
    ck_assert_int_eq(r, 5);
    ck_assert_int_eq(atomic_load(&marker_ran), 0);
    ck_assert_int_eq(uco_run(einval_main, NULL, NULL), 0);
}
END_TEST

static intptr_t emfile_main(void *arg)
{
    int threads = count_threads();
    struct rlimit old, low;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    int lowest = dup(2); /* the lowest free fd: refuse it and above */
    close(lowest);
    low = old;
    low.rlim_cur = (rlim_t)lowest;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    intptr_t r = offload_or_error(marker, NULL);
    setrlimit(RLIMIT_NOFILE, &old);
    ck_assert_int_eq(r, -EMFILE);
    ck_assert_int_eq(count_threads(), threads);
    ck_assert_int_eq(offload_or_error(marker, NULL), 22); /* tried again */
    return 0;
}

START_TEST(test_eventfd_failure_is_returned_and_retried)
{
    reset();
    int fds = count_fds(), threads = count_threads();
    ck_assert_int_eq(uco_run(emfile_main, NULL, NULL), 0);
    ck_assert_int_eq(atomic_load(&marker_ran), 1);
    ck_assert_int_eq(count_threads(), threads);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

static intptr_t no_thread_main(void *arg)
{
    create_fail = EAGAIN;
    intptr_t r = offload_or_error(marker, NULL);
    create_fail = 0;
    ck_assert_int_eq(r, -EAGAIN);
    ck_assert_int_eq(offload_or_error(marker, NULL), 22);
    /* One worker exists now: failing to add more only costs parallelism. */
    create_fail = EAGAIN;
    uco_task *t[3];
    intptr_t res[3];
    for (int i = 0; i < 3; i++)
        t[i] = uco_spawn(nap_task, (void *)20);
    int ret = uco_gather(t, 3, res);
    create_fail = 0;
    ck_assert_int_eq(ret, 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(res[i], 20);
    return 0;
}

START_TEST(test_thread_creation_failure_is_returned_cleanly)
{
    reset();
    atomic_store(&running, 0);
    atomic_store(&max_running, 0);
    int fds = count_fds(), threads = count_threads();
    ck_assert_int_eq(uco_run(no_thread_main, NULL, NULL), 0);
    ck_assert_int_eq(atomic_load(&marker_ran), 1);
    ck_assert_int_eq(atomic_load(&max_running), 1);
    ck_assert_int_eq(count_threads(), threads);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

static intptr_t sigmask_fn(void *arg)
{
    sigset_t s;
    pthread_sigmask(SIG_BLOCK, NULL, &s);
    return sigismember(&s, SIGINT) && sigismember(&s, SIGTERM) && sigismember(&s, SIGUSR1) &&
           sigismember(&s, SIGCHLD) && sigismember(&s, SIGRTMIN);
}

static intptr_t sigmask_main(void *arg)
{
    ck_assert_int_eq(offload_or_error(sigmask_fn, NULL), 1);
    sigset_t s;
    pthread_sigmask(SIG_BLOCK, NULL, &s);
    ck_assert_int_eq(sigismember(&s, SIGUSR1), 0); /* the loop's mask is untouched */
    return 0;
}

START_TEST(test_workers_block_every_signal)
{
    ck_assert_int_eq(uco_run(sigmask_main, NULL, NULL), 0);
}
END_TEST

/* ---- many small jobs ---- */

static atomic_int small_runs;

static intptr_t twice_plus_one(void *arg)
{
    atomic_fetch_add(&small_runs, 1);
    return (intptr_t)arg * 2 + 1;
}

/* No ck_assert in the loop: 1,000 recorded passes are slow under valgrind. */
static intptr_t small_task(void *arg)
{
    intptr_t base = (intptr_t)arg, ok = 0;
    for (intptr_t i = 0; i < 20; i++) {
        intptr_t r = -1;
        ok += uco_offload(twice_plus_one, (void *)(base + i), &r) == 0 && r == (base + i) * 2 + 1;
    }
    return ok;
}

static intptr_t many_main(void *arg)
{
    uco_task *t[50];
    intptr_t r[50], total = 0;
    for (int i = 0; i < 50; i++)
        t[i] = uco_spawn(small_task, (void *)(intptr_t)(i * 1000));
    ck_assert_int_eq(uco_gather(t, 50, r), 0);
    for (int i = 0; i < 50; i++)
        total += r[i];
    return total;
}

START_TEST(test_a_thousand_small_jobs_from_fifty_tasks_all_return)
{
    atomic_store(&small_runs, 0);
    ck_assert_int_eq(uco_run(many_main, NULL, NULL), 1000);
    ck_assert_int_eq(atomic_load(&small_runs), 1000);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("offload");
    TCase *tc = tcase_create("offload");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_offload_returns_fn_result_and_side_effects);
    tcase_add_test(tc, test_loop_runs_other_tasks_during_a_blocking_job);
    tcase_add_test(tc, test_waiting_for_a_job_blocks_in_the_kernel);
    tcase_add_test(tc, test_eight_jobs_on_four_threads_run_four_at_a_time);
    tcase_add_test(tc, test_bound_of_one_runs_jobs_one_at_a_time);
    tcase_add_test(tc, test_bound_of_two_runs_jobs_two_at_a_time);
    tcase_add_test(tc, test_default_bound_is_four);
    tcase_add_test(tc, test_cancel_while_queued_returns_ecanceled_and_fn_never_runs);
    tcase_add_test(tc, test_timeout_while_queued_returns_etimedout_and_fn_never_runs);
    tcase_add_test(tc, test_cancel_while_running_keeps_the_result_and_cancels_the_next_await);
    tcase_add_test(tc, test_timeout_while_running_keeps_the_result);
    tcase_add_test(tc, test_cancelled_or_late_caller_never_starts_fn);
    tcase_add_test(tc, test_cancelling_the_last_job_leaves_nothing_in_flight);
    tcase_add_test(tc, test_threads_and_fds_are_returned_after_uco_run);
    tcase_add_test(tc, test_offload_argument_errors);
    tcase_add_test(tc, test_eventfd_failure_is_returned_and_retried);
    tcase_add_test(tc, test_thread_creation_failure_is_returned_cleanly);
    tcase_add_test(tc, test_workers_block_every_signal);
    tcase_add_test(tc, test_a_thousand_small_jobs_from_fifty_tasks_all_return);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
