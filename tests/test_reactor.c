/* The reactor: sleeps, custom awaitables, batching, a full SQ and an
 * overflowing CQ, the idle runtime blocking in the kernel. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"

/* ---- sleep ---- */

static int wake_log[8];
static int wake_n;

static intptr_t sleeper(void *arg)
{
    int ms = (int)(intptr_t)arg;
    ck_assert_int_eq(uco_sleep(UCO_MSEC(ms)), 0);
    if (wake_n < 8)
        wake_log[wake_n] = ms;
    wake_n++;
    return 0;
}

static intptr_t deadline_main(void *arg)
{
    (void)arg;
    static const int ms[] = {50, 10, 40, 20, 30};
    uco_task *t[5];
    for (int i = 0; i < 5; i++)
        t[i] = uco_spawn(sleeper, (void *)(intptr_t)ms[i]);
    ck_assert_int_eq(uco_gather(t, 5, NULL), 0);
    return 0;
}

START_TEST(test_sleeps_wake_in_deadline_order)
{
    wake_n = 0;
    ck_assert_int_eq(uco_run(deadline_main, NULL, NULL), 0);
    ck_assert_int_eq(wake_n, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(wake_log[i], (i + 1) * 10);
}
END_TEST

static intptr_t two_sleeps_main(void *arg)
{
    (void)arg;
    uco_task *t[2] = {uco_spawn(sleeper, (void *)200), uco_spawn(sleeper, (void *)200)};
    return uco_gather(t, 2, NULL);
}

START_TEST(test_two_200ms_sleeps_run_concurrently)
{
    double t0 = now_sec();
    ck_assert_int_eq(uco_run(two_sleeps_main, NULL, NULL), 0);
    double dt = now_sec() - t0;
    ck_assert_msg(dt >= 0.199 && dt < 0.35, "took %.3f s", dt);
}
END_TEST

static char zlog[8];
static int zn;

static intptr_t zero_sleeper(void *arg)
{
    zlog[zn++] = *(const char *)arg;
    ck_assert_int_eq(uco_sleep(0), 0);
    zlog[zn++] = *(const char *)arg;
    return 0;
}

/* Sleeps are timers in the runtime, not one kernel timeout each: many at
 * random deadlines still wake in deadline order, and those due together
 * in the order they were set.  Deadlines are absolute, shared by groups:
 * base + due[i], due[i] one of 8 values (a 20 ms slack rounds each sleep
 * up to exactly that), base far enough ahead for a slow spawn loop.  Each
 * task asks for base + due[i] - 10 ms, so a preemption of up to 10 ms
 * between its clock reads and uco_sleep's still rounds to the same end
 * (with a 1 ms slack and 0.5 ms of margin, a loaded CI machine once
 * pushed one sleeper into the next millisecond). */
#define ORDER_N 1000
#define ORDER_SLACK UCO_MSEC(20)
static uint64_t order_base, order_due[ORDER_N];
static int order_log[ORDER_N];
static int order_n;

static intptr_t order_sleeper(void *arg)
{
    int i = (int)(intptr_t)arg;
    uint64_t at = order_base + order_due[i] - ORDER_SLACK / 2;
    uint64_t now = uco_now();
    ck_assert(at > now);
    ck_assert_int_eq(uco_sleep(at - now), 0);
    order_log[order_n++] = i;
    return 0;
}

static intptr_t order_main(void *arg)
{
    (void)arg;
    static uco_task *t[ORDER_N];
    unsigned seed = 7;
    for (int i = 0; i < ORDER_N; i++) {
        seed = seed * 1103515245u + 12345u;
        order_due[i] = ORDER_SLACK + (seed >> 8) % 8 * ORDER_SLACK;
    }
    /* Under valgrind (one core for everything, every mmap slow) 1,000
     * spawns and first runs can take longer than 500 ms. */
    uint64_t ahead = UNDER_VALGRIND ? UCO_SEC(4) : UCO_MSEC(500);
    order_base = (uco_now() + ahead) / ORDER_SLACK * ORDER_SLACK;
    for (int i = 0; i < ORDER_N; i++)
        t[i] = uco_spawn(order_sleeper, (void *)(intptr_t)i);
    return uco_gather(t, ORDER_N, NULL);
}

START_TEST(test_many_sleeps_wake_by_deadline_then_in_the_order_set)
{
    order_n = 0;
    uco_config c = {.timer_slack_ns = ORDER_SLACK};
    ck_assert_int_eq(uco_run(order_main, NULL, &c), 0);
    ck_assert_int_eq(order_n, ORDER_N);
    for (int k = 1; k < ORDER_N; k++) {
        int a = order_log[k - 1], b = order_log[k];
        ck_assert(order_due[a] <= order_due[b]);
        if (order_due[a] == order_due[b])
            ck_assert_int_lt(a, b);
    }
}
END_TEST

/* The loop's wait in the kernel ends at the next timer even while an
 * operation that will not complete by itself is in flight. */
static int wake_pipe[2];

static intptr_t pipe_reader(void *arg)
{
    (void)arg;
    char c;
    return uco_read(wake_pipe[0], &c, 1, -1);
}

static intptr_t sleep_beside_io_main(void *arg)
{
    (void)arg;
    uco_task *r = uco_spawn(pipe_reader, NULL);
    uco_yield(); /* the read is in flight */
    double t0 = now_sec();
    ck_assert_int_eq(uco_sleep(UCO_MSEC(30)), 0);
    double dt = now_sec() - t0;
    ck_assert_msg(dt >= 0.029 && dt < 0.2, "slept %.3f s", dt);
    ck_assert_int_eq(write(wake_pipe[1], "x", 1), 1);
    intptr_t n = 0;
    ck_assert_int_eq(uco_join(r, &n), 0);
    return n;
}

START_TEST(test_sleep_ends_while_io_is_in_flight)
{
    ck_assert_int_eq(pipe(wake_pipe), 0);
    ck_assert_int_eq(uco_run(sleep_beside_io_main, NULL, NULL), 1);
    close(wake_pipe[0]);
    close(wake_pipe[1]);
}
END_TEST

static intptr_t zero_main(void *arg)
{
    (void)arg;
    uco_task *t[2] = {uco_spawn(zero_sleeper, "a"), uco_spawn(zero_sleeper, "b")};
    return uco_gather(t, 2, NULL);
}

START_TEST(test_zero_sleep_yields)
{
    memset(zlog, 0, sizeof(zlog));
    zn = 0;
    ck_assert_int_eq(uco_run(zero_main, NULL, NULL), 0);
    ck_assert_str_eq(zlog, "abab");
}
END_TEST

static intptr_t idle_main(void *arg)
{
    (void)arg;
    return uco_sleep(UCO_MSEC(300));
}

START_TEST(test_idle_runtime_blocks_in_the_kernel)
{
    double c0 = cpu_sec();
    ck_assert_int_eq(uco_run(idle_main, NULL, NULL), 0);
    double used = cpu_sec() - c0;
    /* A busy loop would burn the whole 300 ms. */
    ck_assert_msg(used < 0.05, "used %.3f s of CPU while sleeping", used);
}
END_TEST

/* ---- custom awaitables ---- */

static intptr_t await_main(void *arg)
{
    (void)arg;
    struct io_uring_sqe *sqe = uco_sqe();
    ck_assert_ptr_nonnull(sqe);
    io_uring_prep_nop(sqe);
    ck_assert_int_eq(uco_await(sqe), 0);

    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(write(p[1], "hello", 5), 5);
    char buf[16] = {0};
    sqe = uco_sqe();
    io_uring_prep_read(sqe, p[0], buf, sizeof(buf), 0);
    unsigned flags = 99;
    ck_assert_int_eq(uco_await_flags(sqe, &flags), 5);
    ck_assert_str_eq(buf, "hello");
    ck_assert_uint_eq(flags & IORING_CQE_F_MORE, 0);

    /* A read that must wait: the writer runs while the reader is parked. */
    close(p[1]);
    sqe = uco_sqe();
    io_uring_prep_read(sqe, p[0], buf, sizeof(buf), 0);
    ck_assert_int_eq(uco_await(sqe), 0); /* EOF */
    close(p[0]);

    sqe = uco_sqe();
    io_uring_prep_read(sqe, p[0], buf, sizeof(buf), 0); /* closed fd */
    ck_assert_int_eq(uco_await(sqe), -EBADF);
    ck_assert_int_eq(uco_await(NULL), -EINVAL);
    return 0;
}

START_TEST(test_custom_awaitables_return_the_cqe_result)
{
    ck_assert_int_eq(uco_run(await_main, NULL, NULL), 0);
}
END_TEST

/* A task alone takes its completions straight from the ring (see
 * await_alone in reactor.c), and between awaits that take the general
 * path (a deadline, a read cut off by it and its cancel's completion) it
 * must still get each await's own result, once, and leave nothing in
 * flight. */
static intptr_t alone_after_timeouts_main(void *arg)
{
    (void)arg;
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    char buf[8] = {0}; /* valgrind cannot see the kernel write it */
    for (int i = 0; i < 50; i++) {
        uint64_t saved;
        ck_assert_int_eq(uco_timeout_begin(UCO_USEC(200), &saved), 0);
        struct io_uring_sqe *sqe = uco_sqe();
        io_uring_prep_read(sqe, p[0], buf, sizeof(buf), 0);
        ck_assert_int_eq(uco_await(sqe), -ETIMEDOUT);
        ck_assert_int_eq(uco_timeout_end(saved), 0);
        ck_assert_int_eq(write(p[1], "ab", 2), 2);
        memset(buf, 0, sizeof(buf));
        sqe = uco_sqe();
        io_uring_prep_read(sqe, p[0], buf, sizeof(buf), 0);
        ck_assert_int_eq(uco_await(sqe), 2);
        ck_assert_int_eq(memcmp(buf, "ab", 2), 0);
        sqe = uco_sqe();
        io_uring_prep_nop(sqe);
        ck_assert_int_eq(uco_await(sqe), 0);
    }
    close(p[0]);
    close(p[1]);
    return 7;
}

/* A completion that is no await's (the runtime's own fire-and-forget
 * SQEs, async cancels, carry user_data 0; a NOP stands in for one here)
 * can be the only one in the ring when a lone task's await looks there:
 * the await must leave it to the general path and go on waiting for its
 * own.  The timeout's -ETIME, not the NOP's 0, says it did. */
static void queue_stray_nop(void)
{
    struct io_uring_sqe *stray = uco_sqe();
    io_uring_prep_nop(stray);
    io_uring_sqe_set_data64(stray, 0);
}

static intptr_t alone_beside_stray_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        queue_stray_nop();
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
        struct io_uring_sqe *sqe = uco_sqe();
        io_uring_prep_timeout(sqe, &ts, 0, 0);
        ck_assert_int_eq(uco_await(sqe), -ETIME);
    }
    /* Strays after the await's own SQE, all completing at once. */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(write(p[1], "xyz", 3), 3);
    char buf[8] = {0};
    struct io_uring_sqe *sqe = uco_sqe();
    queue_stray_nop();
    queue_stray_nop();
    io_uring_prep_read(sqe, p[0], buf, sizeof(buf), 0);
    ck_assert_int_eq(uco_await(sqe), 3);
    ck_assert_int_eq(memcmp(buf, "xyz", 3), 0);
    sqe = uco_sqe();
    io_uring_prep_nop(sqe);
    ck_assert_int_eq(uco_await(sqe), 0);
    close(p[0]);
    close(p[1]);
    return 5;
}

START_TEST(test_lone_task_await_leaves_a_stray_completion_alone)
{
    ck_assert_int_eq(uco_run(alone_beside_stray_main, NULL, NULL), 5);
}
END_TEST

/* A joined task's struct goes to the next spawn (sched.c keeps them):
 * the new task must start clean, with nothing of the old one's state.
 * The first leaves a 1 ms deadline open as it returns; the second's 30 ms
 * sleep must still sleep its full time and return 0. */
static intptr_t leave_deadline(void *arg)
{
    uint64_t saved;
    ck_assert_int_eq(uco_timeout_begin(UCO_MSEC(1), &saved), 0);
    return (intptr_t)arg;
}

static intptr_t sleep_30ms(void *arg)
{
    (void)arg;
    return uco_sleep(UCO_MSEC(30));
}

static intptr_t reused_struct_main(void *arg)
{
    (void)arg;
    intptr_t r = -1;
    uco_task *a = uco_spawn(leave_deadline, (void *)9);
    ck_assert_int_eq(uco_join(a, &r), 0);
    ck_assert_int_eq(r, 9);
    uco_task *b = uco_spawn(sleep_30ms, NULL);
#ifndef __SANITIZE_ADDRESS__ /* ASan builds keep no struct */
    ck_assert_ptr_eq(b, a);
#endif
    uint64_t t0 = uco_now();
    ck_assert_int_eq(uco_join(b, &r), 0);
    ck_assert_int_eq(r, 0);
    ck_assert_uint_ge(uco_now() - t0, UCO_MSEC(30));
    return 3;
}

START_TEST(test_spawn_reuses_a_joined_struct_clean)
{
    ck_assert_int_eq(uco_run(reused_struct_main, NULL, NULL), 3);
}
END_TEST

START_TEST(test_lone_task_awaits_after_timeouts_get_their_own_results)
{
    /* uco_run returns only once nothing is in flight. */
    ck_assert_int_eq(uco_run(alone_after_timeouts_main, NULL, NULL), 7);
}
END_TEST

struct pipe_pair {
    int fd[2];
};

static intptr_t pipe_writer(void *arg)
{
    struct pipe_pair *pp = arg;
    uco_sleep(UCO_MSEC(20));
    struct io_uring_sqe *sqe = uco_sqe();
    io_uring_prep_write(sqe, pp->fd[1], "late", 4, 0);
    return uco_await(sqe);
}

static intptr_t parked_read_main(void *arg)
{
    (void)arg;
    struct pipe_pair pp;
    ck_assert_int_eq(pipe(pp.fd), 0);
    uco_task *w = uco_spawn(pipe_writer, &pp);
    char buf[8] = {0};
    struct io_uring_sqe *sqe = uco_sqe();
    io_uring_prep_read(sqe, pp.fd[0], buf, sizeof(buf), 0);
    ck_assert_int_eq(uco_await(sqe), 4);
    ck_assert_str_eq(buf, "late");
    intptr_t r;
    ck_assert_int_eq(uco_join(w, &r), 0);
    ck_assert_int_eq(r, 4);
    close(pp.fd[0]);
    close(pp.fd[1]);
    return 0;
}

START_TEST(test_parked_read_is_resumed_by_another_task_write)
{
    ck_assert_int_eq(uco_run(parked_read_main, NULL, NULL), 0);
}
END_TEST

/* ---- ring limits ---- */

static intptr_t nop_task(void *arg)
{
    (void)arg;
    int ok = 0;
    for (int i = 0; i < 10; i++) {
        struct io_uring_sqe *sqe = uco_sqe();
        io_uring_prep_nop(sqe);
        ok += uco_await(sqe) == 0;
    }
    return ok;
}

static intptr_t flood_main(void *arg)
{
    int n = (int)(intptr_t)arg;
    uco_task **t = calloc((size_t)n, sizeof(*t));
    intptr_t *r = calloc((size_t)n, sizeof(*r));
    for (int i = 0; i < n; i++)
        t[i] = uco_spawn(nop_task, NULL);
    ck_assert_int_eq(uco_gather(t, (size_t)n, r), 0);
    long total = 0;
    for (int i = 0; i < n; i++)
        total += r[i];
    free(t);
    free(r);
    return total;
}

START_TEST(test_full_sq_and_cq_overflow_lose_nothing)
{
    /* 4 SQ / 16 CQ entries against 2,000 tasks awaiting at once: the SQ
     * fills on every pass and the CQ overflows into the kernel's list. */
    uco_config c = {.ring_entries = 4};
    ck_assert_int_eq(uco_run(flood_main, (void *)2000, &c), 20000);
    c.flags = UCO_CFG_NO_DEFER_TASKRUN;
    ck_assert_int_eq(uco_run(flood_main, (void *)2000, &c), 20000);
}
END_TEST

static intptr_t many_sleeps_main(void *arg)
{
    (void)arg;
    enum { N = 1000 };
    static uco_task *t[N];
    for (int i = 0; i < N; i++)
        t[i] = uco_spawn(sleeper, (void *)(intptr_t)(1 + i % 7));
    return uco_gather(t, N, NULL);
}

START_TEST(test_timeouts_survive_a_tiny_ring)
{
    uco_config c = {.ring_entries = 2};
    wake_n = 0;
    ck_assert_int_eq(uco_run(many_sleeps_main, NULL, &c), 0);
    ck_assert_int_eq(wake_n, 1000);
}
END_TEST

START_TEST(test_ring_setup_errors_are_returned)
{
    uco_config c = {.ring_entries = 1u << 20}; /* above the kernel's 32768 */
    int fds = count_fds();
    ck_assert_int_eq(uco_run(idle_main, NULL, &c), -EINVAL);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(test_ring_calls_outside_a_coroutine_return_eperm)
{
    ck_assert_ptr_null(uco_sqe());
    ck_assert_int_eq(uco_await(NULL), -EPERM);
    ck_assert_int_eq(uco_sleep(1), -EPERM);
}
END_TEST

START_TEST(test_rings_and_stacks_are_returned)
{
    int fds = count_fds();
    wake_n = 0;
    ck_assert_int_eq(uco_run(deadline_main, NULL, NULL), 0);
    int maps = count_maps();
    wake_n = 0;
    ck_assert_int_eq(uco_run(deadline_main, NULL, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
    ck_assert_maps_eq(count_maps(), maps);
}
END_TEST

START_TEST(test_jemalloc_is_the_allocator)
{
    if (UNDER_ASAN)
        return; /* sanitizer builds use the system allocator on purpose */
    ck_assert_ptr_nonnull(dlsym(RTLD_DEFAULT, "mallctl"));
}
END_TEST

/* ---- stacks freed in a burst go back when the loop is idle ---- */

#define BURST 3000
static void *burst_frames[BURST];

static intptr_t burst_task(void *arg)
{
    burst_frames[(intptr_t)arg] = __builtin_frame_address(0);
    return 0;
}

/* Whether p's page is mapped: mincore fails with ENOMEM on an unmapped
 * page.  One syscall, where reading /proc/self/maps for each of 3,000
 * frames takes seconds under valgrind (and the loop is not idle then). */
static int page_mapped(const void *p)
{
    long page = sysconf(_SC_PAGESIZE);
    unsigned char vec;
    void *base = (void *)((uintptr_t)p & ~(uintptr_t)(page - 1));
    return mincore(base, 1, &vec) == 0;
}

static intptr_t burst_main(void *arg)
{
    (void)arg;
    static uco_task *t[BURST];
    for (intptr_t i = 0; i < BURST; i++)
        t[i] = uco_spawn(burst_task, (void *)i);
    ck_assert_int_eq(uco_gather(t, BURST, NULL), 0);
    /* 3,000 stacks freed at once: 256 pooled, the rest spare.  While main
     * sleeps the loop is idle and must unmap the spares.  How long 2,744
     * munmaps take depends on the machine (valgrind, a busy core), so it
     * gets up to 5 s of idle time, looked at every 50 ms; a loop that never
     * trims while idle still fails. */
    int mapped = BURST;
    for (int round = 0; round < 100 && mapped > 256; round++) {
        ck_assert_int_eq(uco_sleep(UCO_MSEC(50)), 0);
        mapped = 0;
        for (int i = 0; i < BURST; i++)
            mapped += page_mapped(burst_frames[i]);
    }
    return mapped;
}

START_TEST(test_stacks_freed_in_a_burst_are_unmapped_when_idle)
{
    intptr_t mapped = uco_run(burst_main, NULL, NULL);
    ck_assert_int_ge(mapped, 0);
    ck_assert_msg(mapped <= 256, "%ld stacks still mapped after an idle period", (long)mapped);
}
END_TEST

/* ---- one runtime per thread ---- */

static void *thread_run(void *arg)
{
    return (void *)uco_run(two_sleeps_main, arg, NULL);
}

START_TEST(test_runtimes_on_two_threads_run_side_by_side)
{
    pthread_t th[2];
    double t0 = now_sec();
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, thread_run, NULL), 0);
    for (int i = 0; i < 2; i++) {
        void *r;
        ck_assert_int_eq(pthread_join(th[i], &r), 0);
        ck_assert_int_eq((intptr_t)r, 0);
    }
    double dt = now_sec() - t0;
    /* Four 200 ms sleeps on two runtimes at once.  (Valgrind runs one
     * thread at a time and does not treat io_uring_enter as blocking.) */
    if (!UNDER_VALGRIND)
        ck_assert_msg(dt < 0.35, "took %.3f s", dt);
}
END_TEST

/* ---- no allocation per switch or await ---- */

typedef int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t);

static uint64_t thread_allocated(mallctl_fn mallctl)
{
    uint64_t v = 0;
    size_t len = sizeof(v);
    if (mallctl("thread.allocated", &v, &len, NULL, 0) != 0)
        return UINT64_MAX / 2; /* makes the difference below fail loudly */
    return v;
}

/* No ck_assert in the loop: Check records every passing assertion, and
 * that allocates. */
static intptr_t ping(void *arg)
{
    int bad = 0;
    for (int i = 0; i < 10000; i++) {
        uco_yield();
        struct io_uring_sqe *sqe = uco_sqe();
        io_uring_prep_nop(sqe);
        bad += uco_await(sqe) != 0;
    }
    return bad;
}

static intptr_t alloc_main(void *arg)
{
    mallctl_fn mallctl = (mallctl_fn)arg;
    uco_task *t[2] = {uco_spawn(ping, NULL), uco_spawn(ping, NULL)};
    uint64_t probe;
    size_t len = sizeof(probe);
    ck_assert_int_eq(mallctl("thread.allocated", &probe, &len, NULL, 0), 0);
    uint64_t before = thread_allocated(mallctl);
    intptr_t bad[2];
    uco_yield(); /* both run their 10,000 switches and awaits */
    int ret = uco_gather(t, 2, bad);
    uint64_t used = thread_allocated(mallctl) - before;
    ck_assert_int_eq(ret, 0);
    ck_assert_int_eq(bad[0] + bad[1], 0);
    return (intptr_t)used;
}

START_TEST(test_switches_and_awaits_allocate_nothing)
{
    mallctl_fn mallctl = (mallctl_fn)dlsym(RTLD_DEFAULT, "mallctl");
    if (!mallctl) /* sanitizer builds run without jemalloc */
        return;
    ck_assert_int_eq(uco_run(alloc_main, (void *)mallctl, NULL), 0);
}
END_TEST

/* ---- batching: one io_uring_enter per scheduler pass ---- */

#define BATCH_TASKS 64
#define BATCH_ROUNDS 100

static intptr_t batch_task(void *arg)
{
    for (int i = 0; i < BATCH_ROUNDS; i++) {
        struct io_uring_sqe *sqe = uco_sqe();
        io_uring_prep_nop(sqe);
        if (uco_await(sqe) != 0)
            return -1;
    }
    return 0;
}

static intptr_t batch_main(void *arg)
{
    uco_task *t[BATCH_TASKS];
    intptr_t r[BATCH_TASKS];
    for (int i = 0; i < BATCH_TASKS; i++)
        t[i] = uco_spawn(batch_task, NULL);
    uco_gather(t, BATCH_TASKS, r);
    for (int i = 0; i < BATCH_TASKS; i++)
        if (r[i] != 0)
            return -1;
    return 0;
}

/* Counts the io_uring_enter calls of a child running batch_main. */
START_TEST(test_awaits_are_submitted_in_batches)
{
    if (UNDER_VALGRIND || access("/usr/bin/strace", X_OK) != 0)
        return; /* /proc/self/exe would be valgrind itself */
    /* (LeakSanitizer cannot run under ptrace: it is off in the child.) */
    char log[] = "/tmp/uco-strace-XXXXXX";
    int fd = mkstemp(log);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "ASAN_OPTIONS=detect_leaks=0 /usr/bin/strace -f -c -e trace=io_uring_enter -o %s /proc/%d/exe batch-child",
             log, (int)getpid());
    ck_assert_int_eq(system(cmd), 0);
    FILE *f = fopen(log, "r");
    ck_assert_ptr_nonnull(f);
    char line[256];
    long calls = -1;
    while (fgets(line, sizeof(line), f)) {
        double pct, secs;
        long usecs, n;
        if (strstr(line, "io_uring_enter") &&
            sscanf(line, "%lf %lf %ld %ld", &pct, &secs, &usecs, &n) == 4)
            calls = n;
    }
    fclose(f);
    unlink(log);
    /* 6,400 awaits; one enter per pass makes about 100 of them. */
    ck_assert_msg(calls > 0 && calls <= BATCH_ROUNDS * 2 + 10,
                  "%ld io_uring_enter calls for %d awaits", calls,
                  BATCH_TASKS * BATCH_ROUNDS);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "batch-child") == 0)
        return uco_run(batch_main, NULL, NULL) == 0 ? 0 : 1;
    Suite *s = suite_create("reactor");
    TCase *tc = tcase_create("reactor");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sleeps_wake_in_deadline_order);
    tcase_add_test(tc, test_many_sleeps_wake_by_deadline_then_in_the_order_set);
    tcase_add_test(tc, test_sleep_ends_while_io_is_in_flight);
    tcase_add_test(tc, test_two_200ms_sleeps_run_concurrently);
    tcase_add_test(tc, test_zero_sleep_yields);
    tcase_add_test(tc, test_idle_runtime_blocks_in_the_kernel);
    tcase_add_test(tc, test_custom_awaitables_return_the_cqe_result);
    tcase_add_test(tc, test_lone_task_awaits_after_timeouts_get_their_own_results);
    tcase_add_test(tc, test_lone_task_await_leaves_a_stray_completion_alone);
    tcase_add_test(tc, test_spawn_reuses_a_joined_struct_clean);
    tcase_add_test(tc, test_parked_read_is_resumed_by_another_task_write);
    tcase_add_test(tc, test_full_sq_and_cq_overflow_lose_nothing);
    tcase_add_test(tc, test_timeouts_survive_a_tiny_ring);
    tcase_add_test(tc, test_ring_setup_errors_are_returned);
    tcase_add_test(tc, test_ring_calls_outside_a_coroutine_return_eperm);
    tcase_add_test(tc, test_rings_and_stacks_are_returned);
    tcase_add_test(tc, test_jemalloc_is_the_allocator);
    tcase_add_test(tc, test_runtimes_on_two_threads_run_side_by_side);
    tcase_add_test(tc, test_stacks_freed_in_a_burst_are_unmapped_when_idle);
    tcase_add_test(tc, test_switches_and_awaits_allocate_nothing);
    tcase_add_test(tc, test_awaits_are_submitted_in_batches);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
