/* The seed examples, run as a user runs them: exact output, and when each
 * line appears (the timing shape of the seed: 1 s, 2 s not 3, 1 s). */
#include <errno.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define MAX_LINES 8

struct run {
    char lines[MAX_LINES][256];
    double at[MAX_LINES]; /* seconds after start when the line arrived */
    int n;
    int status;
    double total;
};

/* Runs argv with stdout on a pipe, timestamping every line. */
static void run_cmd(char *const argv[], struct run *r)
{
    int p[2];
    memset(r, 0, sizeof(*r));
    ck_assert_int_eq(pipe(p), 0);
    double t0 = now_sec();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    FILE *f = fdopen(p[0], "r");
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        if (r->n < MAX_LINES) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(r->lines[r->n], sizeof(r->lines[0]), "%s", line);
            r->at[r->n] = now_sec() - t0;
        }
        r->n++;
    }
    fclose(f);
    ck_assert_int_eq(waitpid(pid, &r->status, 0), pid);
    r->total = now_sec() - t0;
}

static void run_example(const char *name, struct run *r)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/examples/%s", UCO_BUILD_DIR, name);
    char *argv[] = {path, NULL};
    run_cmd(argv, r);
    ck_assert_msg(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0,
                  "%s exited with status %#x", name, r->status);
}

START_TEST(test_hello_prints_hello_then_world_a_second_later)
{
    struct run r;
    run_example("hello", &r);
    ck_assert_int_eq(r.n, 2);
    ck_assert_str_eq(r.lines[0], "Hello");
    ck_assert_str_eq(r.lines[1], "World");
    ck_assert_msg(r.at[0] < 0.5, "Hello came at %.3f s", r.at[0]);
    ck_assert_msg(r.at[1] - r.at[0] >= 0.95, "World %.3f s after Hello", r.at[1] - r.at[0]);
    ck_assert_msg(r.total < 1.8, "took %.3f s", r.total);
}
END_TEST

START_TEST(test_gather_runs_both_tasks_concurrently)
{
    struct run r;
    run_example("gather", &r);
    ck_assert_int_eq(r.n, 4);
    ck_assert_str_eq(r.lines[0], "Task 1 started");
    ck_assert_str_eq(r.lines[1], "Task 2 started");
    ck_assert_str_eq(r.lines[2], "Task 2 completed");
    ck_assert_str_eq(r.lines[3], "Task 1 completed");
    ck_assert_msg(r.at[1] < 0.5, "both start at once (%.3f s)", r.at[1]);
    ck_assert_msg(r.at[2] >= 0.95 && r.at[2] < 1.6, "Task 2 done at %.3f s", r.at[2]);
    ck_assert_msg(r.at[3] >= 1.95, "Task 1 done at %.3f s", r.at[3]);
    /* Sequential awaits would take 3 s. */
    ck_assert_msg(r.total < 2.6, "took %.3f s", r.total);
}
END_TEST

START_TEST(test_custom_await_waits_one_second)
{
    struct run r;
    run_example("custom_await", &r);
    ck_assert_int_eq(r.n, 2);
    ck_assert_str_eq(r.lines[0], "Waiting...");
    ck_assert_str_eq(r.lines[1], "Done");
    ck_assert_msg(r.at[1] - r.at[0] >= 0.95 && r.total < 1.8,
                  "Done %.3f s after Waiting, %.3f s in all", r.at[1] - r.at[0], r.total);
}
END_TEST

/* Valgrind must see a clean run: stacks registered, no invalid accesses,
 * nothing leaked (the sanitizer build skips this: ASan and valgrind don't mix). */
START_TEST(test_examples_are_clean_under_valgrind)
{
    if (UNDER_ASAN || access("/usr/bin/valgrind", X_OK) != 0)
        return;
    char path[256];
    snprintf(path, sizeof(path), "%s/examples/gather", UCO_BUILD_DIR);
    char *argv[] = {"/usr/bin/valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                    "--errors-for-leak-kinds=definite,indirect", path, NULL};
    struct run r;
    run_cmd(argv, &r);
    ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0,
                  "valgrind status %#x", r.status);
    ck_assert_int_eq(r.n, 4);
    ck_assert_str_eq(r.lines[3], "Task 1 completed");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("examples");
    TCase *tc = tcase_create("examples");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_hello_prints_hello_then_world_a_second_later);
    tcase_add_test(tc, test_gather_runs_both_tasks_concurrently);
    tcase_add_test(tc, test_custom_await_waits_one_second);
    tcase_add_test(tc, test_examples_are_clean_under_valgrind);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
