/* Helpers shared by the tests: resource counts, clocks, temporary trees,
 * child processes (servers on port 0, captured runs). */
#ifndef UCO_TEST_UTIL_H
#define UCO_TEST_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

static inline int rm_tree_entry(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(p);
}

/* Removes dir and everything below it (symlinks, not what they point to). */
static inline void rm_tree(const char *dir)
{
    nftw(dir, rm_tree_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- child processes ---- */

/* poll() and waitpid() that go on after EINTR: blocking calls return it
 * when the task-work notifications of an io_uring (such as a ring torn
 * down by an earlier uco_run) interrupt them. */
static inline int poll_for(struct pollfd *pf, nfds_t n, int ms)
{
    double until = now_sec() + ms / 1000.0;
    for (;;) {
        int left = ms < 0 ? -1 : (int)((until - now_sec()) * 1000);
        int r = poll(pf, n, ms < 0 ? -1 : left > 0 ? left : 0);
        if (r >= 0 || errno != EINTR)
            return r;
    }
}

static inline pid_t wait_for(pid_t pid, int *st, int flags)
{
    pid_t r;
    while ((r = waitpid(pid, st, flags)) < 0 && errno == EINTR)
        ;
    return r;
}

/* One line from fd (without the newline), waiting at most timeout_ms for
 * each byte; read a byte at a time, so that what follows stays in the
 * pipe.  Its length, or -1 on timeout or end of stream. */
static inline int read_line_fd(int fd, char *buf, size_t cap, int timeout_ms)
{
    size_t n = 0;
    while (n + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char ch;
        if (poll_for(&p, 1, timeout_ms) <= 0 || read(fd, &ch, 1) != 1)
            return -1;
        if (ch == '\n')
            break;
        buf[n++] = ch;
    }
    buf[n] = '\0';
    return (int)n;
}

/* Where a child's stderr goes: a pipe read into errs, ours, or nowhere. */
enum proc_stderr { PROC_STDERR_PIPE, PROC_STDERR_INHERIT, PROC_STDERR_NULL };

struct proc {
    pid_t pid;
    int out, err;      /* read ends of its stdout and stderr; -1 when closed or not a pipe */
    int port;          /* from "listening on HOST:PORT" (spawn_server) */
    char line[256];    /* that line */
    char errs[16384];  /* its stderr so far (PROC_STDERR_PIPE) */
    size_t nerr;
};

/* Starts argv[0] (looked up in PATH unless it has a slash) with stdout on
 * a pipe and stderr as err says.  nofile > 0 lowers RLIMIT_NOFILE (soft
 * and hard, so it cannot be raised back) first.  The child dies with us,
 * so a failed test leaves no server behind. */
static inline void proc_spawn(struct proc *p, char *const argv[], enum proc_stderr err,
                              rlim_t nofile)
{
    int o[2], e[2] = {-1, -1};
    memset(p, 0, sizeof(*p));
    ck_assert_int_eq(pipe2(o, O_CLOEXEC), 0);
    if (err == PROC_STDERR_PIPE)
        ck_assert_int_eq(pipe2(e, O_CLOEXEC), 0);
    fflush(NULL);
    p->pid = fork();
    ck_assert_int_ge(p->pid, 0);
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (nofile) {
            struct rlimit rl = {nofile, nofile};
            if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                _exit(126);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(o[1], STDOUT_FILENO);
        if (err == PROC_STDERR_PIPE)
            dup2(e[1], STDERR_FILENO);
        if (err == PROC_STDERR_NULL) {
            int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
            if (null >= 0)
                dup2(null, STDERR_FILENO);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    close(o[1]);
    if (e[1] >= 0)
        close(e[1]);
    p->out = o[0];
    p->err = e[0];
}

/* Appends what the child wrote to stderr, waiting up to ms for some. */
static inline void proc_read_err(struct proc *p, int ms)
{
    struct pollfd pf = {.fd = p->err, .events = POLLIN};
    while (p->err >= 0 && poll_for(&pf, 1, ms) > 0) {
        char *at = p->errs + p->nerr;
        size_t room = sizeof(p->errs) - 1 - p->nerr;
        char sink[4096];
        ssize_t n = read(p->err, room ? at : sink, room ? room : sizeof(sink));
        if (n <= 0) {
            close(p->err);
            p->err = -1;
            break;
        }
        if (room) {
            p->nerr += (size_t)n;
            p->errs[p->nerr] = '\0';
        }
        ms = 0;
    }
}

/* Waits up to secs for the child to exit and closes its pipes: its wait
 * status, or -1 after killing it when it did not.  *took: seconds waited. */
static inline int proc_wait(struct proc *p, double secs, double *took)
{
    double t0 = now_sec();
    int st = -1, pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
    ck_assert_int_ge(pidfd, 0);
    struct pollfd pf = {.fd = pidfd, .events = POLLIN};
    int ready = poll_for(&pf, 1, (int)(secs * 1000));
    close(pidfd);
    if (took)
        *took = now_sec() - t0;
    if (ready <= 0)
        kill(p->pid, SIGKILL);
    wait_for(p->pid, &st, 0);
    proc_read_err(p, 0);
    if (p->err >= 0)
        close(p->err);
    if (p->out >= 0)
        close(p->out);
    p->err = p->out = -1;
    return ready > 0 ? st : -1;
}

/* Sends sig, then proc_wait. */
static inline int proc_stop(struct proc *p, int sig, double secs)
{
    kill(p->pid, sig);
    return proc_wait(p, secs, NULL);
}

/* Starts a server (argv asks it for port 0) and reads its first line,
 * "listening on HOST:PORT", into p->line and p->port.  Later output stays
 * in p->out. */
static inline void spawn_server(struct proc *p, char *const argv[], enum proc_stderr err,
                                rlim_t nofile)
{
    proc_spawn(p, argv, err, nofile);
    if (read_line_fd(p->out, p->line, sizeof(p->line), 20000) < 0) {
        proc_read_err(p, 100);
        ck_abort_msg("%s printed no line in 20 s, or exited: %s", argv[0], p->errs);
    }
    const char *colon = strrchr(p->line, ':');
    ck_assert_msg(!strncmp(p->line, "listening on ", 13) && colon,
                  "%s: unexpected first line '%s'", argv[0], p->line);
    p->port = atoi(colon + 1);
    ck_assert_msg(p->port > 0 && p->port < 65536, "bad port in '%s'", p->line);
}

struct output {
    int status; /* wait status, -1 if it had to be killed */
    double secs;
    char out[8192], err[8192];
};

/* Runs argv to completion (killed after secs), capturing both streams
 * (what does not fit is read and dropped). */
static inline void run_capture(char *const argv[], double secs, struct output *r)
{
    struct proc p;
    memset(r, 0, sizeof(*r));
    double t0 = now_sec();
    proc_spawn(&p, argv, PROC_STDERR_PIPE, 0);
    size_t no = 0, ne = 0;
    struct pollfd pf[2] = {{.fd = p.out, .events = POLLIN}, {.fd = p.err, .events = POLLIN}};
    while (pf[0].fd >= 0 || pf[1].fd >= 0) {
        int left = (int)((t0 + secs - now_sec()) * 1000);
        if (left <= 0 || poll_for(pf, 2, left) <= 0)
            break;
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !pf[i].revents)
                continue;
            char *buf = i ? r->err : r->out;
            size_t *len = i ? &ne : &no, cap = i ? sizeof(r->err) : sizeof(r->out);
            char sink[4096];
            size_t room = cap - 1 - *len;
            ssize_t n = read(pf[i].fd, room ? buf + *len : sink, room ? room : sizeof(sink));
            if (n <= 0)
                pf[i].fd = -1;
            else if (room)
                *len += (size_t)n;
        }
    }
    r->out[no] = r->err[ne] = '\0';
    int left = (int)((t0 + secs - now_sec()));
    r->status = proc_wait(&p, left > 1 ? left : 1, NULL);
    r->secs = now_sec() - t0;
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
