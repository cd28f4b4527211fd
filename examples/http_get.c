/* http_get: the seed's aiohttp example in C.  Fetches every URL at once
 * (one task each, gathered) and prints, in argument order, each URL's
 * status and the first 100 bytes of its body:
 *
 *     async def fetch(session, url):
 *         async with session.get(url) as response:
 *             print(f"{url} -> {response.status}")
 *             print((await response.text())[:100])
 *     await asyncio.gather(*(fetch(session, u) for u in urls))
 *
 *     http_get [--timeout-ms N] URL...        URL = http://host[:port][/path]
 *
 * Plain HTTP/1.1 only.  Names are resolved off the loop (uco_dial_tcp runs
 * getaddrinfo on the offload pool).  Bodies framed by Content-Length, by
 * chunked transfer coding or by the end of the connection are all read to
 * their end, so a truncated or malformed response is reported, not
 * printed.  Each request has a deadline (--timeout-ms, default 10000)
 * covering connect, send and receive.  Failures go to stderr, one line per
 * URL; the exit status is 0 when every URL was fetched, 1 otherwise (2 for
 * a bad command line).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uco.h>

#define PREVIEW 100              /* body bytes printed */
#define LINE_MAX_BYTES (16 * 1024) /* one status, header or chunk-size line */
#define HEAD_MAX (64 * 1024)     /* all response header lines together */
#define FIELDS_MAX 200
#define RBUF (32 * 1024)         /* receive buffer (holds at least one line) */

/* One URL's fetch: its parsed parts going in, its outcome coming out. */
struct fetch {
    const char *url;
    uint64_t timeout_ns;
    char host[256];       /* without brackets */
    uint16_t port;
    const char *path;     /* into url: "/..." up to any '#', or "" for "/" */
    size_t path_len;
    int status;
    char preview[PREVIEW];
    size_t preview_len;
    char err[256];        /* set on failure */
};

__attribute__((format(printf, 2, 3))) static int fail(struct fetch *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->err, sizeof(f->err), fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- the URL ---- */

static int parse_url(struct fetch *f)
{
    const char *u = f->url;
    if (strncasecmp(u, "https://", 8) == 0)
        return fail(f, "https is not supported (plain http:// only)");
    if (strncasecmp(u, "http://", 7) != 0)
        return fail(f, "bad URL: expected http://host[:port][/path]");
    for (const unsigned char *p = (const unsigned char *)u; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return fail(f, "bad URL: spaces or control characters");
    const char *a = u + 7, *ae = a + strcspn(a, "/?#");
    const char *hs = a, *he, *port = NULL;
    if (memchr(a, '@', (size_t)(ae - a)))
        return fail(f, "bad URL: user names in URLs are not supported");
    if (*a == '[') { /* an IPv6 literal: [::1]:8080 */
        const char *rb = memchr(a, ']', (size_t)(ae - a));
        if (!rb || (rb + 1 != ae && rb[1] != ':'))
            return fail(f, "bad URL: bad IPv6 address");
        hs = a + 1;
        he = rb;
        if (rb + 1 != ae)
            port = rb + 2;
    } else {
        he = memchr(a, ':', (size_t)(ae - a));
        if (he)
            port = he + 1;
        else
            he = ae;
        if (port && memchr(port, ':', (size_t)(ae - port)))
            return fail(f, "bad URL: IPv6 addresses go in brackets");
    }
    if (he == hs)
        return fail(f, "bad URL: no host");
    if ((size_t)(he - hs) >= sizeof(f->host))
        return fail(f, "bad URL: host name too long");
    memcpy(f->host, hs, (size_t)(he - hs));
    f->host[he - hs] = '\0';
    f->port = 80;
    if (port && port < ae) { /* "host:" alone means the default port */
        unsigned long v = 0;
        for (const char *p = port; p < ae; p++) {
            if (*p < '0' || *p > '9' || (v = v * 10 + (unsigned long)(*p - '0')) > 65535)
                return fail(f, "bad URL: bad port");
        }
        if (v == 0)
            return fail(f, "bad URL: bad port");
        f->port = (uint16_t)v;
    }
    f->path = ae;
    f->path_len = strcspn(ae, "#"); /* the fragment stays with the client */
    return 0;
}

/* ---- reading the response ---- */

/* A receive buffer over the socket: data[start, end) not yet consumed. */
struct reader {
    int fd;
    size_t start, end;
    char data[RBUF];
};

/* Receives more bytes; 0 at end of stream, -errno on error. */
static ssize_t fill(struct reader *r)
{
    if (r->start == r->end) {
        r->start = r->end = 0;
    } else if (r->end == sizeof(r->data) && r->start > 0) {
        memmove(r->data, r->data + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end == sizeof(r->data))
        return -ENOBUFS;
    ssize_t n = uco_recv(r->fd, r->data + r->end, sizeof(r->data) - r->end, 0);
    if (n > 0)
        r->end += (size_t)n;
    return n;
}

static int io_error(struct fetch *f, ssize_t n, const char *what)
{
    if (n == 0)
        return fail(f, "malformed response: connection closed %s", what);
    if (n == -ETIMEDOUT)
        return fail(f, "timed out after %" PRIu64 " ms", f->timeout_ns / 1000000);
    return fail(f, "receive failed: %s", strerror((int)-n));
}

/* The next line, without its CRLF (or bare LF), NUL-terminated in place.
 * Lines longer than LINE_MAX_BYTES are a malformed response. */
static int read_line(struct fetch *f, struct reader *r, char **line, size_t *len)
{
    size_t scanned = 0;
    for (;;) {
        char *b = r->data + r->start;
        char *nl = memchr(b + scanned, '\n', r->end - r->start - scanned);
        if (nl) {
            size_t n = (size_t)(nl - b);
            r->start += n + 1;
            if (n > 0 && b[n - 1] == '\r')
                n--;
            b[n] = '\0';
            *line = b;
            *len = n;
            return 0;
        }
        scanned = r->end - r->start;
        if (scanned > LINE_MAX_BYTES)
            return fail(f, "malformed response: header line too long");
        ssize_t got = fill(r);
        if (got <= 0)
            return io_error(f, got, "in the middle of the headers");
    }
}

static void keep_preview(struct fetch *f, const char *p, size_t n)
{
    size_t room = PREVIEW - f->preview_len;
    if (n > room)
        n = room;
    memcpy(f->preview + f->preview_len, p, n);
    f->preview_len += n;
}

/* Consumes n body bytes (n < 0: until the end of the stream). */
static int read_body(struct fetch *f, struct reader *r, int64_t n)
{
    int64_t want = n, got = 0;
    for (;;) {
        size_t avail = r->end - r->start;
        if (n >= 0 && (int64_t)avail > n - got)
            avail = (size_t)(n - got);
        keep_preview(f, r->data + r->start, avail);
        r->start += avail;
        got += (int64_t)avail;
        if (n >= 0 && got == want)
            return 0;
        ssize_t m = fill(r);
        if (m == 0 && n < 0)
            return 0; /* the end of the connection ends this body */
        if (m == 0) {
            return fail(f, "malformed response: connection closed after %" PRId64
                           " of %" PRId64 " body bytes", got, want);
        }
        if (m < 0)
            return io_error(f, m, "");
    }
}

/* chunked: hex size [; extensions] CRLF, data CRLF ... 0 CRLF, trailers, CRLF */
static int read_chunked(struct fetch *f, struct reader *r)
{
    char *line;
    size_t len;
    for (;;) {
        if (read_line(f, r, &line, &len) < 0)
            return -1;
        uint64_t size = 0;
        size_t i = 0;
        for (; i < len; i++) {
            int d = line[i] >= '0' && line[i] <= '9' ? line[i] - '0'
                  : (line[i] | 0x20) >= 'a' && (line[i] | 0x20) <= 'f' ? (line[i] | 0x20) - 'a' + 10
                  : -1;
            if (d < 0)
                break;
            if (size >> 59) /* 16^15: more than any body we will see */
                return fail(f, "malformed response: chunk size too large");
            size = size * 16 + (uint64_t)d;
        }
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == 0 || (i < len && line[i] != ';'))
            return fail(f, "malformed response: bad chunk size line");
        if (size == 0)
            break;
        if (read_body(f, r, (int64_t)size) < 0)
            return -1;
        if (read_line(f, r, &line, &len) < 0)
            return -1;
        if (len != 0)
            return fail(f, "malformed response: chunk not followed by CRLF");
    }
    for (size_t total = 0;;) { /* trailer fields, ignored */
        if (read_line(f, r, &line, &len) < 0)
            return -1;
        if (len == 0)
            return 0;
        if ((total += len) > HEAD_MAX)
            return fail(f, "malformed response: trailers too long");
    }
}

/* Whether a comma-separated list ends with the token "chunked". */
static bool last_coding_is_chunked(const char *v)
{
    const char *c = strrchr(v, ',');
    c = c ? c + 1 : v;
    while (*c == ' ' || *c == '\t')
        c++;
    size_t n = strlen(c);
    while (n && (c[n - 1] == ' ' || c[n - 1] == '\t'))
        n--;
    return n == 7 && strncasecmp(c, "chunked", 7) == 0;
}

/* Reads one response: status line, fields, body. */
static int read_response(struct fetch *f, struct reader *r)
{
    char *line;
    size_t len;
    int64_t length = -1;
    bool chunked = false;
    for (;;) { /* interim 1xx responses (100 Continue, 103 Early Hints) come first */
        if (read_line(f, r, &line, &len) < 0)
            return -1;
        /* "HTTP/1.x SSS reason" (the reason may be empty) */
        if (len < 12 || strncmp(line, "HTTP/1.", 7) != 0 || line[7] < '0' || line[7] > '9' ||
            line[8] != ' ' || line[9] < '1' || line[9] > '5' || line[10] < '0' ||
            line[10] > '9' || line[11] < '0' || line[11] > '9' || (len > 12 && line[12] != ' '))
            return fail(f, "malformed response: bad status line");
        f->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
        length = -1;
        chunked = false;
        size_t total = 0;
        for (int fields = 0;; fields++) {
            if (read_line(f, r, &line, &len) < 0)
                return -1;
            if (len == 0)
                break;
            if ((total += len) > HEAD_MAX || fields == FIELDS_MAX)
                return fail(f, "malformed response: headers too long");
            char *colon = strchr(line, ':');
            if (!colon || colon == line || line[0] == ' ' || line[0] == '\t')
                return fail(f, "malformed response: bad header line");
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            if (strcasecmp(line, "Content-Length") == 0) {
                char *end;
                errno = 0;
                long long n = strtoll(v, &end, 10);
                while (*end == ' ' || *end == '\t')
                    end++;
                if (errno || end == v || *end || n < 0 || *v == '-' || *v == '+' ||
                    (length >= 0 && n != length))
                    return fail(f, "malformed response: bad Content-Length");
                length = n;
            } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
                chunked = last_coding_is_chunked(v);
                if (!chunked)
                    length = -1; /* another coding last: the body runs to the close */
            }
        }
        if (f->status == 101)
            return fail(f, "malformed response: unexpected 101 Switching Protocols");
        if (f->status >= 200)
            break;
    }
    if (f->status == 204 || f->status == 304)
        return 0; /* never a body */
    if (chunked)
        return read_chunked(f, r);
    return read_body(f, r, length); /* Content-Length, or up to the close */
}

/* ---- one fetch ---- */

static int do_fetch(struct fetch *f, struct reader *r)
{
    int fd = uco_dial_tcp(f->host, f->port);
    if (fd < 0) {
        switch (-fd) {
        case ECONNREFUSED: return fail(f, "connection refused");
        case ETIMEDOUT: return fail(f, "timed out after %" PRIu64 " ms", f->timeout_ns / 1000000);
        case ENOENT: return fail(f, "cannot resolve host %s", f->host);
        default: return fail(f, "cannot connect: %s", strerror(-fd));
        }
    }
    r->fd = fd;
    r->start = r->end = 0;

    /* Host carries the port unless it is the default; IPv6 in brackets.
     * "Connection: close" lets a server without any length framing end
     * the body by closing. */
    char req[RBUF];
    bool v6 = strchr(f->host, ':') != NULL;
    char port[8] = "";
    if (f->port != 80)
        snprintf(port, sizeof(port), ":%u", (unsigned)f->port);
    int n = snprintf(req, sizeof(req),
                     "GET %s%.*s HTTP/1.1\r\nHost: %s%s%s%s\r\nUser-Agent: uco-http_get\r\n"
                     "Accept: */*\r\nConnection: close\r\n\r\n",
                     f->path_len && f->path[0] == '/' ? "" : "/", (int)f->path_len, f->path,
                     v6 ? "[" : "", f->host, v6 ? "]" : "", port);
    int ret;
    if (n < 0 || (size_t)n >= sizeof(req)) {
        ret = fail(f, "bad URL: too long");
    } else {
        ssize_t s = uco_send_all(fd, req, (size_t)n, NULL);
        if (s == -ETIMEDOUT)
            ret = fail(f, "timed out after %" PRIu64 " ms", f->timeout_ns / 1000000);
        else if (s < 0)
            ret = fail(f, "send failed: %s", strerror((int)-s));
        else
            ret = read_response(f, r);
    }
    uco_close(fd);
    return ret;
}

static intptr_t fetch_task(void *arg)
{
    struct fetch *f = arg;
    if (parse_url(f) < 0)
        return -1;
    struct reader *r = malloc(sizeof(*r));
    if (!r)
        return fail(f, "out of memory");
    /* One deadline for the whole request: connect, send, every receive. */
    uint64_t saved;
    uco_timeout_begin(f->timeout_ns, &saved);
    int ret = do_fetch(f, r);
    uco_timeout_end(saved);
    free(r);
    return ret;
}

struct job {
    struct fetch *fetches;
    size_t n;
};

static intptr_t main_task(void *arg)
{
    struct job *j = arg;
    uco_task **tasks = calloc(j->n, sizeof(*tasks));
    if (!tasks)
        return -ENOMEM;
    for (size_t i = 0; i < j->n; i++) {
        tasks[i] = uco_spawn(fetch_task, &j->fetches[i]);
        if (!tasks[i]) {
            fail(&j->fetches[i], "out of memory");
            break; /* gather what was spawned */
        }
    }
    size_t spawned = 0;
    while (spawned < j->n && tasks[spawned])
        spawned++;
    uco_gather(tasks, spawned, NULL);
    free(tasks);

    /* Results in argument order, whatever order they finished in. */
    int failed = 0;
    for (size_t i = 0; i < j->n; i++) {
        struct fetch *f = &j->fetches[i];
        if (f->err[0]) {
            fflush(stdout); /* keep stdout and stderr in argument order on a terminal */
            fprintf(stderr, "http_get: %s: %s\n", f->url, f->err);
            failed = 1;
            continue;
        }
        printf("%s -> %d\n", f->url, f->status);
        fwrite(f->preview, 1, f->preview_len, stdout);
        putchar('\n');
    }
    fflush(stdout);
    return failed;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: http_get [--timeout-ms N] http://host[:port][/path]...\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"timeout-ms", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    uint64_t timeout_ms = 10000;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 't') {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || v == 0 || v > 86400000) {
                fprintf(stderr, "http_get: bad --timeout-ms: %s\n", optarg);
                return 2;
            }
            timeout_ms = v;
        } else if (o == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (optind == argc) {
        usage(stderr);
        return 2;
    }
    struct job j = {.n = (size_t)(argc - optind)};
    j.fetches = calloc(j.n, sizeof(*j.fetches));
    if (!j.fetches) {
        fprintf(stderr, "http_get: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < j.n; i++) {
        j.fetches[i].url = argv[optind + (int)i];
        j.fetches[i].timeout_ns = UCO_MSEC(timeout_ms);
    }
    intptr_t ret = uco_run(main_task, &j, NULL);
    free(j.fetches);
    if (ret < 0) {
        fprintf(stderr, "http_get: %s\n", strerror((int)-ret));
        return 1;
    }
    return ret ? 1 : 0;
}
