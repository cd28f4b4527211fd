/* examples/http_get, run as a user runs it, against the project's own file
 * server, against python3's http.server, and against tiny raw servers
 * forked here that answer chunked, close-delimited, slow, silent or
 * malformed.  Output is checked byte for byte, in argument order. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

static char base[64];   /* temporary directory */
static char fsroot[128]; /* served by file_server */
static char pyroot[128]; /* served by python3 -m http.server */
static char long_text[251]; /* 250 bytes, in both roots as long.txt */

static struct proc fileserver, pyserver; /* struct proc and its helpers: util.h */

/* ---- processes ---- */

/* A port nobody listens on (bound, read, closed). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static bool accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static void start_file_server(void)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/examples/file_server", UCO_BUILD_DIR);
    char *argv[] = {path, "--root", fsroot, "--port", "0", NULL};
    spawn_server(&fileserver, argv, PROC_STDERR_INHERIT, 0);
}

/* python3 -u prints "Serving HTTP on ..." once bound; then it accepts.
 * (Its request log goes to stderr: discarded.) */
static void start_python_server(void)
{
    int port = free_port();
    char port_s[16];
    snprintf(port_s, sizeof(port_s), "%d", port);
    char *argv[] = {"python3", "-u", "-m", "http.server", "--bind", "127.0.0.1",
                    "--directory", pyroot, port_s, NULL};
    proc_spawn(&pyserver, argv, PROC_STDERR_NULL, 0);
    pyserver.port = port;
    ck_assert_msg(read_line_fd(pyserver.out, pyserver.line, sizeof(pyserver.line), 20000) > 0,
                  "python3 http.server did not start");
    ck_assert_msg(accepts(pyserver.port), "python3 http.server does not accept: %s",
                  pyserver.line);
}

/* Runs http_get with args (NULL-ended), capturing both streams. */
static void run_http_get(struct output *r, const char *const *args)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/examples/http_get", UCO_BUILD_DIR);
    const char *argv[16] = {path};
    int n = 1;
    for (; *args; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    run_capture((char *const *)argv, 30, r);
}

static int exit_code(const struct output *r)
{
    return WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1;
}

/* ---- raw servers: a forked child answering each connection alike ---- */

struct child {
    pid_t pid;
    int port;
};

enum raw_mode { RAW_ANSWER, RAW_SILENT };

/* Listens here (so the port is known at once), serves in a child:
 * reads a request head, waits delay_ms, writes reply and closes; or in
 * RAW_SILENT mode reads and never answers. */
static struct child raw_start(enum raw_mode mode, const char *reply, int delay_ms)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(lfd, 16), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    struct child c = {.port = ntohs(a.sin_port)};
    c.pid = fork();
    ck_assert_int_ge(c.pid, 0);
    if (c.pid == 0) {
        for (;;) {
            int fd = accept(lfd, NULL, NULL);
            if (fd < 0)
                _exit(1);
            char buf[4096];
            size_t n = 0;
            ssize_t k;
            while (n < sizeof(buf) - 1 && (k = recv(fd, buf + n, sizeof(buf) - 1 - n, 0)) > 0) {
                n += (size_t)k;
                buf[n] = '\0';
                if (mode == RAW_ANSWER && strstr(buf, "\r\n\r\n"))
                    break;
            }
            if (mode == RAW_ANSWER) {
                if (delay_ms)
                    usleep((useconds_t)delay_ms * 1000); /* the scenario: a slow server */
                size_t off = 0, total = strlen(reply);
                while (off < total && (k = send(fd, reply + off, total - off, MSG_NOSIGNAL)) > 0)
                    off += (size_t)k;
            }
            close(fd);
        }
    }
    close(lfd);
    return c;
}

static void raw_stop(struct child *c)
{
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
}

/* ---- fixture ---- */

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    snprintf(base, sizeof(base), "/tmp/uco-get-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base));
    snprintf(fsroot, sizeof(fsroot), "%s/fs", base);
    snprintf(pyroot, sizeof(pyroot), "%s/py", base);
    mkdir(fsroot, 0755);
    mkdir(pyroot, 0755);
    for (int i = 0; i < 250; i++)
        long_text[i] = (char)('a' + (i * 7) % 26);
    long_text[250] = '\0';
    write_file(fsroot, "hello.txt", "hello world\n");
    write_file(fsroot, "long.txt", long_text);
    write_file(fsroot, "empty.txt", "");
    write_file(pyroot, "long.txt", long_text);
    write_file(pyroot, "py.txt", "served by python\n");
    start_file_server();
    start_python_server();
}

static void teardown(void)
{
    proc_stop(&fileserver, SIGTERM, 10);
    proc_stop(&pyserver, SIGTERM, 10);
    rm_tree(base);
}

/* "URL -> STATUS\n" + first 100 body bytes + "\n" */
static void expect_block(char *out, size_t cap, const char *url, int status, const char *body)
{
    snprintf(out, cap, "%s -> %d\n%.100s\n", url, status, body);
}

/* ---- tests ---- */

START_TEST(test_fetches_from_the_uco_file_server)
{
    char u1[128], u2[128], u3[128], want[1024], b[512];
    snprintf(u1, sizeof(u1), "http://127.0.0.1:%d/hello.txt", fileserver.port);
    snprintf(u2, sizeof(u2), "http://127.0.0.1:%d/long.txt", fileserver.port);
    snprintf(u3, sizeof(u3), "http://localhost:%d/empty.txt", fileserver.port); /* a name */
    const char *args[] = {u1, u2, u3, NULL};
    struct output r;
    run_http_get(&r, args);
    ck_assert_msg(exit_code(&r) == 0, "exit %#x, stderr: %s", r.status, r.err);
    ck_assert_str_eq(r.err, "");
    expect_block(want, sizeof(want), u1, 200, "hello world\n");
    expect_block(b, sizeof(b), u2, 200, long_text);
    strcat(want, b);
    expect_block(b, sizeof(b), u3, 200, "");
    strcat(want, b);
    ck_assert_str_eq(r.out, want);
}
END_TEST

START_TEST(test_fetches_from_python_http_server)
{
    char u1[128], u2[128], u3[128], want[1024], b[512];
    snprintf(u1, sizeof(u1), "http://127.0.0.1:%d/long.txt", pyserver.port);
    snprintf(u2, sizeof(u2), "http://127.0.0.1:%d/py.txt", pyserver.port);
    snprintf(u3, sizeof(u3), "http://127.0.0.1:%d/missing.txt", pyserver.port);
    const char *args[] = {u1, u2, u3, NULL};
    struct output r;
    run_http_get(&r, args);
    /* a 404 is a response like any other: fetched, so success */
    ck_assert_msg(exit_code(&r) == 0, "exit %#x, stderr: %s", r.status, r.err);
    expect_block(want, sizeof(want), u1, 200, long_text);
    expect_block(b, sizeof(b), u2, 200, "served by python\n");
    strcat(want, b);
    snprintf(b, sizeof(b), "%s -> 404\n", u3);
    strcat(want, b);
    ck_assert_msg(strncmp(r.out, want, strlen(want)) == 0, "got:\n%s\nwant:\n%s", r.out, want);
}
END_TEST

START_TEST(test_urls_run_concurrently_and_print_in_argument_order)
{
    /* the first URL answers last */
    struct child slow = raw_start(RAW_ANSWER, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow", 1000);
    struct child fast = raw_start(RAW_ANSWER, "HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\nfast", 500);
    char u1[128], u2[128], want[512], b[256];
    snprintf(u1, sizeof(u1), "http://127.0.0.1:%d/", slow.port);
    snprintf(u2, sizeof(u2), "http://127.0.0.1:%d/x", fast.port);
    const char *args[] = {u1, u2, NULL};
    struct output r;
    run_http_get(&r, args);
    raw_stop(&slow);
    raw_stop(&fast);
    ck_assert_int_eq(exit_code(&r), 0);
    expect_block(want, sizeof(want), u1, 200, "slow");
    expect_block(b, sizeof(b), u2, 201, "fast");
    strcat(want, b);
    ck_assert_str_eq(r.out, want);
    /* one after the other would take 1.5 s */
    ck_assert_msg(r.secs >= 0.95 && r.secs < 1.4, "took %.3f s", r.secs);
}
END_TEST

START_TEST(test_chunked_bodies_are_decoded)
{
    /* chunk sizes 5, 1 (with an extension), 0x3c and 0x40, upper- and
     * lower-case hex, then a trailer field */
    char reply[1024], body[200];
    memcpy(body, "hello", 5);
    body[5] = ' ';
    for (int i = 6; i < 130; i++)
        body[i] = (char)('A' + i % 26);
    body[130] = '\0';
    snprintf(reply, sizeof(reply),
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
             "5\r\n%.5s\r\n1;name=value\r\n%.1s\r\n3C\r\n%.60s\r\n40\r\n%.64s\r\n0\r\n"
             "X-Trailer: yes\r\n\r\n",
             body, body + 5, body + 6, body + 66);
    struct child c = raw_start(RAW_ANSWER, reply, 0);
    char u[128], want[512];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/chunked", c.port);
    const char *args[] = {u, NULL};
    struct output r;
    run_http_get(&r, args);
    raw_stop(&c);
    ck_assert_msg(exit_code(&r) == 0, "stderr: %s", r.err);
    expect_block(want, sizeof(want), u, 200, body);
    ck_assert_str_eq(r.out, want);
}
END_TEST

START_TEST(test_bodies_ending_at_the_close_and_interim_responses)
{
    struct child c = raw_start(RAW_ANSWER, "HTTP/1.0 200 OK\r\nServer: raw\r\n\r\nuntil the close", 0);
    struct child d = raw_start(RAW_ANSWER, "HTTP/1.1 100 Continue\r\n\r\n"
                                           "HTTP/1.1 203 Non-Authoritative\r\nContent-Length: 2\r\n\r\nok", 0);
    char u1[128], u2[128], want[512], b[256];
    snprintf(u1, sizeof(u1), "http://127.0.0.1:%d", c.port); /* no path: "/" */
    snprintf(u2, sizeof(u2), "http://127.0.0.1:%d/", d.port);
    const char *args[] = {u1, u2, NULL};
    struct output r;
    run_http_get(&r, args);
    raw_stop(&c);
    raw_stop(&d);
    ck_assert_msg(exit_code(&r) == 0, "stderr: %s", r.err);
    expect_block(want, sizeof(want), u1, 200, "until the close");
    expect_block(b, sizeof(b), u2, 203, "ok");
    strcat(want, b);
    ck_assert_str_eq(r.out, want);
}
END_TEST

START_TEST(test_connection_refused_is_reported_and_exits_1)
{
    char u[128], good[128];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/", free_port());
    snprintf(good, sizeof(good), "http://127.0.0.1:%d/hello.txt", fileserver.port);
    const char *args[] = {u, good, NULL};
    struct output r;
    run_http_get(&r, args);
    ck_assert_int_eq(exit_code(&r), 1);
    char want[256];
    snprintf(want, sizeof(want), "http_get: %s: connection refused\n", u);
    ck_assert_str_eq(r.err, want);
    /* the other URL is still fetched and printed */
    expect_block(want, sizeof(want), good, 200, "hello world\n");
    ck_assert_str_eq(r.out, want);
}
END_TEST

START_TEST(test_bad_urls_are_reported_and_exit_1)
{
    static const char *const urls[][2] = {
        {"https://127.0.0.1/", "https is not supported"},
        {"ftp://127.0.0.1/", "bad URL"},
        {"127.0.0.1:80/", "bad URL"},
        {"http://", "bad URL"},
        {"http:///path", "bad URL"},
        {"http://127.0.0.1:99999/", "bad URL"},
        {"http://127.0.0.1:0/", "bad URL"},
        {"http://127.0.0.1:8x/", "bad URL"},
        {"http://[::1/", "bad URL"},
        {"http://a b/", "bad URL"},
        {"http://user@127.0.0.1/", "bad URL"},
    };
    size_t n = sizeof(urls) / sizeof(urls[0]);
    const char *args[16];
    for (size_t i = 0; i < n; i++)
        args[i] = urls[i][0];
    args[n] = NULL;
    struct output r;
    run_http_get(&r, args);
    ck_assert_int_eq(exit_code(&r), 1);
    ck_assert_str_eq(r.out, "");
    /* one line per URL, in argument order, saying what is wrong */
    char *line = r.err;
    for (size_t i = 0; i < n; i++) {
        char *nl = strchr(line, '\n');
        ck_assert_msg(nl != NULL, "missing line %zu in: %s", i, r.err);
        *nl = '\0';
        char prefix[128];
        snprintf(prefix, sizeof(prefix), "http_get: %s: ", urls[i][0]);
        ck_assert_msg(strncmp(line, prefix, strlen(prefix)) == 0 && strstr(line, urls[i][1]),
                      "line %zu: %s", i, line);
        line = nl + 1;
    }
    /* and no URL at all is a usage error */
    const char *none[] = {NULL};
    run_http_get(&r, none);
    ck_assert_int_eq(exit_code(&r), 2);
    ck_assert_ptr_nonnull(strstr(r.err, "usage"));
}
END_TEST

START_TEST(test_a_silent_server_times_out)
{
    struct child c = raw_start(RAW_SILENT, NULL, 0);
    char u[128];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/", c.port);
    const char *args[] = {"--timeout-ms", "300", u, NULL};
    struct output r;
    run_http_get(&r, args);
    raw_stop(&c);
    ck_assert_int_eq(exit_code(&r), 1);
    char want[256];
    snprintf(want, sizeof(want), "http_get: %s: timed out after 300 ms\n", u);
    ck_assert_str_eq(r.err, want);
    ck_assert_msg(r.secs >= 0.29 && r.secs < 2.0, "took %.3f s", r.secs);
}
END_TEST

START_TEST(test_malformed_responses_are_reported)
{
    static const char *const replies[] = {
        "garbage\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        "HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Le",
        "",
    };
    for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
        struct child c = raw_start(RAW_ANSWER, replies[i], 0);
        char u[128];
        snprintf(u, sizeof(u), "http://127.0.0.1:%d/", c.port);
        const char *args[] = {u, NULL};
        struct output r;
        run_http_get(&r, args);
        raw_stop(&c);
        ck_assert_msg(exit_code(&r) == 1, "reply %zu: exit %#x", i, r.status);
        ck_assert_msg(strstr(r.err, "malformed response"), "reply %zu: %s", i, r.err);
        ck_assert_str_eq(r.out, "");
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("http_get");
    TCase *tc = tcase_create("http_get");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_fetches_from_the_uco_file_server);
    tcase_add_test(tc, test_fetches_from_python_http_server);
    tcase_add_test(tc, test_urls_run_concurrently_and_print_in_argument_order);
    tcase_add_test(tc, test_chunked_bodies_are_decoded);
    tcase_add_test(tc, test_bodies_ending_at_the_close_and_interim_responses);
    tcase_add_test(tc, test_connection_refused_is_reported_and_exits_1);
    tcase_add_test(tc, test_bad_urls_are_reported_and_exit_1);
    tcase_add_test(tc, test_a_silent_server_times_out);
    tcase_add_test(tc, test_malformed_responses_are_reported);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
