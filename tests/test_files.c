/* File operations: real bytes through real files in a temp directory,
 * and the errors each one reports. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/uco-files-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *path(const char *name)
{
    static char p[4][128];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
    return p[i];
}

static intptr_t roundtrip_main(void *arg)
{
    (void)arg;
    int fd = uco_open(path("a"), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    ck_assert_int_ge(fd, 0);
    /* Current-position writes append one after the other. */
    ck_assert_int_eq(uco_write(fd, "hello ", 6, -1), 6);
    ck_assert_int_eq(uco_write(fd, "world", 5, -1), 5);
    /* Positional write does not move the position. */
    ck_assert_int_eq(uco_write(fd, "W", 1, 6), 1);
    ck_assert_int_eq(uco_write(fd, "!", 1, -1), 1);
    char buf[32] = {0};
    ck_assert_int_eq(uco_read(fd, buf, sizeof(buf), 0), 12);
    ck_assert_str_eq(buf, "hello World!");
    /* readv / writev */
    struct iovec w[2] = {{"abc", 3}, {"defg", 4}};
    ck_assert_int_eq(uco_writev(fd, w, 2, 100), 7);
    char x[3] = {0}, y[5] = {0};
    struct iovec r[2] = {{x, 2}, {y, 4}};
    ck_assert_int_eq(uco_readv(fd, r, 2, 100), 6);
    ck_assert_str_eq(x, "ab");
    ck_assert_str_eq(y, "cdef");
    ck_assert_int_eq(uco_readv(fd, NULL, 1, 0), -EINVAL);
    ck_assert_int_eq(uco_fsync(fd), 0);
    ck_assert_int_eq(uco_fdatasync(fd), 0);
    /* fallocate grows the file; statx sees it. */
    ck_assert_int_eq(uco_fallocate(fd, 0, 0, 8192), 0);
    struct statx st;
    ck_assert_int_eq(uco_statx(AT_FDCWD, path("a"), 0, STATX_SIZE, &st), 0);
    ck_assert_uint_eq(st.stx_size, 8192);
    ck_assert_int_eq(uco_close(fd), 0);
    /* A reading past the end is a short read, at the end 0. */
    fd = uco_open(path("a"), O_RDONLY, 0);
    char big[10000];
    ck_assert_int_eq(uco_read(fd, big, sizeof(big), 8000), 192);
    ck_assert_int_eq(uco_read(fd, big, sizeof(big), 8192), 0);
    ck_assert_int_eq(uco_close(fd), 0);
    /* mkdir, rename, unlink */
    ck_assert_int_eq(uco_mkdir(path("d"), 0755), 0);
    ck_assert_int_eq(uco_mkdir(path("d"), 0755), -EEXIST);
    ck_assert_int_eq(uco_rename(path("a"), path("d/b")), 0);
    ck_assert_int_eq(uco_statx(AT_FDCWD, path("a"), 0, STATX_SIZE, &st), -ENOENT);
    ck_assert_int_eq(uco_statx(AT_FDCWD, path("d/b"), 0, STATX_SIZE, &st), 0);
    ck_assert_int_eq(uco_unlink(path("d/b")), 0);
    ck_assert_int_eq(uco_unlink(path("d/b")), -ENOENT);
    return 0;
}

START_TEST(test_file_operations_round_trip_bytes)
{
    make_dir();
    int fds = count_fds();
    ck_assert_int_eq(uco_run(roundtrip_main, NULL, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
    remove_dir();
}
END_TEST

static intptr_t errors_main(void *arg)
{
    (void)arg;
    char buf[8];
    ck_assert_int_eq(uco_open(path("missing"), O_RDONLY, 0), -ENOENT);
    ck_assert_int_eq(uco_read(-1, buf, 1, 0), -EBADF);
    ck_assert_int_eq(uco_write(12345, buf, 1, 0), -EBADF);
    ck_assert_int_eq(uco_close(12345), -EBADF);
    ck_assert_int_eq(uco_fsync(12345), -EBADF);
    ck_assert_int_eq(uco_statx(AT_FDCWD, NULL, 0, 0, NULL), -EINVAL);
    ck_assert_int_eq(uco_openat2(AT_FDCWD, path("x"), NULL), -EINVAL);
    /* A read-only fd refuses writes. */
    int fd = uco_open(path("ro"), O_CREAT | O_RDONLY, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(uco_write(fd, "x", 1, 0), -EBADF);
    ck_assert_int_eq(uco_close(fd), 0);
    return 0;
}

START_TEST(test_file_errors_are_reported)
{
    make_dir();
    ck_assert_int_eq(uco_run(errors_main, NULL, NULL), 0);
    remove_dir();
}
END_TEST

static intptr_t beneath_main(void *arg)
{
    (void)arg;
    int root = uco_open(dir, O_RDONLY | O_DIRECTORY, 0);
    ck_assert_int_ge(root, 0);
    ck_assert_int_eq(uco_mkdir(path("in"), 0755), 0);
    int fd = uco_open(path("in/f"), O_CREAT | O_WRONLY, 0644);
    ck_assert_int_eq(uco_write(fd, "ok", 2, 0), 2);
    uco_close(fd);
    ck_assert_int_eq(symlink("/etc/passwd", path("in/out")), 0);
    int in = uco_open(path("in"), O_RDONLY | O_DIRECTORY, 0);
    struct open_how how = {.flags = O_RDONLY, .resolve = RESOLVE_BENEATH};
    fd = uco_openat2(in, "f", &how);
    ck_assert_int_ge(fd, 0);
    char buf[4] = {0};
    ck_assert_int_eq(uco_read(fd, buf, 2, 0), 2);
    ck_assert_str_eq(buf, "ok");
    uco_close(fd);
    /* Neither ".." nor a symlink pointing outside can leave the root. */
    ck_assert_int_eq(uco_openat2(in, "../in/f", &how), -EXDEV);
    ck_assert_int_eq(uco_openat2(in, "out", &how), -EXDEV);
    ck_assert_int_eq(uco_openat2(in, "/etc/passwd", &how), -EXDEV);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
    ck_assert_int_eq(uco_openat2(in, "out", &how), -ELOOP);
    uco_close(in);
    uco_close(root);
    return 0;
}

START_TEST(test_openat2_resolve_beneath_keeps_opens_inside)
{
    make_dir();
    int fds = count_fds();
    ck_assert_int_eq(uco_run(beneath_main, NULL, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
    remove_dir();
}
END_TEST

#define BIG (1u << 20)

struct pipe_job {
    int fd;
    unsigned char *buf;
    size_t got;
};

static intptr_t pipe_reader(void *arg)
{
    struct pipe_job *j = arg;
    for (;;) {
        ssize_t n = uco_read(j->fd, j->buf + j->got, BIG - j->got, -1);
        if (n <= 0)
            return n;
        j->got += (size_t)n;
    }
}

static intptr_t write_all_main(void *arg)
{
    (void)arg;
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    unsigned char *src = malloc(BIG), *dst = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        src[i] = (unsigned char)(i * 7 + (i >> 9));
    struct pipe_job j = {.fd = p[0], .buf = dst};
    uco_task *r = uco_spawn(pipe_reader, &j);
    /* 1 MiB through a 64 KiB pipe: many short writes, one call. */
    size_t done = 0;
    ck_assert_int_eq(uco_write_all(p[1], src, BIG, -1, &done), BIG);
    ck_assert_uint_eq(done, BIG);
    uco_close(p[1]);
    intptr_t rr;
    ck_assert_int_eq(uco_join(r, &rr), 0);
    ck_assert_int_eq(rr, 0);
    ck_assert_uint_eq(j.got, BIG);
    ck_assert_int_eq(memcmp(src, dst, BIG), 0);
    uco_close(p[0]);
    /* A closed reader: -EPIPE (SIGPIPE is ignored by the test). */
    ck_assert_int_eq(pipe(p), 0);
    uco_close(p[0]);
    done = 99;
    ck_assert_int_eq(uco_write_all(p[1], src, 10, -1, &done), -EPIPE);
    ck_assert_uint_eq(done, 0);
    uco_close(p[1]);
    free(src);
    free(dst);
    return 0;
}

START_TEST(test_write_all_moves_a_megabyte_through_a_pipe)
{
    signal(SIGPIPE, SIG_IGN);
    int fds = count_fds();
    ck_assert_int_eq(uco_run(write_all_main, NULL, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

#define SPLICE_SRC 200000

static unsigned char pattern_at(size_t i) { return (unsigned char)(i * 13 + (i >> 11)); }

/* Receives exactly len bytes (a stream socket may return them in pieces). */
static void recv_exact(int fd, unsigned char *buf, size_t len)
{
    for (size_t got = 0; got < len;) {
        ssize_t n = uco_recv(fd, buf + got, len - got, 0);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
}

static intptr_t splice_main(void *arg)
{
    (void)arg;
    unsigned char *src = malloc(SPLICE_SRC), *got = malloc(SPLICE_SRC);
    for (size_t i = 0; i < SPLICE_SRC; i++)
        src[i] = pattern_at(i);
    int f = uco_open(path("src"), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    int dst = uco_open(path("dst"), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    ck_assert_int_ge(f, 0);
    ck_assert_int_ge(dst, 0);
    ck_assert_int_eq(uco_write_all(f, src, SPLICE_SRC, 0, NULL), SPLICE_SRC);
    int p[2], sv[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);

    /* file at an offset -> pipe -> socket: the exact bytes arrive */
    ck_assert_int_eq(uco_splice(f, 1000, p[1], -1, 5000, 0), 5000);
    ck_assert_int_eq(uco_splice(p[0], -1, sv[0], -1, 5000, 0), 5000);
    recv_exact(sv[1], got, 5000);
    ck_assert_int_eq(memcmp(got, src + 1000, 5000), 0);

    /* file -> pipe -> file at an offset: short at the end of the file */
    ck_assert_int_eq(uco_splice(f, 150000, p[1], -1, 100000, 0), SPLICE_SRC - 150000);
    ck_assert_int_eq(uco_splice(p[0], -1, dst, 777, SPLICE_SRC - 150000, 0), SPLICE_SRC - 150000);
    ck_assert_int_eq(uco_read(dst, got, SPLICE_SRC, 777), SPLICE_SRC - 150000);
    ck_assert_int_eq(memcmp(got, src + 150000, SPLICE_SRC - 150000), 0);

    /* offset -1 reads at, and moves, the file position */
    ck_assert_int_eq(lseek(f, 10, SEEK_SET), 10);
    ck_assert_int_eq(uco_splice(f, -1, p[1], -1, 100, 0), 100);
    ck_assert_int_eq(lseek(f, 0, SEEK_CUR), 110);
    ck_assert_int_eq(uco_read(p[0], got, 100, -1), 100);
    ck_assert_int_eq(memcmp(got, src + 10, 100), 0);

    /* end of file; the errors splice(2) reports */
    ck_assert_int_eq(uco_splice(f, SPLICE_SRC, p[1], -1, 10, 0), 0);
    ck_assert_int_eq(uco_splice(12345, 0, p[1], -1, 10, 0), -EBADF);
    ck_assert_int_eq(uco_splice(p[0], -1, -1, -1, 10, 0), -EBADF);
    ck_assert_int_eq(uco_splice(f, 0, dst, 0, 10, 0), -EINVAL);   /* no pipe */
    ck_assert_int_eq(uco_splice(f, 0, p[1], 5, 10, 0), -ESPIPE);  /* offset on a pipe */
    /* an empty pipe with SPLICE_F_NONBLOCK does not wait */
    ck_assert_int_eq(uco_splice(p[0], -1, sv[0], -1, 10, SPLICE_F_NONBLOCK), -EAGAIN);

    int fds[] = {f, dst, p[0], p[1], sv[0], sv[1]};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        ck_assert_int_eq(uco_close(fds[i]), 0);
    free(src);
    free(got);
    return 0;
}

START_TEST(test_splice_moves_exact_bytes_between_file_pipe_and_socket)
{
    make_dir();
    int fds = count_fds();
    ck_assert_int_eq(uco_run(splice_main, NULL, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
    remove_dir();
}
END_TEST

struct splicer {
    int in, out;
    ssize_t res;
    int next_await;
};

static intptr_t splicer_task(void *arg)
{
    struct splicer *s = arg;
    s->res = uco_splice(s->in, -1, s->out, -1, 4096, 0);
    s->next_await = uco_yield();
    return 0;
}

static intptr_t late_writer(void *arg)
{
    uco_sleep(UCO_MSEC(20));
    return uco_write(*(int *)arg, "abc", 3, -1);
}

/* Cancels a splice parked in s; it must end with -ECANCELED at once and
 * the task's next await must run normally. */
static void cancel_splicer(struct splicer *s)
{
    uco_task *t = uco_spawn(splicer_task, s);
    uco_sleep(UCO_MSEC(20));
    double t0 = now_sec();
    ck_assert_int_eq(uco_cancel(t), 1);
    ck_assert_int_eq(uco_join(t, NULL), 0);
    ck_assert_int_eq(s->res, -ECANCELED);
    ck_assert_int_eq(s->next_await, 0);
    ck_assert(now_sec() - t0 < 1.0);
}

static void expect_timeout(int in, int64_t off_in, int out)
{
    uint64_t saved;
    double t0 = now_sec();
    ck_assert_int_eq(uco_timeout_begin(UCO_MSEC(50), &saved), 0);
    ssize_t r = uco_splice(in, off_in, out, -1, 4096, 0);
    ck_assert_int_eq(uco_timeout_end(saved), 0);
    double dt = now_sec() - t0;
    ck_assert_int_eq(r, -ETIMEDOUT);
    ck_assert_msg(dt >= 0.045 && dt < 0.5, "timed out after %.3f s", dt);
    ck_assert_int_eq(uco_yield(), 0);
}

static intptr_t splice_wait_main(void *arg)
{
    (void)arg;
    int p[2], sv[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int f = uco_open(path("f"), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    ck_assert_int_eq(uco_write(f, "0123456789", 10, 0), 10);

    /* An empty pipe parks the splice; other tasks run; data wakes it. */
    uco_task *w = uco_spawn(late_writer, &p[1]);
    ck_assert_int_eq(uco_splice(p[0], -1, sv[0], -1, 4096, 0), 3);
    intptr_t wr;
    ck_assert_int_eq(uco_join(w, &wr), 0);
    ck_assert_int_eq(wr, 3);
    char b[4] = {0};
    ck_assert_int_eq(uco_recv(sv[1], b, 3, 0), 3);
    ck_assert_str_eq(b, "abc");

    /* Deadlines: waiting for an empty pipe, and for room in a full one. */
    expect_timeout(p[0], -1, sv[0]);
    int cap = fcntl(p[1], F_GETPIPE_SZ);
    char *fill = calloc(1, (size_t)cap);
    ck_assert_int_eq(uco_write_all(p[1], fill, (size_t)cap, -1, NULL), cap);
    expect_timeout(f, 0, p[1]);
    ck_assert_int_eq(uco_read(p[0], fill, (size_t)cap, -1), cap); /* empty again */

    /* Cancellation: parked on the empty pipe ... */
    struct splicer s = {.in = p[0], .out = sv[0]};
    cancel_splicer(&s);
    /* ... and blocked in the kernel on a full blocking socket (the pipe has
     * data, the socket has no room: the worker sleeps in sendmsg). */
    ck_assert_int_eq(fcntl(sv[0], F_SETFL, 0), 0);
    while (send(sv[0], fill, (size_t)cap, MSG_DONTWAIT) > 0)
        ;
    ck_assert_int_eq(uco_write(p[1], "xyz", 3, -1), 3);
    s = (struct splicer){.in = p[0], .out = sv[0]};
    cancel_splicer(&s);

    free(fill);
    int fds[] = {f, p[0], p[1], sv[0], sv[1]};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        ck_assert_int_eq(uco_close(fds[i]), 0);
    return 0;
}

START_TEST(test_splice_waits_honour_deadlines_and_cancellation)
{
    make_dir();
    int fds = count_fds();
    ck_assert_int_eq(uco_run(splice_wait_main, NULL, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
    remove_dir();
}
END_TEST

START_TEST(test_file_calls_outside_a_coroutine_return_eperm)
{
    char b[1];
    ck_assert_int_eq(uco_open("/", O_RDONLY, 0), -EPERM);
    ck_assert_int_eq(uco_read(0, b, 1, 0), -EPERM);
    ck_assert_int_eq(uco_close(0), -EPERM);
    ck_assert_int_eq(uco_mkdir("/tmp/x", 0), -EPERM);
    ck_assert_int_eq(uco_splice(0, -1, 1, -1, 1, 0), -EPERM);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("files");
    TCase *tc = tcase_create("files");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_file_operations_round_trip_bytes);
    tcase_add_test(tc, test_file_errors_are_reported);
    tcase_add_test(tc, test_openat2_resolve_beneath_keeps_opens_inside);
    tcase_add_test(tc, test_write_all_moves_a_megabyte_through_a_pipe);
    tcase_add_test(tc, test_splice_moves_exact_bytes_between_file_pipe_and_socket);
    tcase_add_test(tc, test_splice_waits_honour_deadlines_and_cancellation);
    tcase_add_test(tc, test_file_calls_outside_a_coroutine_return_eperm);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
