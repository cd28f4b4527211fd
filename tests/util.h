/* Helpers shared by the tests: resource counts, clocks, child processes. */
#ifndef UCO_TEST_UTIL_H
#define UCO_TEST_UTIL_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#ifdef UCO_MINICHECK
#include "minicheck.h"
#else
#include <check.h>
#endif

#include "uco.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#else
#define UNDER_ASAN 0
#endif

/* Open file descriptors of this process. */
static inline int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory's own fd */
}

/* Memory mappings of this process (stacks, rings). */
static inline int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0, c;
    if (!f)
        return -1;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* Whether p lies in one of this process's mappings (read from
 * /proc/self/maps, so that valgrind sees no access to unmapped memory). */
static inline int is_mapped(const void *p)
{
    FILE *f = fopen("/proc/self/maps", "r");
    unsigned long lo, hi, a = (unsigned long)(uintptr_t)p;
    char line[512];
    int found = 0;
    if (!f)
        return -1;
    while (!found && fgets(line, sizeof(line), f))
        found = sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi;
    fclose(f);
    return found;
}

#if defined(__has_include) && __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND RUNNING_ON_VALGRIND
#else
#define UNDER_VALGRIND 0
#endif

/* Mapping counts move under ASan and valgrind (their allocators map and
 * merge on their own): compare them in plain runs only.  Those tools check
 * what they own themselves (LeakSanitizer, memcheck). */
#define ck_assert_maps_eq(a, b) \
    do { if (!UNDER_ASAN && !UNDER_VALGRIND) ck_assert_int_eq(a, b); } while (0)

static inline double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline double cpu_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs a suite and returns the process exit status. */
static inline int run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

#endif
