/* The coroutine core: switch, stacks, scheduler.  No io_uring is needed
 * here, so the same file also runs on aarch64 under qemu (UCO_MINICHECK). */
#include <errno.h>
#include <fenv.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

long uco_test_regs(void (*fn)(void), long seed);

/* ---- switch ---- */

static void yield_once(void) { uco_yield(); }

static intptr_t regs_task(void *arg)
{
    return uco_test_regs(yield_once, (long)(intptr_t)arg);
}

static intptr_t regs_main(void *arg)
{
    (void)arg;
    uco_task *t[4];
    intptr_t res[4];
    for (int i = 0; i < 4; i++)
        t[i] = uco_spawn(regs_task, (void *)(intptr_t)(0x1000 * (i + 1) + 0x5a5a0000));
    /* Main too: its registers must survive the other tasks' values. */
    intptr_t mine = uco_test_regs(yield_once, 0x77770000);
    ck_assert_int_eq(uco_gather(t, 4, res), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(res[i] == 0, "task %d lost registers, mask %#lx", i, (long)res[i]);
    ck_assert_msg(mine == 0, "main lost registers, mask %#lx", (long)mine);
    return 0;
}

START_TEST(test_switch_preserves_callee_saved_registers)
{
    ck_assert_int_eq(uco_run(regs_main, NULL, NULL), 0);
}
END_TEST

#if defined(__x86_64__)
static unsigned mxcsr_rounding(void) { return (__builtin_ia32_stmxcsr() >> 13) & 3; }
static unsigned x87_rounding(void)
{
    unsigned short cw;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return (cw >> 10) & 3;
}
#endif

struct fp_case {
    int mode;    /* what this task sets */
    int ok;
};

/* Every task starts in round-to-nearest whatever its spawner set, keeps the
 * mode it sets across switches, and never sees another task's mode. */
static intptr_t fp_task(void *arg)
{
    struct fp_case *c = arg;
    ck_assert_int_eq(fegetround(), FE_TONEAREST);
    ck_assert_int_eq(fesetround(c->mode), 0);
    for (int i = 0; i < 5; i++) {
        uco_yield();
        ck_assert_int_eq(fegetround(), c->mode);
#if defined(__x86_64__)
        /* fesetround sets both units; both must come back. */
        unsigned want = c->mode == FE_TONEAREST ? 0 : c->mode == FE_DOWNWARD ? 1
                        : c->mode == FE_UPWARD ? 2 : 3;
        ck_assert_uint_eq(mxcsr_rounding(), want);
        ck_assert_uint_eq(x87_rounding(), want);
#endif
    }
    c->ok = 1;
    return 0;
}

static intptr_t fp_main(void *arg)
{
    (void)arg;
    struct fp_case cases[3] = {{FE_UPWARD, 0}, {FE_DOWNWARD, 0}, {FE_TOWARDZERO, 0}};
    uco_task *t[3];
    fesetround(FE_UPWARD); /* the spawner's mode is not inherited */
    for (int i = 0; i < 3; i++)
        t[i] = uco_spawn(fp_task, &cases[i]);
    fesetround(FE_TONEAREST);
    ck_assert_int_eq(uco_gather(t, 3, NULL), 0);
    ck_assert_int_eq(fegetround(), FE_TONEAREST);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(cases[i].ok, 1);
    return 0;
}

START_TEST(test_switch_keeps_fp_rounding_mode_per_task)
{
    ck_assert_int_eq(uco_run(fp_main, NULL, NULL), 0);
}
END_TEST

/* ---- stacks ---- */

static __attribute__((noinline)) long recurse(int depth)
{
    volatile char frame[1024];
    frame[0] = (char)depth;
    frame[sizeof(frame) - 1] = (char)depth;
    if (depth == 0)
        return frame[0];
    return recurse(depth - 1) + frame[sizeof(frame) - 1] - (char)depth + 1;
}

static intptr_t deep_task(void *arg)
{
    return recurse((int)(intptr_t)arg);
}

static intptr_t deep_main(void *arg)
{
    (void)arg;
    intptr_t r = -1;
    /* ~200 KiB of frames in the default 256 KiB stack (ASan frames are
     * bigger: use a bit less there). */
    int depth = UNDER_ASAN ? 100 : 190;
    ck_assert_int_eq(uco_join(uco_spawn(deep_task, (void *)(intptr_t)depth), &r), 0);
    ck_assert_int_eq(r, depth);
    /* A per-spawn stack of 2 MiB takes ten times more. */
    uco_task *t;
    ck_assert_int_eq(uco_spawn_ex(&t, deep_task, (void *)(intptr_t)(depth * 8), 2u << 20), 0);
    ck_assert_int_eq(uco_join(t, &r), 0);
    ck_assert_int_eq(r, depth * 8);
    return 0;
}

START_TEST(test_deep_recursion_fits_in_the_stack)
{
    ck_assert_int_eq(uco_run(deep_main, NULL, NULL), 0);
}
END_TEST

static intptr_t nothing(void *arg) { return (intptr_t)arg; }

static intptr_t small_stack_main(void *arg)
{
    (void)arg;
    uco_task *t = NULL;
    ck_assert_int_eq(uco_spawn_ex(&t, nothing, NULL, UCO_STACK_MIN - 1), -EINVAL);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(uco_spawn_ex(NULL, nothing, NULL, 0), -EINVAL);
    ck_assert_int_eq(uco_spawn_ex(&t, NULL, NULL, 0), -EINVAL);
    ck_assert_int_eq(uco_spawn_ex(&t, nothing, (void *)5, UCO_STACK_MIN), 0);
    intptr_t r;
    ck_assert_int_eq(uco_join(t, &r), 0);
    ck_assert_int_eq(r, 5);
    return 0;
}

START_TEST(test_spawn_ex_checks_its_arguments)
{
    ck_assert_int_eq(uco_run(small_stack_main, NULL, NULL), 0);
}
END_TEST

static volatile long overflow_limit = -1; /* never reached: recursion until the guard */

static __attribute__((noinline)) long overflow_forever(long n)
{
    volatile char frame[512];
    frame[0] = (char)n;
    if (n == overflow_limit)
        return 0;
    return overflow_forever(n + 1) + frame[0];
}

/* Not static: the report names it through the dynamic symbol table. */
__attribute__((visibility("default"))) intptr_t overflow_entry(void *arg);
intptr_t overflow_entry(void *arg)
{
    return overflow_forever((long)(intptr_t)arg);
}

static intptr_t overflow_main(void *arg)
{
    (void)arg;
    uco_task *t = uco_spawn(overflow_entry, NULL);
    uco_join(t, NULL);
    return 0;
}

START_TEST(test_guard_page_overflow_is_reported_by_name)
{
    int pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(pipefd[1], STDERR_FILENO);
        close(pipefd[0]);
        uco_run(overflow_main, NULL, NULL);
        _exit(0); /* not reached when the overflow is caught */
    }
    close(pipefd[1]);
    char buf[1024] = {0};
    size_t n = 0;
    ssize_t r;
    while (n < sizeof(buf) - 1 && (r = read(pipefd[0], buf + n, sizeof(buf) - 1 - n)) > 0)
        n += (size_t)r;
    close(pipefd[0]);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
                  "child should abort, status %#x, stderr: %s", st, buf);
    ck_assert_msg(strstr(buf, "uco: stack overflow in task 2") != NULL, "stderr: %s", buf);
#ifndef UCO_MINICHECK /* static aarch64 binaries have no dynamic symbols */
    ck_assert_msg(strstr(buf, "overflow_entry") != NULL, "stderr: %s", buf);
#endif
}
END_TEST

/* ---- scheduler ---- */

#if defined(UCO_MINICHECK)
#define WAVE 10000 /* qemu maps guard pages with mprotect: one VMA more each */
#else
#define WAVE 100000
#endif
#define MANY 100000

static intptr_t id_task(void *arg) { return (intptr_t)arg; }

static intptr_t many_main(void *arg)
{
    (void)arg;
    uco_task **t = malloc(WAVE * sizeof(*t));
    long long sum = 0;
    for (int base = 0; base < MANY; base += WAVE) {
        for (int i = 0; i < WAVE; i++) {
            t[i] = uco_spawn(id_task, (void *)(intptr_t)(base + i));
            ck_assert_ptr_nonnull(t[i]);
        }
        for (int i = 0; i < WAVE; i++) {
            intptr_t r;
            ck_assert_int_eq(uco_join(t[i], &r), 0);
            ck_assert_int_eq(r, base + i);
            sum += r;
        }
    }
    free(t);
    ck_assert_int_eq(sum, (long long)MANY * (MANY - 1) / 2);
    return 0;
}

START_TEST(test_100k_tasks_spawn_and_join)
{
    ck_assert_int_eq(uco_run(many_main, NULL, NULL), 0);
}
END_TEST

static intptr_t finished_main(void *arg)
{
    (void)arg;
    uco_task *t = uco_spawn(id_task, (void *)42);
    uco_yield(); /* t runs to completion here */
    intptr_t r = 0;
    ck_assert_int_eq(uco_join(t, &r), 0);
    ck_assert_int_eq(r, 42);
    return 0;
}

START_TEST(test_join_of_an_already_finished_task)
{
    ck_assert_int_eq(uco_run(finished_main, NULL, NULL), 0);
}
END_TEST

static char order_log[64];
static int order_n;

/* Yields arg times, then logs its letter: later arguments finish first. */
static intptr_t yielder(void *arg)
{
    int n = (int)(intptr_t)arg;
    for (int i = 0; i < n; i++)
        uco_yield();
    order_log[order_n++] = (char)('a' + n);
    return n * 10;
}

static void order_reset(void)
{
    memset(order_log, 0, sizeof(order_log));
    order_n = 0;
}

static intptr_t gather_main(void *arg)
{
    (void)arg;
    order_reset();
    uco_task *t[5];
    intptr_t res[5];
    for (int i = 0; i < 5; i++)
        t[i] = uco_spawn(yielder, (void *)(intptr_t)(5 - i));
    ck_assert_int_eq(uco_gather(t, 5, res), 0);
    ck_assert_str_eq(order_log, "bcdef"); /* finished in reverse ... */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(res[i], (5 - i) * 10); /* ... reported in order */
    return 0;
}

START_TEST(test_gather_returns_results_in_argument_order)
{
    ck_assert_int_eq(uco_run(gather_main, NULL, NULL), 0);
}
END_TEST

static intptr_t logger(void *arg)
{
    for (int i = 0; i < 3; i++) {
        order_log[order_n++] = *(const char *)arg;
        uco_yield();
    }
    return 0;
}

static intptr_t fifo_main(void *arg)
{
    (void)arg;
    order_reset();
    uco_task *t[3] = {uco_spawn(logger, "A"), uco_spawn(logger, "B"), uco_spawn(logger, "C")};
    ck_assert_int_eq(uco_gather(t, 3, NULL), 0);
    ck_assert_str_eq(order_log, "ABCABCABC");
    return 0;
}

START_TEST(test_yield_runs_tasks_round_robin)
{
    ck_assert_int_eq(uco_run(fifo_main, NULL, NULL), 0);
}
END_TEST

static intptr_t nested_main(void *arg)
{
    (void)arg;
    return uco_run(nothing, NULL, NULL);
}

START_TEST(test_nested_run_returns_ebusy)
{
    ck_assert_int_eq(uco_run(nested_main, NULL, NULL), -EBUSY);
}
END_TEST

START_TEST(test_awaits_outside_a_coroutine_return_eperm)
{
    uco_task *t = (uco_task *)&t;
    ck_assert_int_eq(uco_yield(), -EPERM);
    ck_assert_int_eq(uco_park(), -EPERM);
    ck_assert_int_eq(uco_join(t, NULL), -EPERM);
    ck_assert_int_eq(uco_gather(&t, 1, NULL), -EPERM);
    ck_assert_int_eq(uco_spawn_ex(&t, nothing, NULL, 0), -EPERM);
    ck_assert_ptr_null(uco_spawn(nothing, NULL));
    ck_assert_ptr_null(uco_self());
}
END_TEST

START_TEST(test_run_rejects_bad_arguments)
{
    uco_config c = {.stack_size = 100};
    ck_assert_int_eq(uco_run(NULL, NULL, NULL), -EINVAL);
    ck_assert_int_eq(uco_run(nothing, NULL, &c), -EINVAL);
    c = (uco_config){.flags = 0x100};
    ck_assert_int_eq(uco_run(nothing, NULL, &c), -EINVAL);
    c = (uco_config){.stack_size = 64 * 1024, .stack_pool = 4};
    ck_assert_int_eq(uco_run(nothing, (void *)9, &c), 9);
}
END_TEST

static intptr_t self_join_main(void *arg)
{
    (void)arg;
    uco_task *self = uco_self();
    ck_assert_ptr_nonnull(self);
    ck_assert_int_eq(uco_join(self, NULL), -EDEADLK);
    ck_assert_int_eq(uco_join(NULL, NULL), -EINVAL);
    ck_assert_int_eq(uco_detach(NULL), -EINVAL);
    ck_assert_int_eq(uco_detach(self), -EINVAL); /* main belongs to uco_run */
    uco_task *t = uco_spawn(yielder, (void *)1);
    ck_assert_int_eq(uco_detach(t), 0);
    ck_assert_int_eq(uco_detach(t), -EINVAL);
    ck_assert_int_eq(uco_join(t, NULL), -EINVAL);
    return 0;
}

START_TEST(test_join_and_detach_errors)
{
    ck_assert_int_eq(uco_run(self_join_main, NULL, NULL), 0);
}
END_TEST

static intptr_t second_joiner(void *arg)
{
    return uco_join(arg, NULL);
}

static intptr_t double_join_main(void *arg)
{
    (void)arg;
    uco_task *t = uco_spawn(yielder, (void *)3);
    uco_task *j = uco_spawn(second_joiner, t);
    ck_assert_int_eq(uco_join(t, NULL), 0); /* first joiner wins */
    intptr_t r = 0;
    ck_assert_int_eq(uco_join(j, &r), 0);
    ck_assert_int_eq(r, -EINVAL);
    return 0;
}

START_TEST(test_second_joiner_gets_einval)
{
    ck_assert_int_eq(uco_run(double_join_main, NULL, NULL), 0);
}
END_TEST

static void *parker_frame;

static intptr_t parker(void *arg)
{
    parker_frame = __builtin_frame_address(0);
    *(uco_task **)arg = uco_self();
    return uco_park();
}

static intptr_t park_main(void *arg)
{
    (void)arg;
    uco_task *p = NULL;
    uco_task *t = uco_spawn(parker, &p);
    ck_assert_int_eq(uco_wake(t, 1), -EINVAL); /* not parked yet */
    uco_yield();
    ck_assert_ptr_eq(p, t);
    ck_assert_int_eq(uco_wake(t, 1234), 0);
    ck_assert_int_eq(uco_wake(t, 5), -EINVAL); /* already woken */
    ck_assert_int_eq(uco_wake(NULL, 5), -EINVAL);
    intptr_t r;
    ck_assert_int_eq(uco_join(t, &r), 0);
    ck_assert_int_eq(r, 1234);
    return 0;
}

START_TEST(test_park_returns_the_value_given_to_wake)
{
    ck_assert_int_eq(uco_run(park_main, NULL, NULL), 0);
}
END_TEST

static int finished_flags[8];

static intptr_t late_task(void *arg)
{
    for (int i = 0; i < 10; i++)
        uco_yield();
    finished_flags[(intptr_t)arg] = 1;
    return 0;
}

static intptr_t early_main(void *arg)
{
    (void)arg;
    for (intptr_t i = 0; i < 8; i++) {
        uco_task *t = uco_spawn(late_task, (void *)i);
        if (i % 2) /* half detached, half never joined */
            uco_detach(t);
    }
    return 7;
}

START_TEST(test_run_waits_for_tasks_main_did_not_join)
{
    ck_assert_int_eq(uco_run(early_main, NULL, NULL), 7);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(finished_flags[i], 1);
}
END_TEST

static intptr_t stuck_main(void *arg)
{
    (void)arg;
    uco_spawn(parker, &(uco_task *){NULL});
    return uco_park(); /* nobody will wake us */
}

START_TEST(test_deadlock_returns_edeadlk_and_frees_everything)
{
    int fds = count_fds(), maps;
    ck_assert_int_eq(uco_run(stuck_main, NULL, NULL), -EDEADLK); /* warm up the allocator */
    maps = count_maps();
    parker_frame = NULL;
    ck_assert_int_eq(uco_run(stuck_main, NULL, NULL), -EDEADLK);
    ck_assert_int_eq(count_fds(), fds);
    ck_assert_maps_eq(count_maps(), maps);
    ck_assert_ptr_nonnull(parker_frame);
    ck_assert(!is_mapped(parker_frame));
}
END_TEST

/* Uses a stack variable whose address escapes, so that ASan's
 * use-after-return mode puts the frame on a fake stack. */
static __attribute__((noinline)) char peek(const volatile char *p, int i) { return p[i]; }

static __attribute__((noinline)) intptr_t escape(void)
{
    char buf[256];
    memset(buf, 'x', sizeof(buf));
    return peek(buf, 7);
}

#define CHURN_SEEN 64
static void *churn_stacks[CHURN_SEEN]; /* a frame address in each stack seen */
static int churn_n;

static intptr_t churn_task(void *arg)
{
    if (churn_n < CHURN_SEEN)
        churn_stacks[churn_n++] = __builtin_frame_address(0);
    intptr_t r = escape() + (intptr_t)arg;
    if ((intptr_t)arg % 3 == 0)
        uco_yield();
    return r;
}

static intptr_t churn_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 200; round++) {
        uco_task *t[16];
        for (int i = 0; i < 16; i++) {
            size_t size = i % 4 == 0 ? 64 * 1024 : 0; /* some not poolable */
            ck_assert_int_eq(uco_spawn_ex(&t[i], churn_task, (void *)(intptr_t)i, size), 0);
            if (i % 5 == 4)
                uco_detach(t[i]);
        }
        for (int i = 0; i < 16; i++) {
            intptr_t r;
            if (i % 5 == 4)
                continue;
            ck_assert_int_eq(uco_join(t[i], &r), 0);
            ck_assert_int_eq(r, 'x' + i);
        }
    }
    return 0;
}

START_TEST(test_pooled_stacks_are_reused_and_all_memory_returned)
{
    uco_config c = {.stack_pool = 8}; /* fewer than live tasks: both paths */
    int fds = count_fds();
    ck_assert_int_eq(uco_run(churn_main, NULL, &c), 0);
    int maps = count_maps();
    churn_n = 0;
    ck_assert_int_eq(uco_run(churn_main, NULL, &c), 0);
    ck_assert_maps_eq(count_maps(), maps);
    ck_assert_int_eq(count_fds(), fds);
    ck_assert_int_eq(churn_n, CHURN_SEEN);
    for (int i = 0; i < CHURN_SEEN; i++) /* pooled or not, every stack is gone */
        ck_assert_msg(!is_mapped(churn_stacks[i]), "stack %d still mapped", i);
}
END_TEST

/* ---- debug mode ---- */

__attribute__((visibility("default"))) intptr_t hog_task(void *arg);
intptr_t hog_task(void *arg)
{
    (void)arg;
    double t0 = now_sec();
    while (now_sec() - t0 < 0.15) /* holds the loop 150 ms */
        ;
    uco_yield();
    return 0;
}

__attribute__((visibility("default"))) intptr_t forgotten_task(void *arg);
intptr_t forgotten_task(void *arg) { return (intptr_t)arg; }

static intptr_t debug_main(void *arg)
{
    (void)arg;
    uco_task *h = uco_spawn(hog_task, NULL);
    uco_spawn(forgotten_task, (void *)77); /* never joined */
    uco_task *quick = uco_spawn(nothing, NULL);
    uco_join(quick, NULL);
    return uco_join(h, NULL);
}

/* Runs debug_main in a child with stderr captured; returns what it wrote. */
static void run_debug_child(const uco_config *cfg, const char *env, char *out, size_t len)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        if (env)
            setenv("UCO_DEBUG", env, 1);
        else
            unsetenv("UCO_DEBUG");
        _exit(uco_run(debug_main, NULL, cfg) == 0 ? 0 : 1);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n < len - 1 && (r = read(p[0], out + n, len - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(p[0]);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
}

START_TEST(test_debug_mode_names_slow_and_unjoined_tasks)
{
    char out[2048];
    uco_config cfg = {.flags = UCO_CFG_DEBUG, .debug_slow_ms = 50};
    run_debug_child(&cfg, NULL, out, sizeof(out));
#ifdef UCO_MINICHECK /* static binaries: entries are named by address */
#define HOG "uco: debug: task 2 ("
#define FORGOT "task 3 ("
#else
#define HOG "uco: debug: task 2 (hog_task) ran "
#define FORGOT "task 3 (forgotten_task) finished"
#endif
    ck_assert_msg(strstr(out, HOG) != NULL, "stderr: %s", out);
    ck_assert_msg(strstr(out, "without awaiting (threshold 50 ms)") != NULL, "stderr: %s", out);
    ck_assert_msg(strstr(out, FORGOT) != NULL, "stderr: %s", out);
    ck_assert_msg(strstr(out, "was never joined or detached (result 77)") != NULL,
                  "stderr: %s", out);
    ck_assert_msg(strstr(out, "task 4") == NULL, "quick task reported: %s", out);
    /* The environment turns it on too (default threshold 100 ms). */
    run_debug_child(NULL, "1", out, sizeof(out));
    ck_assert_msg(strstr(out, HOG) != NULL, "stderr: %s", out);
    /* And off, nothing is said. */
    run_debug_child(NULL, NULL, out, sizeof(out));
    ck_assert_str_eq(out, "");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_switch_preserves_callee_saved_registers);
    tcase_add_test(tc, test_switch_keeps_fp_rounding_mode_per_task);
    tcase_add_test(tc, test_deep_recursion_fits_in_the_stack);
    tcase_add_test(tc, test_spawn_ex_checks_its_arguments);
    tcase_add_test(tc, test_guard_page_overflow_is_reported_by_name);
    tcase_add_test(tc, test_100k_tasks_spawn_and_join);
    tcase_add_test(tc, test_join_of_an_already_finished_task);
    tcase_add_test(tc, test_gather_returns_results_in_argument_order);
    tcase_add_test(tc, test_yield_runs_tasks_round_robin);
    tcase_add_test(tc, test_nested_run_returns_ebusy);
    tcase_add_test(tc, test_awaits_outside_a_coroutine_return_eperm);
    tcase_add_test(tc, test_run_rejects_bad_arguments);
    tcase_add_test(tc, test_join_and_detach_errors);
    tcase_add_test(tc, test_second_joiner_gets_einval);
    tcase_add_test(tc, test_park_returns_the_value_given_to_wake);
    tcase_add_test(tc, test_run_waits_for_tasks_main_did_not_join);
    tcase_add_test(tc, test_deadlock_returns_edeadlk_and_frees_everything);
    tcase_add_test(tc, test_pooled_stacks_are_reused_and_all_memory_returned);
    tcase_add_test(tc, test_debug_mode_names_slow_and_unjoined_tasks);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
