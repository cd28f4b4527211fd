/* examples/file_server, run as a user runs it: a child process on a free
 * port serving a temporary root, driven with curl and raw sockets.  Bytes
 * are compared exactly; the jail is attacked from every side with a secret
 * file placed just outside the root, which must never come back. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define BIG_SIZE (10u * 1024 * 1024)
#define HELLO_MTIME 1600000000 /* Sun, 13 Sep 2020 12:26:40 GMT */
#define HELLO_MTIME_STR "Sun, 13 Sep 2020 12:26:40 GMT"

static char base[64];      /* the temporary directory */
static char root[128];     /* base/root: what the server serves */
static char secret[96];    /* the content of base/secret.txt, outside the root */

/* ---- child processes (struct proc and its helpers are in util.h) ---- */

static struct proc shared; /* started once by the fixture */
static int shared_status;  /* its exit status, checked by main (ASan reports leaks there) */

/* Whether pid exits within ms (it is not reaped). */
static bool exits_within(pid_t pid, int ms)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    ck_assert_int_ge(pfd, 0);
    struct pollfd p = {.fd = pfd, .events = POLLIN};
    bool exited = poll(&p, 1, ms) == 1;
    close(pfd);
    return exited;
}

/* Starts the file server on a free port with extra arguments (NULL-ended);
 * its stdout stays in s->out (the access log), its stderr is ours. */
static void start_server(struct proc *s, const char *const *extra)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/examples/file_server", UCO_BUILD_DIR);
    const char *argv[32] = {path, "--root", root, "--port", "0"};
    int n = 5;
    for (; extra && *extra; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    spawn_server(s, (char *const *)argv, PROC_STDERR_INHERIT, 0);
    ck_assert_msg(strncmp(s->line, "listening on 127.0.0.1:", 23) == 0, "first line: %s", s->line);
}

/* ---- files ---- */

static void write_file(const char *rel, const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void fill_pattern(unsigned char *b, size_t n, uint32_t seed)
{
    uint32_t x = seed | 1;
    for (size_t i = 0; i < n; i++) { /* xorshift: no repeating period a bug could hide in */
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (unsigned char)x;
    }
}

static unsigned char *big; /* big.bin's content, kept to compare with */

/* Whole file into memory (NULL-terminated for text); *len its size. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    fclose(f);
    b[got] = '\0';
    *len = got;
    return b;
}

static void make_tree(void)
{
    snprintf(base, sizeof(base), "/tmp/uco-fs-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base));
    snprintf(root, sizeof(root), "%s/root", base);
    ck_assert_int_eq(mkdir(root, 0755), 0);

    /* The secret sits next to the root: reachable by "..", by a symlink,
     * by an absolute path, by anything the jail fails to stop. */
    snprintf(secret, sizeof(secret), "UCO-SECRET-%d-%ld", (int)getpid(), (long)time(NULL));
    char path[256];
    snprintf(path, sizeof(path), "%s/secret.txt", base);
    FILE *f = fopen(path, "w");
    fprintf(f, "%s\n", secret);
    fclose(f);

    write_file("empty.bin", "", 0);
    write_file("one.bin", "x", 1);
    unsigned char four[4096];
    fill_pattern(four, sizeof(four), 4);
    write_file("four.bin", four, sizeof(four));
    big = malloc(BIG_SIZE);
    fill_pattern(big, BIG_SIZE, 10);
    write_file("big.bin", big, BIG_SIZE);
    write_file("hello.txt", "hello world\n", 12);
    snprintf(path, sizeof(path), "%s/hello.txt", root);
    struct timespec mt[2] = {{.tv_sec = HELLO_MTIME}, {.tv_sec = HELLO_MTIME}};
    ck_assert_int_eq(utimensat(AT_FDCWD, path, mt, 0), 0);
    write_file("a.txt", "A\n", 2);
    write_file("b.txt", "BB\n", 3);
    write_file("c.txt", "CCC\n", 4);
    write_file("index.html", "<h1>root</h1>\n", 14);
    static const char *const typed[] = {"style.css", "app.js", "data.json", "pic.png",
                                        "pic.jpg", "anim.gif", "logo.svg", "favicon.ico",
                                        "doc.pdf", "mod.wasm", "blob.xyz", "README",
                                        "PAGE.HTML"};
    for (size_t i = 0; i < sizeof(typed) / sizeof(typed[0]); i++)
        write_file(typed[i], "t", 1);
    snprintf(path, sizeof(path), "%s/sub", root);
    mkdir(path, 0755);
    write_file("sub/index.html", "<h1>sub</h1>\n", 13);
    snprintf(path, sizeof(path), "%s/emptydir", root);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/evil.example", root);
    mkdir(path, 0755);
    write_file("evil.example/index.html", "evil\n", 5);
    snprintf(path, sizeof(path), "%s/fifo", root);
    ck_assert_int_eq(mkfifo(path, 0644), 0);

    /* symlinks: one staying inside (served), the rest leaving (refused) */
    static const char *const links[][2] = {
        {"hello.txt", "alias.txt"},   {"../secret.txt", "escape"},
        {"/etc/passwd", "escape_abs"}, {"..", "escdir"},
        {"/proc/self/root", "magic"},  {"/", "slash"},
    };
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", root, links[i][1]);
        ck_assert_int_eq(symlink(links[i][0], path), 0);
    }
}

static void setup(void)
{
    make_tree();
    start_server(&shared, NULL);
}

static void teardown(void)
{
    shared_status = proc_stop(&shared, SIGTERM, 15);
    rm_tree(base);
    free(big);
}

/* ---- a raw HTTP client ---- */

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void send_buf(int fd, const void *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, (const char *)buf + off, len - off, MSG_NOSIGNAL);
        ck_assert_int_gt(n, 0);
        off += (size_t)n;
    }
}

static void send_str(int fd, const char *s) { send_buf(fd, s, strlen(s)); }

/* A buffered reader over one connection (responses may arrive together). */
struct rd {
    int fd;
    size_t start, end;
    char buf[1 << 16];
};

static ssize_t rd_fill(struct rd *r)
{
    if (r->start == r->end)
        r->start = r->end = 0;
    if (r->end == sizeof(r->buf)) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    ssize_t n = recv(r->fd, r->buf + r->end, sizeof(r->buf) - r->end, 0);
    if (n > 0)
        r->end += (size_t)n;
    return n;
}

struct resp {
    int status;
    char head[16384];
    char *body;
    size_t body_len;
};

/* A header's value, or "" (so assertions print something useful). */
static const char *hdr(const struct resp *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    out[0] = '\0';
    for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r");
            if (len >= cap)
                len = cap - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            break;
        }
    }
    return out;
}

/* Reads one response (no body when head_only: the request was HEAD).
 * Returns 0, or -1 at end of stream / reset / timeout before a whole one. */
static int read_resp(struct rd *r, struct resp *o, bool head_only)
{
    o->status = 0;
    o->head[0] = '\0';
    o->body = NULL;
    o->body_len = 0;
    char *e;
    while (!(e = memmem(r->buf + r->start, r->end - r->start, "\r\n\r\n", 4)))
        if (rd_fill(r) <= 0)
            return -1;
    size_t hl = (size_t)(e + 4 - (r->buf + r->start));
    size_t keep = hl < sizeof(o->head) ? hl : sizeof(o->head) - 1;
    memcpy(o->head, r->buf + r->start, keep);
    o->head[keep] = '\0';
    r->start += hl;
    if (sscanf(o->head, "HTTP/1.1 %d ", &o->status) != 1)
        return -1;
    char v[64];
    long long cl = atoll(hdr(o, "Content-Length", v, sizeof(v)));
    if (head_only || o->status == 304)
        cl = 0;
    o->body = malloc((size_t)cl + 1);
    o->body[0] = '\0';
    while (o->body_len < (size_t)cl) {
        if (r->start == r->end && rd_fill(r) <= 0) {
            o->body[o->body_len] = '\0';
            return -1;
        }
        size_t n = r->end - r->start;
        if (n > (size_t)cl - o->body_len)
            n = (size_t)cl - o->body_len;
        memcpy(o->body + o->body_len, r->buf + r->start, n);
        r->start += n;
        o->body_len += n;
    }
    o->body[o->body_len] = '\0';
    return 0;
}

static void resp_free(struct resp *o)
{
    free(o->body);
    o->body = NULL;
}

/* Whether the server closed the connection (nothing more than EOF or a
 * reset comes, within the socket's 10 s receive timeout). */
static bool closed_by_server(struct rd *r)
{
    if (r->start != r->end)
        return false;
    char ch;
    ssize_t n = recv(r->fd, &ch, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static struct rd *rd_open(int port)
{
    struct rd *r = malloc(sizeof(*r));
    r->fd = dial(port);
    r->start = r->end = 0;
    return r;
}

static void rd_close(struct rd *r)
{
    close(r->fd);
    free(r);
}

/* One request on a fresh connection; returns the status (0 if none came)
 * and leaves the response in *o; *closed tells whether the server hung up
 * right after it (may be NULL). */
static int one_request(int port, const void *req, size_t len, struct resp *o, bool *closed)
{
    struct rd *r = rd_open(port);
    send_buf(r->fd, req, len);
    int ok = read_resp(r, o, strncmp(req, "HEAD ", 5) == 0);
    if (closed)
        *closed = ok == 0 && closed_by_server(r);
    rd_close(r);
    return ok == 0 ? o->status : 0;
}

static int get(int port, const char *req, struct resp *o)
{
    return one_request(port, req, strlen(req), o, NULL);
}

/* ---- tests ---- */

START_TEST(test_downloads_are_byte_exact_with_curl)
{
    static const struct { const char *name; size_t size; } files[] = {
        {"empty.bin", 0}, {"one.bin", 1}, {"four.bin", 4096}, {"big.bin", BIG_SIZE}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char url[256], out[256], want[256], src[256];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s", shared.port, files[i].name);
        snprintf(out, sizeof(out), "%s/dl-%s", base, files[i].name);
        char *argv[] = {"curl", "-sS", "--max-time", "30", "-o", out, "-w",
                        "%{http_code} %{size_download}", url, NULL};
        struct output r;
        run_capture(argv, 40, &r);
        ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "curl %s: status %#x",
                      url, r.status);
        snprintf(want, sizeof(want), "200 %zu", files[i].size);
        ck_assert_str_eq(r.out, want);
        size_t a, b;
        snprintf(src, sizeof(src), "%s/%s", root, files[i].name);
        char *x = slurp(src, &a), *y = slurp(out, &b);
        ck_assert_ptr_nonnull(y);
        ck_assert_uint_eq(a, b);
        ck_assert_msg(memcmp(x, y, a) == 0, "%s differs", files[i].name);
        free(x);
        free(y);
    }
}
END_TEST

START_TEST(test_head_sends_the_headers_and_no_body)
{
    struct rd *r = rd_open(shared.port);
    struct resp o;
    char v[64];
    send_str(r->fd, "HEAD /four.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(read_resp(r, &o, true), 0);
    ck_assert_int_eq(o.status, 200);
    ck_assert_str_eq(hdr(&o, "Content-Length", v, sizeof(v)), "4096");
    resp_free(&o);
    /* Had HEAD sent a body, this response would start in the middle of it. */
    send_str(r->fd, "GET /one.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(read_resp(r, &o, false), 0);
    ck_assert_int_eq(o.status, 200);
    ck_assert_str_eq(o.body, "x");
    resp_free(&o);
    rd_close(r);
}
END_TEST

START_TEST(test_keep_alive_serves_two_requests_on_one_connection)
{
    struct rd *r = rd_open(shared.port);
    struct resp o;
    char v[64];
    send_str(r->fd, "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(read_resp(r, &o, false), 0);
    ck_assert_int_eq(o.status, 200);
    ck_assert_str_eq(o.body, "hello world\n");
    ck_assert_str_eq(hdr(&o, "Connection", v, sizeof(v)), "");
    resp_free(&o);
    send_str(r->fd, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(read_resp(r, &o, false), 0);
    ck_assert_int_eq(o.status, 200);
    ck_assert_str_eq(o.body, "A\n");
    resp_free(&o);
    /* "Connection: close" is honoured: answered, then closed */
    send_str(r->fd, "GET /b.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    ck_assert_int_eq(read_resp(r, &o, false), 0);
    ck_assert_str_eq(o.body, "BB\n");
    ck_assert_str_eq(hdr(&o, "Connection", v, sizeof(v)), "close");
    ck_assert(closed_by_server(r));
    resp_free(&o);
    rd_close(r);

    /* HTTP/1.0 closes unless asked to keep alive */
    bool closed;
    const char *req = "GET /a.txt HTTP/1.0\r\n\r\n";
    ck_assert_int_eq(one_request(shared.port, req, strlen(req), &o, &closed), 200);
    ck_assert(closed);
    resp_free(&o);
    r = rd_open(shared.port);
    send_str(r->fd, "GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ck_assert_int_eq(read_resp(r, &o, false), 0);
    ck_assert_str_eq(hdr(&o, "Connection", v, sizeof(v)), "keep-alive");
    resp_free(&o);
    send_str(r->fd, "GET /c.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ck_assert_int_eq(read_resp(r, &o, false), 0);
    ck_assert_str_eq(o.body, "CCC\n");
    resp_free(&o);
    rd_close(r);
}
END_TEST

START_TEST(test_pipelined_requests_are_answered_in_order)
{
    struct rd *r = rd_open(shared.port);
    /* three requests, one write: GET, HEAD, GET */
    send_str(r->fd, "GET /c.txt HTTP/1.1\r\nHost: t\r\n\r\n"
                    "HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    struct resp o;
    char v[64];
    ck_assert_int_eq(read_resp(r, &o, false), 0);
    ck_assert_str_eq(o.body, "CCC\n");
    resp_free(&o);
    ck_assert_int_eq(read_resp(r, &o, true), 0);
    ck_assert_int_eq(o.status, 200);
    ck_assert_str_eq(hdr(&o, "Content-Length", v, sizeof(v)), "10485760");
    resp_free(&o);
    ck_assert_int_eq(read_resp(r, &o, false), 0);
    ck_assert_str_eq(o.body, "A\n");
    resp_free(&o);
    /* and the connection is still good */
    send_str(r->fd, "GET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(read_resp(r, &o, false), 0);
    ck_assert_str_eq(o.body, "BB\n");
    resp_free(&o);
    rd_close(r);
}
END_TEST

START_TEST(test_single_ranges_give_206_and_unsatisfiable_ones_416)
{
    static const struct { const char *range; int status; const char *cr, *body; } cases[] = {
        {"bytes=0-3", 206, "bytes 0-3/12", "hell"},
        {"bytes=-6", 206, "bytes 6-11/12", "world\n"},
        {"bytes=6-", 206, "bytes 6-11/12", "world\n"},
        {"bytes=6-100", 206, "bytes 6-11/12", "world\n"},
        {"bytes=-100", 206, "bytes 0-11/12", "hello world\n"},
        {"bytes=12-", 416, "bytes */12", NULL},
        {"bytes=-0", 416, "bytes */12", NULL},
        {"bytes=0-1,4-5", 200, "", "hello world\n"}, /* several ranges: the whole file */
        {"bytes=5-2", 200, "", "hello world\n"},     /* invalid: ignored */
        {"items=0-3", 200, "", "hello world\n"},     /* another unit: ignored */
    };
    struct rd *r = rd_open(shared.port); /* all on one connection: 416 keeps it */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char req[256], v[64];
        snprintf(req, sizeof(req), "GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: %s\r\n\r\n",
                 cases[i].range);
        send_str(r->fd, req);
        struct resp o;
        ck_assert_int_eq(read_resp(r, &o, false), 0);
        ck_assert_msg(o.status == cases[i].status, "%s: %d", cases[i].range, o.status);
        ck_assert_str_eq(hdr(&o, "Content-Range", v, sizeof(v)), cases[i].cr);
        if (cases[i].body)
            ck_assert_str_eq(o.body, cases[i].body);
        resp_free(&o);
    }
    rd_close(r);

    /* a range in the middle of the big file, byte-exact */
    struct resp o;
    char v[64];
    ck_assert_int_eq(get(shared.port, "GET /big.bin HTTP/1.1\r\nHost: t\r\n"
                                      "Range: bytes=5000000-5199999\r\n\r\n", &o), 206);
    ck_assert_str_eq(hdr(&o, "Content-Range", v, sizeof(v)), "bytes 5000000-5199999/10485760");
    ck_assert_uint_eq(o.body_len, 200000);
    ck_assert(memcmp(o.body, big + 5000000, 200000) == 0);
    resp_free(&o);
    /* If-Range with another date: the whole file */
    ck_assert_int_eq(get(shared.port, "GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-3\r\n"
                                      "If-Range: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n", &o), 200);
    resp_free(&o);
    ck_assert_int_eq(get(shared.port, "GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-3\r\n"
                                      "If-Range: " HELLO_MTIME_STR "\r\n\r\n", &o), 206);
    resp_free(&o);
}
END_TEST

/* Big bodies are spliced through the connection's pipe, small ones copied:
 * mixed and pipelined on one connection, every byte lands in its place. */
START_TEST(test_pipelined_big_and_small_bodies_share_a_connection_byte_exact)
{
    struct rd *r = rd_open(shared.port);
    send_str(r->fd, "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=3000000-4999999\r\n\r\n"
                    "GET /four.bin HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"
                    "HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=-131000\r\n\r\n"
                    "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    struct resp o;
    char v[64];
    ck_assert_int_eq(read_resp(r, &o, false), 0);
    ck_assert_int_eq(o.status, 206);
    ck_assert_uint_eq(o.body_len, 2000000);
    ck_assert(memcmp(o.body, big + 3000000, 2000000) == 0);
    resp_free(&o);
    ck_assert_int_eq(read_resp(r, &o, false), 0);
    ck_assert_uint_eq(o.body_len, 4096);
    resp_free(&o);
    ck_assert_int_eq(read_resp(r, &o, false), 0);
    ck_assert_int_eq(o.status, 200);
    ck_assert_uint_eq(o.body_len, BIG_SIZE);
    ck_assert(memcmp(o.body, big, BIG_SIZE) == 0);
    resp_free(&o);
    ck_assert_int_eq(read_resp(r, &o, true), 0);
    ck_assert_str_eq(hdr(&o, "Content-Length", v, sizeof(v)), "10485760");
    resp_free(&o);
    ck_assert_int_eq(read_resp(r, &o, false), 0); /* just under one buffer: copied */
    ck_assert_int_eq(o.status, 206);
    ck_assert_uint_eq(o.body_len, 131000);
    ck_assert(memcmp(o.body, big + BIG_SIZE - 131000, 131000) == 0);
    resp_free(&o);
    ck_assert_int_eq(read_resp(r, &o, false), 0);
    ck_assert_str_eq(o.body, "hello world\n");
    resp_free(&o);
    rd_close(r);
}
END_TEST

/* A file cut short while it is being sent: the promised Content-Length can
 * no longer be met, so the connection ends early (never padded, never a
 * hang) and the server goes on serving. */
START_TEST(test_a_file_shrinking_mid_response_closes_the_connection)
{
    enum { SIZE = 32 << 20 };
    unsigned char *data = malloc(SIZE);
    fill_pattern(data, SIZE, 32);
    write_file("shrink.bin", data, SIZE);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 65536; /* the server stalls on a full socket long before the end */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)shared.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    send_str(fd, "GET /shrink.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    char buf[65536];
    size_t got = 0;
    char *end = NULL;
    while (!end) {
        ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
        buf[got] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    ck_assert_ptr_nonnull(strstr(buf, "Content-Length: 33554432\r\n"));
    size_t total = got - (size_t)(end + 4 - buf);
    char path[256];
    snprintf(path, sizeof(path), "%s/shrink.bin", root);
    ck_assert_int_eq(truncate(path, 1000), 0);
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        total += (size_t)n;
    ck_assert_msg(n == 0 || errno == ECONNRESET, "recv: %s", strerror(errno));
    ck_assert_msg(total < SIZE, "got all %zu bytes of a truncated file", total);
    close(fd);
    unlink(path);
    free(data);
    struct resp o;
    ck_assert_int_eq(get(shared.port, "GET /four.bin HTTP/1.1\r\nHost: t\r\n\r\n", &o), 200);
    resp_free(&o);
}
END_TEST

START_TEST(test_if_modified_since_gives_304)
{
    struct resp o;
    char v[64];
    ck_assert_int_eq(get(shared.port, "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n", &o), 200);
    ck_assert_str_eq(hdr(&o, "Last-Modified", v, sizeof(v)), HELLO_MTIME_STR);
    ck_assert_str_ne(hdr(&o, "Date", v, sizeof(v)), "");
    resp_free(&o);

    struct rd *r = rd_open(shared.port);
    send_str(r->fd, "GET /hello.txt HTTP/1.1\r\nHost: t\r\n"
                    "If-Modified-Since: " HELLO_MTIME_STR "\r\n\r\n");
    ck_assert_int_eq(read_resp(r, &o, false), 0);
    ck_assert_int_eq(o.status, 304);
    ck_assert_str_eq(hdr(&o, "Content-Length", v, sizeof(v)), "");
    resp_free(&o);
    /* no body followed the 304: the next response parses */
    send_str(r->fd, "GET /hello.txt HTTP/1.1\r\nHost: t\r\n"
                    "If-Modified-Since: Sun, 13 Sep 2020 12:26:39 GMT\r\n\r\n");
    ck_assert_int_eq(read_resp(r, &o, false), 0);
    ck_assert_int_eq(o.status, 200); /* a second older: modified since */
    ck_assert_str_eq(o.body, "hello world\n");
    resp_free(&o);
    /* the two obsolete date formats, and garbage (ignored) */
    send_str(r->fd, "GET /hello.txt HTTP/1.1\r\nHost: t\r\n"
                    "If-Modified-Since: Sunday, 13-Sep-20 12:26:40 GMT\r\n\r\n");
    ck_assert_int_eq(read_resp(r, &o, false), 0);
    ck_assert_int_eq(o.status, 304);
    resp_free(&o);
    send_str(r->fd, "GET /hello.txt HTTP/1.1\r\nHost: t\r\n"
                    "If-Modified-Since: Sun Sep 13 12:26:40 2020\r\n\r\n");
    ck_assert_int_eq(read_resp(r, &o, false), 0);
    ck_assert_int_eq(o.status, 304);
    resp_free(&o);
    send_str(r->fd, "GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: yesterday\r\n\r\n");
    ck_assert_int_eq(read_resp(r, &o, false), 0);
    ck_assert_int_eq(o.status, 200);
    resp_free(&o);
    rd_close(r);
}
END_TEST

START_TEST(test_content_type_follows_the_extension)
{
    static const char *const cases[][2] = {
        {"index.html", "text/html; charset=utf-8"}, {"PAGE.HTML", "text/html; charset=utf-8"},
        {"style.css", "text/css; charset=utf-8"},   {"app.js", "text/javascript; charset=utf-8"},
        {"data.json", "application/json"},          {"hello.txt", "text/plain; charset=utf-8"},
        {"pic.png", "image/png"},                   {"pic.jpg", "image/jpeg"},
        {"anim.gif", "image/gif"},                  {"logo.svg", "image/svg+xml"},
        {"favicon.ico", "image/x-icon"},            {"doc.pdf", "application/pdf"},
        {"mod.wasm", "application/wasm"},           {"blob.xyz", "application/octet-stream"},
        {"README", "application/octet-stream"},
    };
    struct rd *r = rd_open(shared.port);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char req[256], v[128];
        snprintf(req, sizeof(req), "HEAD /%s HTTP/1.1\r\nHost: t\r\n\r\n", cases[i][0]);
        send_str(r->fd, req);
        struct resp o;
        ck_assert_int_eq(read_resp(r, &o, true), 0);
        ck_assert_int_eq(o.status, 200);
        ck_assert_str_eq(hdr(&o, "Content-Type", v, sizeof(v)), cases[i][1]);
        resp_free(&o);
    }
    rd_close(r);
}
END_TEST

START_TEST(test_directories_serve_index_html_and_redirect_to_the_slash)
{
    struct resp o;
    char v[256];
    ck_assert_int_eq(get(shared.port, "GET /sub HTTP/1.1\r\nHost: t\r\n\r\n", &o), 301);
    ck_assert_str_eq(hdr(&o, "Location", v, sizeof(v)), "/sub/");
    resp_free(&o);
    ck_assert_int_eq(get(shared.port, "GET /sub?x=1 HTTP/1.1\r\nHost: t\r\n\r\n", &o), 301);
    ck_assert_str_eq(hdr(&o, "Location", v, sizeof(v)), "/sub/?x=1");
    resp_free(&o);
    ck_assert_int_eq(get(shared.port, "GET /sub/ HTTP/1.1\r\nHost: t\r\n\r\n", &o), 200);
    ck_assert_str_eq(o.body, "<h1>sub</h1>\n");
    ck_assert_str_eq(hdr(&o, "Content-Type", v, sizeof(v)), "text/html; charset=utf-8");
    resp_free(&o);
    ck_assert_int_eq(get(shared.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &o), 200);
    ck_assert_str_eq(o.body, "<h1>root</h1>\n");
    resp_free(&o);
    ck_assert_int_eq(get(shared.port, "GET /sub/./ HTTP/1.1\r\nHost: t\r\n\r\n", &o), 200);
    ck_assert_str_eq(o.body, "<h1>sub</h1>\n");
    resp_free(&o);
    /* The redirect is built from the normalised path: "//evil.example"
     * must not become a protocol-relative (off-site) Location. */
    ck_assert_int_eq(get(shared.port, "GET //evil.example HTTP/1.1\r\nHost: t\r\n\r\n", &o), 301);
    ck_assert_str_eq(hdr(&o, "Location", v, sizeof(v)), "/evil.example/");
    resp_free(&o);
    /* a directory without index.html is not listed; a file is not a directory */
    int st = get(shared.port, "GET /emptydir/ HTTP/1.1\r\nHost: t\r\n\r\n", &o);
    ck_assert_msg(st == 403 || st == 404, "emptydir/: %d", st);
    resp_free(&o);
    ck_assert_int_eq(get(shared.port, "GET /hello.txt/ HTTP/1.1\r\nHost: t\r\n\r\n", &o), 404);
    resp_free(&o);
    ck_assert_int_eq(get(shared.port, "GET /missing.txt HTTP/1.1\r\nHost: t\r\n\r\n", &o), 404);
    resp_free(&o);
    /* a symlink that stays inside the root is followed */
    ck_assert_int_eq(get(shared.port, "GET /alias.txt HTTP/1.1\r\nHost: t\r\n\r\n", &o), 200);
    ck_assert_str_eq(o.body, "hello world\n");
    resp_free(&o);
}
END_TEST

START_TEST(test_traversal_attempts_never_leave_the_root)
{
    static const char *const targets[] = {
        "/../etc/passwd", "/../secret.txt", "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt",
        "/.%2e/secret.txt", "/..%2fsecret.txt", "/..%2Fsecret.txt", "/%2e%2e%2fsecret.txt",
        "/sub/../../secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt", "/sub/..%2f..%2fsecret.txt",
        "/%00", "/hello.txt%00.html", "/%00/../secret.txt", "//etc/passwd", "///etc/passwd",
        "/%2fetc%2fpasswd", "/%252e%252e/secret.txt", "/escape", "/escape_abs",
        "/escdir/secret.txt", "/escdir/root/hello.txt", "/magic/etc/passwd", "/slash/etc/passwd",
        "/fifo", "../secret.txt", "*", "http://t/../secret.txt", "http://t/%2e%2e/secret.txt",
        "/..\\secret.txt", "/..", "/%2e%2e", "/sub/..", "/%5c..%5csecret.txt",
    };
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        char req[512];
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", targets[i]);
        struct resp o;
        int st = get(shared.port, req, &o);
        ck_assert_msg(st == 400 || st == 403 || st == 404, "%s: status %d", targets[i], st);
        ck_assert_msg(!strstr(o.body, secret) && !strstr(o.body, "root:"), "%s: leaked", targets[i]);
        resp_free(&o);
    }
    /* a raw NUL in the target */
    static const char nul[] = "GET /hello.txt\0/../../secret.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    struct resp o;
    ck_assert_int_eq(one_request(shared.port, nul, sizeof(nul) - 1, &o, NULL), 400);
    resp_free(&o);
    /* and curl, told not to squash the dots */
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/../secret.txt", shared.port);
    char *argv[] = {"curl", "-s", "--path-as-is", "--max-time", "10", url, NULL};
    struct output r;
    run_capture(argv, 30, &r);
    ck_assert_ptr_null(strstr(r.out, secret));
}
END_TEST

START_TEST(test_malformed_requests_get_400_and_the_connection_closes)
{
    static const char *const reqs[] = {
        "GARBAGE\r\n\r\n",
        "GET /hello.txt\r\nHost: t\r\n\r\n",
        "GET  /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /hello.txt HTTP/1.1 \r\nHost: t\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\n\r\n",                         /* no Host */
        "GET /hello.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nName : x\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nX: a\r\n folded\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nNoColon\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nX: \x01\r\n\r\n",
        "GET /%zz HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /%4 HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /a\x7f HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /a\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /hello.txt#frag HTTP/1.1\r\nHost: t\r\n\r\n",
        "G(T /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /hello.txt FTP/1.1\r\nHost: t\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        struct resp o;
        bool closed;
        /* a valid request follows: it must never be answered */
        char req[512];
        snprintf(req, sizeof(req), "%sGET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n", reqs[i]);
        int st = one_request(shared.port, req, strlen(req), &o, &closed);
        ck_assert_msg(st == 400, "request %zu: status %d", i, st);
        ck_assert_msg(closed, "request %zu: connection left open", i);
        resp_free(&o);
    }
    struct resp o;
    ck_assert_int_eq(get(shared.port, "GET /hello.txt HTTP/2.0\r\nHost: t\r\n\r\n", &o), 505);
    resp_free(&o);
    /* empty lines before a request are tolerated (RFC 9112 2.2) */
    ck_assert_int_eq(get(shared.port, "\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n", &o), 200);
    resp_free(&o);
}
END_TEST

START_TEST(test_overlong_request_line_is_414_and_overlong_headers_431)
{
    size_t cap = 64 * 1024;
    char *req = malloc(cap);
    struct resp o;
    bool closed;

    int n = snprintf(req, cap, "GET /");
    memset(req + n, 'a', 9000);
    n += 9000;
    n += snprintf(req + n, cap - (size_t)n, " HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(one_request(shared.port, req, (size_t)n, &o, &closed), 414);
    ck_assert(closed);
    resp_free(&o);

    /* 20 KiB of header fields */
    n = snprintf(req, cap, "GET /a.txt HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 40; i++) {
        n += snprintf(req + n, cap - (size_t)n, "X-Pad-%d: ", i);
        memset(req + n, 'b', 500);
        n += 500;
        n += snprintf(req + n, cap - (size_t)n, "\r\n");
    }
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    ck_assert_int_eq(one_request(shared.port, req, (size_t)n, &o, &closed), 431);
    ck_assert(closed);
    resp_free(&o);

    /* too many small fields */
    n = snprintf(req, cap, "GET /a.txt HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 150; i++)
        n += snprintf(req + n, cap - (size_t)n, "X-%d: y\r\n", i);
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    ck_assert_int_eq(one_request(shared.port, req, (size_t)n, &o, &closed), 431);
    resp_free(&o);

    /* just under the limits is fine */
    n = snprintf(req, cap, "GET /a.txt?");
    memset(req + n, 'q', 8000);
    n += 8000;
    n += snprintf(req + n, cap - (size_t)n, " HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(req + n, 'h', 15000);
    n += 15000;
    n += snprintf(req + n, cap - (size_t)n, "\r\n\r\n");
    ck_assert_int_eq(one_request(shared.port, req, (size_t)n, &o, NULL), 200);
    ck_assert_str_eq(o.body, "A\n");
    resp_free(&o);
    free(req);
}
END_TEST

START_TEST(test_unknown_method_is_501_and_post_is_405_with_allow)
{
    struct resp o;
    char v[64];
    ck_assert_int_eq(get(shared.port, "BREW /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n", &o), 501);
    resp_free(&o);
    ck_assert_int_eq(get(shared.port, "get /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n", &o), 501);
    resp_free(&o);
    static const char *const methods[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        char req[256];
        snprintf(req, sizeof(req), "%s /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
                 methods[i]);
        ck_assert_int_eq(get(shared.port, req, &o), 405);
        ck_assert_str_eq(hdr(&o, "Allow", v, sizeof(v)), "GET, HEAD");
        ck_assert_ptr_null(strstr(o.body, "hello world"));
        resp_free(&o);
    }
    /* a device, FIFO or socket in the root is not served, and never blocks */
    ck_assert_int_eq(get(shared.port, "GET /fifo HTTP/1.1\r\nHost: t\r\n\r\n", &o), 403);
    resp_free(&o);
}
END_TEST

START_TEST(test_slow_header_client_is_dropped_while_others_are_served)
{
    struct proc s;
    const char *extra[] = {"--header-timeout-ms", "1000", NULL};
    start_server(&s, extra);
    double t0 = now_sec();
    struct rd *slow = rd_open(s.port);
    send_str(slow->fd, "GET /hel"); /* half a request line, then nothing */
    int silent = dial(s.port);       /* connects and never sends a byte */

    /* others are served meanwhile, promptly */
    for (int i = 0; i < 5; i++) {
        struct resp o;
        ck_assert_int_eq(get(s.port, "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n", &o), 200);
        ck_assert_str_eq(o.body, "hello world\n");
        resp_free(&o);
    }
    ck_assert_msg(now_sec() - t0 < 0.9, "others waited %.3f s", now_sec() - t0);

    /* the slow one gets 408 (it sent part of a request) and is closed */
    struct resp o;
    ck_assert_int_eq(read_resp(slow, &o, false), 0);
    ck_assert_int_eq(o.status, 408);
    resp_free(&o);
    ck_assert(closed_by_server(slow));
    double dropped = now_sec() - t0;
    ck_assert_msg(dropped >= 0.95 && dropped < 4.0, "dropped after %.3f s", dropped);
    char ch;
    ck_assert_int_eq(recv(silent, &ch, 1, 0), 0);
    ck_assert_msg(now_sec() - t0 < 4.0, "silent client dropped after %.3f s", now_sec() - t0);
    rd_close(slow);
    close(silent);
    ck_assert_int_eq(proc_stop(&s, SIGTERM, 15), 0);
}
END_TEST

START_TEST(test_client_that_never_reads_is_dropped_after_the_send_timeout)
{
    struct proc s;
    const char *extra[] = {"--send-timeout-ms", "300", NULL};
    start_server(&s, extra);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    send_str(fd, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");

    /* The scenario itself: this client does not read for a while.  The
     * server keeps serving others meanwhile. */
    double t0 = now_sec();
    while (now_sec() - t0 < 1.0) {
        struct resp o;
        ck_assert_int_eq(get(s.port, "GET /four.bin HTTP/1.1\r\nHost: t\r\n\r\n", &o), 200);
        ck_assert_uint_eq(o.body_len, 4096);
        resp_free(&o);
        usleep(50 * 1000);
    }
    /* Then it reads: what was in flight, then the end, long before 10 MiB. */
    size_t total = 0;
    char buf[65536];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        total += (size_t)n;
    ck_assert_msg(n == 0 || errno == ECONNRESET, "recv: %s", strerror(errno));
    ck_assert_msg(total < BIG_SIZE, "got %zu bytes: never dropped", total);
    close(fd);
    ck_assert_int_eq(proc_stop(&s, SIGTERM, 15), 0);
}
END_TEST

START_TEST(test_eight_concurrent_downloads_of_the_big_file_are_byte_exact)
{
    enum { N = 8 };
    static struct proc curl[N];
    char url[128], out[N][256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/big.bin", shared.port);
    for (int i = 0; i < N; i++) {
        snprintf(out[i], sizeof(out[i]), "%s/par-%d.bin", base, i);
        char *argv[] = {"curl", "-sS", "--fail", "--max-time", "30", "-o", out[i], url, NULL};
        proc_spawn(&curl[i], argv, PROC_STDERR_INHERIT, 0);
    }
    for (int i = 0; i < N; i++) {
        int st = proc_wait(&curl[i], 40, NULL);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "curl %d: %#x", i, st);
    }
    for (int i = 0; i < N; i++) {
        size_t len;
        char *got = slurp(out[i], &len);
        ck_assert_uint_eq(len, BIG_SIZE);
        ck_assert_msg(memcmp(got, big, BIG_SIZE) == 0, "download %d differs", i);
        free(got);
        unlink(out[i]);
    }
}
END_TEST

START_TEST(test_connections_beyond_max_conns_get_503)
{
    struct proc s;
    const char *extra[] = {"--max-conns", "2", NULL};
    start_server(&s, extra);
    struct rd *a = rd_open(s.port), *b = rd_open(s.port);
    struct resp o;
    /* one exchange each: both are surely accepted and counted */
    for (int i = 0; i < 2; i++) {
        struct rd *r = i ? b : a;
        send_str(r->fd, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        ck_assert_int_eq(read_resp(r, &o, false), 0);
        ck_assert_int_eq(o.status, 200);
        resp_free(&o);
    }
    struct rd *c = rd_open(s.port);
    ck_assert_int_eq(read_resp(c, &o, false), 0);
    ck_assert_int_eq(o.status, 503);
    resp_free(&o);
    ck_assert(closed_by_server(c));
    rd_close(c);
    /* the two inside are still served */
    send_str(a->fd, "GET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(read_resp(a, &o, false), 0);
    ck_assert_str_eq(o.body, "BB\n");
    resp_free(&o);
    rd_close(a);
    rd_close(b);
    ck_assert_int_eq(proc_stop(&s, SIGTERM, 15), 0);
}
END_TEST

START_TEST(test_access_log_has_one_line_per_request)
{
    struct proc s;
    const char *extra[] = {"--access-log", NULL};
    start_server(&s, extra);
    struct resp o;
    get(s.port, "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n", &o);
    resp_free(&o);
    get(s.port, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", &o);
    resp_free(&o);
    get(s.port, "HEAD /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n", &o);
    resp_free(&o);
    get(s.port, "GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-3\r\n\r\n", &o);
    resp_free(&o);
    static const char *const want[] = {"GET /hello.txt 200 12", "GET /nope 404 14",
                                       "HEAD /hello.txt 200 0", "GET /hello.txt 206 4"};
    for (size_t i = 0; i < 4; i++) {
        char line[256];
        ck_assert_int_gt(read_line_fd(s.out, line, sizeof(line), 5000), 0);
        ck_assert_str_eq(line, want[i]);
    }
    ck_assert_int_eq(proc_stop(&s, SIGTERM, 15), 0);
}
END_TEST

START_TEST(test_sigterm_finishes_responses_in_flight_closes_idle_ones_and_exits_zero)
{
    struct proc s;
    start_server(&s, NULL);
    /* an idle keep-alive connection */
    struct rd *idle = rd_open(s.port);
    struct resp o;
    send_str(idle->fd, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(read_resp(idle, &o, false), 0);
    resp_free(&o);
    /* a download in flight: a small receive buffer keeps the server
     * mid-response while we signal */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 65536;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    send_str(fd, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    struct rd *dl = malloc(sizeof(*dl));
    dl->fd = fd;
    dl->start = dl->end = 0;
    while (!memmem(dl->buf, dl->end, "\r\n\r\n", 4))
        ck_assert_int_gt(rd_fill(dl), 0);

    double t0 = now_sec();
    kill(s.pid, SIGTERM);
    /* the idle connection is closed at once (cancelled, not timed out) */
    ck_assert(closed_by_server(idle));
    ck_assert_msg(now_sec() - t0 < 3.0, "idle closed after %.3f s", now_sec() - t0);
    rd_close(idle);

    /* the download completes, byte-exact, then the connection closes */
    ck_assert_int_eq(read_resp(dl, &o, false), 0);
    ck_assert_int_eq(o.status, 200);
    ck_assert_uint_eq(o.body_len, BIG_SIZE);
    ck_assert(memcmp(o.body, big, BIG_SIZE) == 0);
    resp_free(&o);
    ck_assert(closed_by_server(dl));
    rd_close(dl);

    int st = proc_wait(&s, 10, NULL);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %#x", st);
}
END_TEST

/* A client that does not read: the response cannot finish.  The first
 * signal waits for it; the second drops it. */
START_TEST(test_a_second_signal_drops_responses_still_in_flight)
{
    struct proc s;
    start_server(&s, NULL);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    send_str(fd, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    char buf[65536];
    ck_assert_int_gt(recv(fd, buf, 16, 0), 0); /* the response has started */

    kill(s.pid, SIGTERM);
    ck_assert_msg(!exits_within(s.pid, 500), "exited with a response in flight");
    int st = proc_stop(&s, SIGTERM, 5);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %#x", st);
    size_t total = 0;
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        total += (size_t)n;
    ck_assert_msg(n == 0 || errno == ECONNRESET, "recv: %s", strerror(errno));
    ck_assert_uint_lt(total, BIG_SIZE);
    close(fd);
}
END_TEST

START_TEST(test_sigint_on_an_idle_server_exits_zero)
{
    struct proc s;
    start_server(&s, NULL);
    ck_assert_int_eq(proc_stop(&s, SIGINT, 15), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("file_server");
    TCase *tc = tcase_create("file_server");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_downloads_are_byte_exact_with_curl);
    tcase_add_test(tc, test_head_sends_the_headers_and_no_body);
    tcase_add_test(tc, test_keep_alive_serves_two_requests_on_one_connection);
    tcase_add_test(tc, test_pipelined_requests_are_answered_in_order);
    tcase_add_test(tc, test_single_ranges_give_206_and_unsatisfiable_ones_416);
    tcase_add_test(tc, test_pipelined_big_and_small_bodies_share_a_connection_byte_exact);
    tcase_add_test(tc, test_a_file_shrinking_mid_response_closes_the_connection);
    tcase_add_test(tc, test_if_modified_since_gives_304);
    tcase_add_test(tc, test_content_type_follows_the_extension);
    tcase_add_test(tc, test_directories_serve_index_html_and_redirect_to_the_slash);
    tcase_add_test(tc, test_traversal_attempts_never_leave_the_root);
    tcase_add_test(tc, test_malformed_requests_get_400_and_the_connection_closes);
    tcase_add_test(tc, test_overlong_request_line_is_414_and_overlong_headers_431);
    tcase_add_test(tc, test_unknown_method_is_501_and_post_is_405_with_allow);
    tcase_add_test(tc, test_slow_header_client_is_dropped_while_others_are_served);
    tcase_add_test(tc, test_client_that_never_reads_is_dropped_after_the_send_timeout);
    tcase_add_test(tc, test_eight_concurrent_downloads_of_the_big_file_are_byte_exact);
    tcase_add_test(tc, test_connections_beyond_max_conns_get_503);
    tcase_add_test(tc, test_access_log_has_one_line_per_request);
    tcase_add_test(tc, test_sigterm_finishes_responses_in_flight_closes_idle_ones_and_exits_zero);
    tcase_add_test(tc, test_a_second_signal_drops_responses_still_in_flight);
    tcase_add_test(tc, test_sigint_on_an_idle_server_exits_zero);
    suite_add_tcase(s, tc);
    int failed = run_suite(s);
    /* The shared server answered most requests: it must also exit cleanly
     * (under ASan a leak or an error makes this nonzero). */
    if (!WIFEXITED(shared_status) || WEXITSTATUS(shared_status) != 0) {
        fprintf(stderr, "file_server (shared): exit status %#x\n", shared_status);
        failed = 1;
    }
    return failed;
}
