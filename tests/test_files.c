/* File operations: real bytes through real files in a temp directory,
 * and the errors each one reports. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdlib.h>
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

START_TEST(test_file_calls_outside_a_coroutine_return_eperm)
{
    char b[1];
    ck_assert_int_eq(uco_open("/", O_RDONLY, 0), -EPERM);
    ck_assert_int_eq(uco_read(0, b, 1, 0), -EPERM);
    ck_assert_int_eq(uco_close(0), -EPERM);
    ck_assert_int_eq(uco_mkdir("/tmp/x", 0), -EPERM);
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
    tcase_add_test(tc, test_file_calls_outside_a_coroutine_return_eperm);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
