/* A tiny stand-in for the subset of Check that tests/test_core.c uses, for
 * the qemu-aarch64 build (Debian has no arm64 Check without multiarch).
 * Each test runs in a forked child, as Check does; the runner prints one
 * line per failure and then "N passed, N failed". */
#ifndef UCO_MINICHECK_H
#define UCO_MINICHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct { const char *name; void (*fn)(int); } TTest;
#define MC_MAX 128
typedef struct { const TTest *tests[MC_MAX]; int n; } TCase;
typedef struct { const char *name; TCase *cases[16]; int n; } Suite;
typedef struct { Suite *s; int failed; } SRunner;
enum { CK_NORMAL, CK_VERBOSE };

#define START_TEST(t)                                   \
    static void t##_fn(int _i);                         \
    static const TTest t##_tt = {#t, t##_fn};           \
    static const TTest *t = &t##_tt;                    \
    static void t##_fn(int _i __attribute__((unused)))
#define END_TEST

#define ck_abort_msg(...)                                                  \
    do {                                                                   \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                    \
        fprintf(stderr, __VA_ARGS__);                                      \
        fprintf(stderr, "\n");                                             \
        _exit(1);                                                          \
    } while (0)
#define ck_assert_msg(c, ...) do { if (!(c)) ck_abort_msg(__VA_ARGS__); } while (0)
#define ck_assert(c) ck_assert_msg(c, "assertion failed: %s", #c)
#define MC_CMP(T, F, a, op, b)                                             \
    do {                                                                   \
        T _a = (a); T _b = (b);                                            \
        ck_assert_msg(_a op _b, "%s %s %s: " F " vs " F, #a, #op, #b, _a, _b); \
    } while (0)
#define ck_assert_int_eq(a, b) MC_CMP(intmax_t, "%jd", a, ==, b)
#define ck_assert_int_ne(a, b) MC_CMP(intmax_t, "%jd", a, !=, b)
#define ck_assert_int_lt(a, b) MC_CMP(intmax_t, "%jd", a, <, b)
#define ck_assert_int_le(a, b) MC_CMP(intmax_t, "%jd", a, <=, b)
#define ck_assert_int_gt(a, b) MC_CMP(intmax_t, "%jd", a, >, b)
#define ck_assert_int_ge(a, b) MC_CMP(intmax_t, "%jd", a, >=, b)
#define ck_assert_uint_eq(a, b) MC_CMP(uintmax_t, "%ju", a, ==, b)
#define ck_assert_ptr_eq(a, b) MC_CMP(const void *, "%p", a, ==, b)
#define ck_assert_ptr_ne(a, b) MC_CMP(const void *, "%p", a, !=, b)
#define ck_assert_ptr_null(a) ck_assert_ptr_eq(a, NULL)
#define ck_assert_ptr_nonnull(a) ck_assert_ptr_ne(a, NULL)
#define ck_assert_str_eq(a, b) \
    ck_assert_msg(strcmp((a), (b)) == 0, "\"%s\" != \"%s\"", (a), (b))
#define ck_assert_str_ne(a, b) \
    ck_assert_msg(strcmp((a), (b)) != 0, "\"%s\" == \"%s\"", (a), (b))

static inline Suite *suite_create(const char *name)
{
    Suite *s = calloc(1, sizeof(*s));
    s->name = name;
    return s;
}
static inline TCase *tcase_create(const char *name) { (void)name; return calloc(1, sizeof(TCase)); }
static inline void tcase_set_timeout(TCase *tc, double t) { (void)tc; (void)t; }
static inline void tcase_add_test(TCase *tc, const TTest *t) { tc->tests[tc->n++] = t; }
static inline void suite_add_tcase(Suite *s, TCase *tc) { s->cases[s->n++] = tc; }
static inline SRunner *srunner_create(Suite *s)
{
    SRunner *r = calloc(1, sizeof(*r));
    r->s = s;
    return r;
}

static inline void srunner_run_all(SRunner *r, int mode)
{
    (void)mode;
    int passed = 0;
    for (int c = 0; c < r->s->n; c++) {
        for (int i = 0; i < r->s->cases[c]->n; i++) {
            const TTest *t = r->s->cases[c]->tests[i];
            fflush(NULL);
            pid_t pid = fork();
            if (pid == 0) {
                t->fn(0);
                fflush(NULL);
                _exit(0);
            }
            int st = 0;
            waitpid(pid, &st, 0);
            if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
                passed++;
            } else {
                r->failed++;
                printf("FAIL %s:%s (%s %d)\n", r->s->name, t->name,
                       WIFSIGNALED(st) ? "signal" : "exit",
                       WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            }
        }
    }
    printf("%d passed, %d failed\n", passed, r->failed);
}
static inline int srunner_ntests_failed(SRunner *r) { return r->failed; }
static inline void srunner_free(SRunner *r) { free(r); }

#endif
