/* file_server: a static HTTP/1.1 file server on uco, one coroutine per
 * connection.  A sample to copy: it is meant to be correct, fast and safe
 * to put in front of untrusted clients, not a demo.
 *
 *     file_server --root DIR [--host H] [--port P] [--header-timeout-ms N]
 *                 [--send-timeout-ms N] [--keepalive-timeout-ms N]
 *                 [--max-conns N] [--access-log]
 *
 * Prints "listening on HOST:PORT" once (P 0 picks a free port) and serves
 * GET and HEAD: keep-alive and pipelining, Content-Type by extension,
 * Last-Modified / If-Modified-Since, one byte range per request,
 * index.html for directories.  SIGINT or SIGTERM stops it gracefully (a
 * second one drops whatever is left).
 *
 * How it is built, and why:
 * - Limits: a request line over 8 KiB is 414, header fields over 16 KiB or
 *   100 fields are 431.  A connection's request buffer is fixed at their
 *   sum, so no client can make us grow it.  Parsing is strict (single
 *   spaces, no obs-fold, no NUL or stray control bytes, one Host,
 *   Content-Length and Transfer-Encoding never together): the usual request
 *   smuggling tricks get a 400 and a closed connection.
 * - Jail: the root is an O_PATH directory fd and every file is opened with
 *   openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) relative to it, so the
 *   kernel, not string checks, keeps symlinks and ".." inside the root.  The
 *   path is still percent-decoded exactly once and checked first: a ".."
 *   segment (however encoded) or a NUL is refused with 400 before any
 *   system call sees it.
 * - Streaming: a body that fits behind its headers in one 128 KiB pooled
 *   buffer is read into it and leaves with them in one send.  A bigger one
 *   never passes through userspace: it is spliced file -> pipe -> socket
 *   (uco_splice, one pipe per connection, made on first use and enlarged
 *   to 1 MiB where allowed), so a download costs a pipe, not a copy.
 * - Timeouts (uco_timeout_begin/end): the whole request head must arrive
 *   within --header-timeout-ms (slowloris), an idle keep-alive connection
 *   is closed after --keepalive-timeout-ms, and a send that makes no
 *   progress for --send-timeout-ms drops the client.  Each is a deadline on
 *   this connection's coroutine only: everyone else keeps being served.
 * - Shutdown: signals arrive through a signalfd read on the ring.  The
 *   server stops accepting, cancels connections waiting for a request, lets
 *   responses in flight finish (with "Connection: close"), waits for the
 *   wait group to reach zero and exits 0.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uco.h>

/* ---- limits ---- */

#define REQ_LINE_MAX (8 * 1024)  /* request line, its line end included: 414 past it */
#define HEADERS_MAX (16 * 1024)  /* header fields after the request line: 431 past it */
#define HEADER_COUNT_MAX 100     /* 431 past it */
#define REQ_BUF (REQ_LINE_MAX + HEADERS_MAX) /* a valid head always fits */
#define LOCATION_MAX 2048        /* an encoded redirect target longer than this: 414 */
#define IO_BUF (128 * 1024)      /* one file chunk: one read, one send */
#define PIPE_WANT (1024 * 1024)  /* splice pipe asked for: a 1 MiB file in one splice */
#define IO_POOL_MAX 64           /* idle chunk buffers kept for reuse */
#define LINGER_MS 2000           /* see linger_close() */
#define LINGER_BYTES (256 * 1024)
#define ACCEPT_BACKOFF_MS 100    /* after EMFILE and friends */

/* ---- server and connection state (one thread: no locks) ---- */

struct conn;

struct server {
    int rootfd;               /* O_PATH | O_DIRECTORY: the jail */
    int lfd, sigfd;
    const char *host;
    uint64_t header_ns, send_ns, keepalive_ns;
    unsigned max_conns, nconns;
    bool access_log;
    bool stopping;            /* a signal came: no new requests */
    uco_task *main_task;      /* parked in accept: cancelled to stop accepting */
    uco_wg *wg;               /* one count per live connection */
    struct conn *conns;       /* every live connection, for shutdown to walk */
    char *pool[IO_POOL_MAX];  /* idle file chunk buffers */
    unsigned pool_n;
};

struct conn {
    struct server *srv;
    uco_task *task;
    struct conn *prev, *next;
    int fd;
    bool reading;    /* parked waiting for request bytes: shutdown cancels it */
    bool cancelled;  /* shutdown cancelled it (see recv_more) */
    int pipe[2];     /* file -> pipe -> socket, made for the first big body; -1 */
    size_t pipe_cap;
    size_t len;      /* bytes in buf: the current request head, then pipelined ones */
    char buf[REQ_BUF];
};

/* ---- small helpers ---- */

/* "Sun, 06 Nov 1994 08:49:37 GMT" (IMF-fixdate).  The program never calls
 * setlocale(), so day and month names are the C locale's English ones, as
 * HTTP requires. */
static void http_date(int64_t t, char out[40])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* The Date header changes once a second: format it once a second. */
static const char *date_now(void)
{
    static time_t cached = -1;
    static char buf[40];
    time_t now = time(NULL);
    if (now != cached) {
        http_date(now, buf);
        cached = now;
    }
    return buf;
}

/* Last-Modified of the file served last: a server serving the same few
 * files formats each date once, not once per response. */
static const char *last_modified(int64_t mtime)
{
    static int64_t cached = -1;
    static char buf[40];
    if (mtime != cached) {
        http_date(mtime, buf);
        cached = mtime;
    }
    return buf;
}

/* The three date formats HTTP recipients must accept.  -1 if none fits. */
static int64_t parse_http_date(const char *v)
{
    static const char *const formats[] = {
        "%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate */
        "%A, %d-%b-%y %H:%M:%S GMT", /* obsolete RFC 850 */
        "%a %b %e %H:%M:%S %Y",      /* asctime() */
    };
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        struct tm tm = {0};
        const char *end = strptime(v, formats[i], &tm);
        if (end && *end == '\0')
            return (int64_t)timegm(&tm);
    }
    return -1;
}

static const char *content_type(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},   {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"}, {"json", "application/json"},
        {"txt", "text/plain; charset=utf-8"}, {"png", "image/png"},
        {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"}, {"gif", "image/gif"},
        {"svg", "image/svg+xml"}, {"ico", "image/x-icon"}, {"pdf", "application/pdf"},
        {"wasm", "application/wasm"},
    };
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash + 1 : path, '.');
    if (dot)
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Internal Server Error";
    }
}

/* Up to 18 decimal digits (no sign, no space): fits in int64_t.  Returns
 * the number of digits read, 0 if none or too many. */
static int parse_digits(const char *p, int64_t *out)
{
    int n = 0;
    int64_t v = 0;
    *out = 0;
    while (p[n] >= '0' && p[n] <= '9') {
        if (n == 18)
            return 0;
        v = v * 10 + (p[n] - '0');
        n++;
    }
    *out = v;
    return n;
}

/* RFC 9110 token characters (methods, header names). */
static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* A response head is built with snprintf appends; an overflow marks the
 * buffer as full, which the caller turns into a 500 (never a truncated
 * head on the wire). */
struct out {
    char *p;
    size_t len, cap;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    if (o->len >= o->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    o->len = n < 0 || (size_t)n >= o->cap - o->len ? o->cap : o->len + (size_t)n;
}

/* put(o, "%s", str) and put(o, "%" PRIu64, v) without the printf
 * machinery, which was a twentieth of the server's CPU time at 1,000
 * connections: every response head is made of these. */
static void put_str(struct out *o, const char *str)
{
    size_t n = strlen(str);
    if (o->len >= o->cap || n >= o->cap - o->len) {
        o->len = o->cap;
        return;
    }
    memcpy(o->p + o->len, str, n + 1);
    o->len += n;
}

static void put_u64(struct out *o, uint64_t v)
{
    char digits[24], *d = digits + sizeof(digits);
    *--d = '\0';
    do
        *--d = (char)('0' + v % 10);
    while (v /= 10);
    put_str(o, d);
}

/* ---- file chunk buffers: taken for one response body, then pooled ---- */

static char *iobuf_get(struct server *s)
{
    return s->pool_n ? s->pool[--s->pool_n] : malloc(IO_BUF);
}

static void iobuf_put(struct server *s, char *b)
{
    if (s->pool_n < IO_POOL_MAX)
        s->pool[s->pool_n++] = b;
    else
        free(b);
}

/* ---- reading a request head ---- */

/* Receives more request bytes into c->buf.  While parked here the
 * connection counts as idle: a graceful shutdown cancels it.  uco_cancel
 * never loses a completed receive: if bytes arrived anyway they are
 * returned and the cancellation stays pending for our next await.  Those
 * bytes may be a whole request, which deserves an answer, so the pending
 * cancellation is taken here (uco_yield delivers it) instead of killing
 * the response later.  read_head then refuses to wait for more. */
static ssize_t recv_more(struct conn *c)
{
    c->reading = true;
    ssize_t n = uco_recv(c->fd, c->buf + c->len, REQ_BUF - c->len, 0);
    c->reading = false;
    if (n > 0 && c->cancelled)
        uco_yield(); /* returns -ECANCELED: the cancellation is consumed */
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

/* Where head_scan resumes: bytes are scanned once however they trickle. */
struct scan {
    size_t line_end; /* just past the request line's LF; 0 = not seen yet */
    size_t pos;      /* start of the first header line not yet complete */
};

/* Looks for a complete head (request line, fields, empty line) in c->buf.
 * Returns its length, 0 when more bytes are needed, or -status (414, 431).
 * Lines may end in CRLF or a bare LF (RFC 9112 allows accepting both). */
static int head_scan(struct conn *c, struct scan *sc)
{
    if (!sc->line_end) {
        /* Empty lines before a request are allowed (some clients send a
         * CRLF after a body): drop them. */
        size_t skip = 0;
        while (skip < c->len && (c->buf[skip] == '\r' || c->buf[skip] == '\n'))
            skip++;
        if (skip) {
            memmove(c->buf, c->buf + skip, c->len - skip);
            c->len -= skip;
        }
        char *nl = memchr(c->buf, '\n', c->len < REQ_LINE_MAX ? c->len : REQ_LINE_MAX);
        if (!nl)
            return c->len >= REQ_LINE_MAX ? -414 : 0;
        sc->line_end = sc->pos = (size_t)(nl - c->buf) + 1;
    }
    while (sc->pos < c->len) {
        char *line = c->buf + sc->pos;
        char *nl = memchr(line, '\n', c->len - sc->pos);
        if (!nl)
            break;
        size_t end = (size_t)(nl - c->buf) + 1;
        if (nl == line || (nl == line + 1 && line[0] == '\r'))
            return end - sc->line_end > HEADERS_MAX ? -431 : (int)end;
        sc->pos = end;
    }
    return c->len - sc->line_end > HEADERS_MAX ? -431 : 0;
}

/* Reads until c->buf starts with a whole request head.  Returns its length;
 * 0 when the connection should simply be closed (peer gone, idle too long,
 * shutting down); or -status for an error to answer before closing.
 * The header timeout runs from the connection's start for its first
 * request and from the first byte of each later one; the wait for that
 * first byte is the keep-alive timeout. */
static int read_head(struct conn *c, bool first)
{
    struct server *s = c->srv;
    struct scan sc = {0};
    uint64_t saved = 0;
    bool scoped = false, received = false;
    int ret;
    for (;;) {
        ret = head_scan(c, &sc);
        if (ret)
            break;
        if (c->len == sizeof(c->buf)) { /* both limits reached exactly */
            ret = -431;
            break;
        }
        if (s->stopping || c->cancelled) /* no new requests once stopping */
            break;
        /* any byte starts the clock, even the empty lines head_scan drops:
         * trickling CRLFs must not keep a connection alive for ever */
        if (!scoped && (first || c->len > 0 || received)) {
            uco_timeout_begin(s->header_ns, &saved);
            scoped = true;
        }
        ssize_t n;
        if (scoped) {
            n = recv_more(c);
        } else {
            uint64_t idle;
            uco_timeout_begin(s->keepalive_ns, &idle);
            n = recv_more(c);
            uco_timeout_end(idle);
        }
        if (n == -ETIMEDOUT && scoped && c->len > 0) {
            ret = -408; /* part of a request came, then nothing: say why we hang up */
            break;
        }
        if (n <= 0) /* end of stream, reset, idle timeout, cancelled */
            break;
        received = true;
    }
    if (scoped)
        uco_timeout_end(saved);
    return ret;
}

/* ---- parsing a request head ---- */

enum method { M_GET, M_HEAD, M_NOT_ALLOWED, M_UNKNOWN };

struct request {
    const char *method, *target; /* NUL-terminated in place in c->buf */
    enum method m;
    int minor;                   /* HTTP/1.minor */
    int hosts;
    bool close, keep_alive;      /* Connection tokens */
    bool body;                   /* Content-Length > 0 or Transfer-Encoding */
    bool inm;                    /* If-None-Match present */
    const char *ims, *range, *if_range;
    int nims, nranges;
};

/* Field values: visible ASCII, space, tab and obs-text; no other control. */
static bool value_ok(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    return true;
}

/* Whether a comma-separated list (Connection) holds token tok. */
static bool has_token(const char *list, const char *tok)
{
    size_t n = strlen(tok);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == n && strncasecmp(p, tok, n) == 0)
            return true;
        p = e;
    }
    return false;
}

static enum method classify(const char *m)
{
    static const char *const not_allowed[] = {"POST", "PUT", "DELETE", "PATCH",
                                              "OPTIONS", "TRACE", "CONNECT"};
    if (strcmp(m, "GET") == 0)
        return M_GET;
    if (strcmp(m, "HEAD") == 0)
        return M_HEAD;
    for (size_t i = 0; i < sizeof(not_allowed) / sizeof(not_allowed[0]); i++)
        if (strcmp(m, not_allowed[i]) == 0)
            return M_NOT_ALLOWED;
    return M_UNKNOWN;
}

/* The request line: exactly "METHOD SP target SP HTTP/1.x". */
static int parse_request_line(char *line, struct request *rq)
{
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1 || strchr(sp2 + 1, ' '))
        return 400;
    *sp1 = *sp2 = '\0';
    for (const char *p = line; *p; p++)
        if (!is_tchar((unsigned char)*p))
            return 400;
    for (const unsigned char *p = (unsigned char *)sp1 + 1; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return 400;
    const char *v = sp2 + 1;
    if (strcmp(v, "HTTP/1.1") == 0)
        rq->minor = 1;
    else if (strcmp(v, "HTTP/1.0") == 0)
        rq->minor = 0;
    else if (strlen(v) == 8 && strncmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' &&
             v[6] == '.' && v[7] >= '0' && v[7] <= '9')
        return 505;
    else
        return 400;
    rq->method = line;
    rq->target = sp1 + 1;
    rq->m = classify(line);
    return 0;
}

/* Parses the head b[0..len) in place (line ends become NULs).  Returns 0 or
 * the status to answer. */
static int parse_request(char *b, size_t len, struct request *rq)
{
    *rq = (struct request){.method = "-", .target = "-", .minor = 1};
    if (memchr(b, '\0', len))
        return 400;
    char *end = b + len, *line = b;
    int64_t cl = -1;
    bool te = false;
    int fields = 0;
    for (bool first = true;; first = false) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        *nl = '\0';
        if (nl > line && nl[-1] == '\r')
            nl[-1] = '\0';
        if (strchr(line, '\r')) /* a CR anywhere but before LF */
            return 400;
        if (first) {
            int st = parse_request_line(line, rq);
            if (st)
                return st;
        } else if (*line == '\0') {
            break; /* the empty line: end of the head */
        } else {
            if (++fields > HEADER_COUNT_MAX)
                return 431;
            char *colon = strchr(line, ':');
            if (!colon || colon == line) /* also rejects obs-fold (leading space) */
                return 400;
            *colon = '\0';
            for (const char *p = line; *p; p++)
                if (!is_tchar((unsigned char)*p)) /* "Name :" is a smuggling trick */
                    return 400;
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            char *ve = v + strlen(v);
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                *--ve = '\0';
            if (!value_ok(v))
                return 400;
            if (strcasecmp(line, "Host") == 0) {
                rq->hosts++;
            } else if (strcasecmp(line, "Connection") == 0) {
                rq->close |= has_token(v, "close");
                rq->keep_alive |= has_token(v, "keep-alive");
            } else if (strcasecmp(line, "Content-Length") == 0) {
                int64_t n;
                if (!*v || parse_digits(v, &n) != (int)strlen(v) || (cl >= 0 && n != cl))
                    return 400;
                cl = n;
            } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
                te = true;
            } else if (strcasecmp(line, "If-Modified-Since") == 0) {
                rq->ims = v;
                rq->nims++;
            } else if (strcasecmp(line, "If-None-Match") == 0) {
                rq->inm = true;
            } else if (strcasecmp(line, "Range") == 0) {
                rq->range = v;
                rq->nranges++;
            } else if (strcasecmp(line, "If-Range") == 0) {
                rq->if_range = v;
            }
        }
        line = nl + 1;
    }
    /* Both framings at once is how requests get smuggled past proxies. */
    if (te && cl >= 0)
        return 400;
    if (rq->hosts > 1 || (rq->minor == 1 && rq->hosts == 0))
        return 400;
    rq->body = te || cl > 0;
    return 0;
}

/* ---- request-target to a path under the root ---- */

/* Percent-decodes the path of target exactly once and normalises it into
 * rel, relative to the root ("." for the root itself): empty and "."
 * segments are dropped, ".." refuses the request (encoded or not: decoding
 * comes first, so "%2e%2e" and "..%2f" are caught too), as do NUL and
 * other control bytes.  *slash tells whether the path names a directory
 * ("/", "/docs/", "/docs/."), *query points at "?..." in target or at "".
 * Returns 0 or an HTTP status. */
static int target_to_path(const char *target, char *rel, size_t relsz, bool *slash,
                          const char **query)
{
    const char *p = target;
    bool absolute = false;
    /* absolute-form ("http://host/path", what proxies send): keep the path */
    if (strncasecmp(p, "http://", 7) == 0 || strncasecmp(p, "https://", 8) == 0) {
        p = strstr(p, "//") + 2;
        p += strcspn(p, "/?");
        absolute = true;
    }
    if (*p != '/' && !absolute)
        return 400; /* not origin-form: "*", "../x", "x" */
    if (strchr(p, '#')) /* clients never send fragments */
        return 400;
    size_t plen = strcspn(p, "?");
    *query = p + plen;

    size_t n = 0, seg = 0; /* rel's length; start of the segment being written */
    bool in_seg = false;
    *slash = true;
    for (size_t i = 0; i <= plen; i++) {
        /* one decoded byte; the end of the path acts as a last separator */
        unsigned char ch = i < plen ? (unsigned char)p[i] : '/';
        if (ch == '%') {
            int hi = i + 2 < plen ? hexval((unsigned char)p[i + 1]) : -1;
            int lo = hi >= 0 ? hexval((unsigned char)p[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return 400;
            ch = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (ch < 0x20 || ch == 0x7f) /* %00, %0a ... */
            return 400;
        if (ch != '/') {
            if (!in_seg) {
                if (n > 0)
                    rel[n++] = '/';
                seg = n;
                in_seg = true;
            }
            if (n + 2 >= relsz) /* room for this byte, a separator and the NUL */
                return 414;
            rel[n++] = (char)ch;
            *slash = false;
            continue;
        }
        if (in_seg) { /* a segment ends ("%2f" ends one too, once decoded) */
            if (n - seg == 2 && rel[seg] == '.' && rel[seg + 1] == '.')
                return 400;
            if (n - seg == 1 && rel[seg] == '.') {
                n = seg ? seg - 1 : 0; /* drop "." with its separator */
                *slash = true;         /* "/docs/." is the directory */
            }
            in_seg = false;
        }
        if (i < plen)
            *slash = true;
    }
    if (n == 0)
        rel[n++] = '.';
    rel[n] = '\0';
    return 0;
}

/* Percent-encodes rel for a Location header: the redirect is built from the
 * normalised path, never echoed from the request, so "//evil.example"
 * cannot become an off-site redirect. */
static bool encode_location(const char *rel, const char *query, char *out, size_t cap)
{
    static const char keep[] = "-._~!$&'()*+,;=:@/";
    size_t n = 0;
    out[n++] = '/';
    if (strcmp(rel, ".") != 0) {
        for (const unsigned char *p = (const unsigned char *)rel; *p; p++) {
            if (n + 4 >= cap)
                return false;
            if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                (*p >= '0' && *p <= '9') || strchr(keep, *p))
                out[n++] = (char)*p;
            else
                n += (size_t)snprintf(out + n, cap - n, "%%%02X", *p);
        }
        out[n++] = '/';
    }
    size_t q = strlen(query);
    if (n + q + 1 > cap)
        return false;
    memcpy(out + n, query, q + 1);
    return true;
}

/* ---- sending ---- */

/* Sends all of buf; each send that makes no progress for --send-timeout-ms
 * fails with -ETIMEDOUT (a deadline per send, not per response: a slow but
 * live client downloading a big file is fine, a stalled one is dropped). */
static int send_timed(struct conn *c, const void *buf, size_t len, int flags)
{
    size_t off = 0;
    while (off < len) {
        uint64_t saved;
        uco_timeout_begin(c->srv->send_ns, &saved);
        ssize_t n = uco_send(c->fd, (const char *)buf + off, len - off, flags);
        uco_timeout_end(saved);
        if (n <= 0)
            return n == 0 ? -EIO : (int)n;
        off += (size_t)n;
    }
    return 0;
}

/* What a response head says. */
struct reply {
    int status;
    bool keep;          /* keep the connection */
    int minor;          /* HTTP/1.0 clients need keep-alive said explicitly */
    const char *type;   /* Content-Type, or NULL */
    int64_t length;     /* Content-Length, or -1 (304) */
    int64_t mtime;      /* Last-Modified, or -1 */
    const char *extra;  /* more header lines, each ending in CRLF, or NULL */
};

static void format_head(struct out *o, const struct reply *r)
{
    put_str(o, "HTTP/1.1 ");
    put_u64(o, (uint64_t)r->status);
    put_str(o, " ");
    put_str(o, reason(r->status));
    put_str(o, "\r\nServer: uco-file_server\r\nDate: ");
    put_str(o, date_now());
    put_str(o, "\r\n");
    if (r->type) {
        put_str(o, "Content-Type: ");
        put_str(o, r->type);
        put_str(o, "\r\nX-Content-Type-Options: nosniff\r\n");
    }
    if (r->length >= 0) {
        put_str(o, "Content-Length: ");
        put_u64(o, (uint64_t)r->length);
        put_str(o, "\r\n");
    }
    if (r->mtime >= 0) {
        put_str(o, "Last-Modified: ");
        put_str(o, last_modified(r->mtime));
        put_str(o, "\r\nAccept-Ranges: bytes\r\n");
    }
    if (r->extra)
        put_str(o, r->extra);
    if (!r->keep)
        put_str(o, "Connection: close\r\n");
    else if (r->minor == 0)
        put_str(o, "Connection: keep-alive\r\n");
    put_str(o, "\r\n");
}

/* One request's outcome, for the caller and the access log. */
struct result {
    int status;
    uint64_t bytes; /* body bytes sent */
    bool keep;      /* false: close (after lingering) */
    bool abort;     /* close at once: the response could not be completed */
};

/* A response whose body is its status line in words ("404 Not Found"). */
static void send_simple(struct conn *c, const struct request *rq, struct result *res,
                        const char *extra)
{
    char body[64], head[LOCATION_MAX + 512];
    int blen = snprintf(body, sizeof(body), "%d %s\n", res->status, reason(res->status));
    struct reply r = {.status = res->status, .keep = res->keep, .minor = rq->minor,
                      .type = "text/plain; charset=utf-8", .length = blen, .mtime = -1,
                      .extra = extra};
    struct out o = {head, 0, sizeof(head)};
    format_head(&o, &r);
    if (o.len >= o.cap) { /* cannot happen with the bounds above; never send half a head */
        res->abort = true;
        return;
    }
    bool body_out = rq->m != M_HEAD;
    if (body_out) {
        put(&o, "%s", body);
        if (o.len >= o.cap) {
            res->abort = true;
            return;
        }
    }
    if (send_timed(c, head, o.len, 0) < 0)
        res->abort = true;
    else
        res->bytes = body_out ? (uint64_t)blen : 0;
}

/* Range: "bytes=first-last", "bytes=first-" or "bytes=-suffix".  Returns 1
 * with *off and *len set, -1 when unsatisfiable (416), 0 to ignore the header
 * (invalid, other unit, or several ranges: answered with the whole file,
 * which RFC 9110 allows). */
static int parse_range(const char *v, int64_t size, int64_t *off, int64_t *len)
{
    if (strncasecmp(v, "bytes=", 6) != 0 || strchr(v, ','))
        return 0;
    const char *p = v + 6;
    int64_t a, b;
    int n;
    if (*p == '-') { /* the last b bytes */
        if (!(n = parse_digits(p + 1, &b)) || p[1 + n])
            return 0;
        if (b == 0 || size == 0)
            return -1;
        *off = b < size ? size - b : 0;
        *len = size - *off;
        return 1;
    }
    if (!(n = parse_digits(p, &a)) || p[n] != '-')
        return 0;
    p += n + 1;
    int64_t last = size - 1;
    if (*p) {
        if (!(n = parse_digits(p, &b)) || p[n] || b < a)
            return 0;
        if (b < last)
            last = b;
    }
    if (a >= size)
        return -1;
    *off = a;
    *len = last - a + 1;
    return 1;
}

/* Sends [off, off+len) of fd after the head already in buf[0..used), by
 * uco_read into buf and send.  The file chunk is read right behind the
 * head, so a small file leaves in one send with its headers.  If the file
 * shrinks under us the promised Content-Length cannot be met: the
 * connection is aborted, never padded. */
static void copy_body(struct conn *c, char *buf, size_t used, int fd, int64_t off, int64_t len,
                      struct result *res)
{
    int64_t left = len;
    do {
        while (left > 0 && used < IO_BUF) {
            size_t want = (size_t)left < IO_BUF - used ? (size_t)left : IO_BUF - used;
            ssize_t n = uco_read(fd, buf + used, want, off);
            if (n <= 0) {
                res->abort = true;
                return;
            }
            used += (size_t)n;
            off += n;
            left -= n;
            res->bytes += (uint64_t)n;
        }
        if (send_timed(c, buf, used, 0) < 0) {
            res->abort = true;
            return;
        }
        used = 0;
    } while (left > 0);
}

/* The connection's pipe, made on first use.  The socket turns O_NONBLOCK
 * with it: a splice that cannot go on then waits in a poll, where the send
 * timeout applies (a splice blocked inside the kernel ignores deadlines). */
static bool pipe_ready(struct conn *c)
{
    if (c->pipe[0] >= 0)
        return true;
    int fl = fcntl(c->fd, F_GETFL);
    if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0 || pipe2(c->pipe, O_CLOEXEC) < 0) {
        c->pipe[0] = c->pipe[1] = -1;
        return false;
    }
    /* Bigger pipes mean fewer splices; refused past /proc/sys/fs/pipe-max-size
     * or the per-user pipe budget, which leaves the default. */
    (void)fcntl(c->pipe[1], F_SETPIPE_SZ, PIPE_WANT);
    int cap = fcntl(c->pipe[1], F_GETPIPE_SZ);
    c->pipe_cap = cap > 0 ? (size_t)cap : 65536;
    return true;
}

/* Sends [off, off+len) of fd without copying it through userspace: file ->
 * pipe -> socket with uco_splice (the pipe holds page-cache references).
 * The pipe is empty at each file splice, so that one never waits; each
 * splice into the socket that makes no progress for --send-timeout-ms
 * fails, as a send does.  A file that shrinks ends the file splices early
 * (0): abort.  An aborted connection is closed with its pipe, so bytes left
 * in the pipe never reach another response. */
static void splice_body(struct conn *c, int fd, int64_t off, int64_t len, struct result *res)
{
    while (len > 0) {
        size_t want = (uint64_t)len < c->pipe_cap ? (size_t)len : c->pipe_cap;
        ssize_t n = uco_splice(fd, off, c->pipe[1], -1, want, 0);
        if (n <= 0) {
            res->abort = true;
            return;
        }
        off += n;
        len -= n;
        while (n > 0) {
            uint64_t saved;
            uco_timeout_begin(c->srv->send_ns, &saved);
            ssize_t m = uco_splice(c->pipe[0], -1, c->fd, -1, (size_t)n,
                                   len > 0 ? SPLICE_F_MORE : 0);
            uco_timeout_end(saved);
            if (m <= 0) {
                res->abort = true;
                return;
            }
            n -= m;
            res->bytes += (uint64_t)m;
        }
    }
}

/* A body that fits behind its head in one buffer leaves with it in one
 * send: a read and a send beat a send and two splices (which io_uring runs
 * on worker threads) there, 16 against 23 us of CPU per 1 KiB response.  A
 * bigger one is spliced after the head, which MSG_MORE holds back to share
 * its first packets.  Without a pipe (fd limit) everything is copied. */
static void send_body(struct conn *c, char *buf, size_t used, int fd, int64_t off, int64_t len,
                      bool with_body, struct result *res)
{
    if (!with_body)
        len = 0;
    if ((uint64_t)len <= IO_BUF - used || !pipe_ready(c)) {
        copy_body(c, buf, used, fd, off, len, res);
        return;
    }
    if (send_timed(c, buf, used, MSG_MORE) < 0) {
        res->abort = true;
        return;
    }
    splice_body(c, fd, off, len, res);
}

/* Answers a request for an opened regular file. */
static void serve_file(struct conn *c, const struct request *rq, int fd,
                       const struct statx *st, const char *path, struct result *res)
{
    int64_t size = (int64_t)st->stx_size, mtime = st->stx_mtime.tv_sec;
    int64_t off = 0, len = size;
    char extra[128] = "";
    res->status = 200;

    /* If-None-Match takes precedence; without ETags it never matches, so
     * If-Modified-Since is then ignored (RFC 9110 13.2.2). */
    if (rq->ims && rq->nims == 1 && !rq->inm) {
        int64_t since = parse_http_date(rq->ims);
        if (since >= 0 && mtime <= since)
            res->status = 304;
    }
    if (res->status == 200 && rq->m == M_GET && rq->range && rq->nranges == 1 &&
        (!rq->if_range || parse_http_date(rq->if_range) == mtime)) {
        int r = parse_range(rq->range, size, &off, &len);
        if (r < 0) {
            snprintf(extra, sizeof(extra), "Content-Range: bytes */%" PRId64 "\r\n", size);
            res->status = 416;
            send_simple(c, rq, res, extra);
            return;
        }
        if (r > 0) {
            res->status = 206;
            snprintf(extra, sizeof(extra), "Content-Range: bytes %" PRId64 "-%" PRId64 "/%" PRId64 "\r\n",
                     off, off + len - 1, size);
        }
    }

    char *buf = iobuf_get(c->srv);
    if (!buf) {
        res->status = 503;
        res->keep = false;
        send_simple(c, rq, res, NULL);
        return;
    }
    struct reply r = {.status = res->status, .keep = res->keep, .minor = rq->minor,
                      .type = res->status == 304 ? NULL : content_type(path),
                      .length = res->status == 304 ? -1 : len, .mtime = mtime,
                      .extra = extra[0] ? extra : NULL};
    struct out o = {buf, 0, IO_BUF};
    format_head(&o, &r);
    send_body(c, buf, o.len, fd, off, len, rq->m == M_GET && res->status != 304, res);
    iobuf_put(c->srv, buf);
}

/* openat2 beneath the root.  RESOLVE_BENEATH makes the kernel refuse any
 * resolution that leaves the root (an absolute symlink, ".." above it);
 * RESOLVE_NO_MAGICLINKS refuses /proc-style links.  O_NONBLOCK keeps a FIFO
 * in the root from blocking the open forever (it is cleared for regular
 * files, whose reads ignore it anyway). */
static int open_beneath(struct server *s, const char *rel, struct statx *st)
{
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    int fd = uco_openat2(s->rootfd, rel, &how);
    if (fd < 0)
        return fd;
    /* stat the fd, not the name: no window for a swap between the two */
    int ret = uco_statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE | STATX_MTIME, st);
    if (ret < 0) {
        uco_close(fd);
        return ret;
    }
    return fd;
}

static int errno_status(int err)
{
    switch (-err) {
    case ENOENT:
    case ENOTDIR: return 404;
    case EACCES:
    case EPERM:
    case EXDEV:  /* RESOLVE_BENEATH: the path tried to leave the root */
    case ELOOP: return 403;
    case ENAMETOOLONG: return 414;
    case EMFILE:
    case ENFILE:
    case ENOMEM: return 503;
    default: return 500;
    }
}

/* Answers one request whose head is c->buf[0..head). */
static void handle_request(struct conn *c, size_t head, struct request *rq, struct result *res)
{
    struct server *s = c->srv;
    *res = (struct result){.keep = true};
    res->status = parse_request(c->buf, head, rq);
    if (res->status) {
        res->keep = false; /* the stream cannot be trusted past a bad head */
        send_simple(c, rq, res, NULL);
        return;
    }
    /* We never read request bodies: a request with one gets its answer and
     * the connection closes (lingering, so the answer is not reset). */
    res->keep = !rq->close && (rq->minor == 1 || rq->keep_alive) && !rq->body &&
                !s->stopping && !c->cancelled;
    if (rq->m == M_UNKNOWN) {
        res->status = 501;
        send_simple(c, rq, res, NULL);
        return;
    }
    if (rq->m == M_NOT_ALLOWED) {
        res->status = 405;
        send_simple(c, rq, res, "Allow: GET, HEAD\r\n");
        return;
    }

    char rel[PATH_MAX];
    bool slash;
    const char *query;
    res->status = target_to_path(rq->target, rel, sizeof(rel), &slash, &query);
    if (res->status) {
        if (res->status == 400)
            res->keep = false;
        send_simple(c, rq, res, NULL);
        return;
    }
    struct statx st;
    int fd = open_beneath(s, rel, &st);
    if (fd >= 0 && S_ISDIR(st.stx_mode)) {
        uco_close(fd);
        fd = -1;
        if (!slash) { /* "/docs" -> "/docs/", so relative links in the index work */
            char loc[LOCATION_MAX], extra[LOCATION_MAX + 16];
            res->status = 414;
            if (encode_location(rel, query, loc, sizeof(loc))) {
                snprintf(extra, sizeof(extra), "Location: %s\r\n", loc);
                res->status = 301;
            }
            send_simple(c, rq, res, res->status == 301 ? extra : NULL);
            return;
        }
        size_t n = strcmp(rel, ".") == 0 ? 0 : strlen(rel);
        if (n + sizeof("/index.html") > sizeof(rel)) {
            res->status = 414;
            send_simple(c, rq, res, NULL);
            return;
        }
        strcpy(rel + n, n ? "/index.html" : "index.html");
        fd = open_beneath(s, rel, &st);
        if (fd == -ENOENT) /* a directory without an index is not listed */
            fd = -EACCES;
        slash = false;
    }
    if (fd == -ECANCELED) { /* a forced shutdown: no answer, just close */
        res->status = 503;
        res->abort = true;
        return;
    }
    if (fd < 0)
        res->status = errno_status(fd);
    else if (slash && S_ISREG(st.stx_mode))
        res->status = 404; /* "/file.txt/" */
    else if (!S_ISREG(st.stx_mode))
        res->status = 403; /* a device, FIFO, socket, or an index.html directory */
    else if (fcntl(fd, F_SETFL, 0) < 0) /* drop O_NONBLOCK (see open_beneath) */
        res->status = 500;
    if (res->status) {
        if (fd >= 0)
            uco_close(fd);
        send_simple(c, rq, res, NULL);
        return;
    }
    serve_file(c, rq, fd, &st, rel, res);
    uco_close(fd);
}

/* ---- a connection ---- */

/* Closing a socket that still holds unread input makes the kernel answer
 * with RST, which can destroy the response the client has not read yet
 * (a pipelined request after "Connection: close", the rest of an
 * over-long head).  So: half-close, then read and discard until the client
 * closes, bounded in time and bytes.  Cancellable, like an idle wait. */
static void linger_close(struct conn *c)
{
    if (uco_shutdown(c->fd, SHUT_WR) < 0)
        return;
    uint64_t saved;
    uco_timeout_begin(UCO_MSEC(LINGER_MS), &saved);
    size_t total = 0;
    while (total < LINGER_BYTES && !c->cancelled) {
        c->reading = true;
        ssize_t n = uco_recv(c->fd, c->buf, sizeof(c->buf), 0);
        c->reading = false;
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    uco_timeout_end(saved);
}

static void access_log(const struct request *rq, const struct result *res)
{
    /* The target was checked for control bytes by the parser (or is "-"):
     * a client cannot forge log lines. */
    printf("%s %s %d %" PRIu64 "\n", rq->method, rq->target, res->status, res->bytes);
    fflush(stdout);
}

static void serve_connection(struct conn *c)
{
    struct server *s = c->srv;
    for (bool first = true;; first = false) {
        int head = read_head(c, first);
        if (head == 0)
            return;
        struct request rq;
        struct result res;
        if (head < 0) { /* 408, 414, 431: answer, then hang up */
            rq = (struct request){.method = "-", .target = "-", .minor = 1};
            res = (struct result){.status = -head};
            send_simple(c, &rq, &res, NULL);
        } else {
            handle_request(c, (size_t)head, &rq, &res);
        }
        if (s->access_log)
            access_log(&rq, &res);
        if (res.abort)
            return;
        if (!res.keep || s->stopping) {
            linger_close(c);
            return;
        }
        /* pipelined bytes after this head move to the front */
        c->len -= (size_t)head;
        memmove(c->buf, c->buf + head, c->len);
    }
}

static void conn_unlink(struct conn *c)
{
    struct server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

static intptr_t conn_task(void *arg)
{
    struct conn *c = arg;
    struct server *s = c->srv;
    serve_connection(c);
    conn_unlink(c); /* before any await: shutdown must not cancel a task about to end */
    if (c->pipe[0] >= 0) {
        uco_close(c->pipe[0]);
        uco_close(c->pipe[1]);
    }
    uco_close(c->fd);
    s->nconns--;
    free(c);
    uco_wg_done(s->wg);
    return 0;
}

/* ---- accepting, signals, shutdown ---- */

/* Graceful: connections waiting for a request are cancelled (responses in
 * flight finish, then their connection closes).  Forced (second signal):
 * every connection is cancelled. */
static void cancel_conns(struct server *s, bool force)
{
    for (struct conn *c = s->conns; c; c = c->next) {
        if (force || (c->reading && !c->cancelled)) {
            c->cancelled = true;
            uco_cancel(c->task);
        }
    }
}

static intptr_t signal_task(void *arg)
{
    struct server *s = arg;
    for (int n = 0;;) {
        struct signalfd_siginfo si;
        ssize_t r = uco_read(s->sigfd, &si, sizeof(si), -1);
        if (r == -ECANCELED)
            return 0;
        if (r == -EAGAIN || r == -EINTR)
            continue;
        if (r != (ssize_t)sizeof(si)) {
            fprintf(stderr, "file_server: signalfd: %s\n", strerror(r < 0 ? (int)-r : EIO));
            return 0;
        }
        if (++n == 1) {
            if (!s->stopping) {
                s->stopping = true;
                uco_cancel(s->main_task); /* leaves uco_acceptor_next */
            }
            cancel_conns(s, false);
        } else {
            cancel_conns(s, true);
        }
    }
}

/* Answers 503 without a coroutine: a fresh socket's send buffer is empty,
 * so a non-blocking send of a few bytes cannot stall the loop. */
static void refuse(int fd)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
                               "Content-Type: text/plain; charset=utf-8\r\n"
                               "Content-Length: 24\r\nRetry-After: 1\r\n"
                               "Connection: close\r\n\r\n503 Service Unavailable\n";
    ssize_t n = send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n;
}

/* Returns 0 once stopping, or the error that makes accepting impossible. */
static int accept_loop(struct server *s, uco_acceptor *a)
{
    while (!s->stopping) {
        int fd = uco_acceptor_next(a);
        if (fd < 0) {
            if (fd == -ECANCELED)
                return 0;
            if (fd == -EBADF || fd == -EINVAL || fd == -ENOTSOCK)
                return fd;
            /* EMFILE, ENFILE, ENOMEM, ECONNABORTED...: the acceptor re-arms
             * on the next call; back off so a full fd table is not a busy
             * loop. */
            if (fd != -ECONNABORTED && uco_sleep(UCO_MSEC(ACCEPT_BACKOFF_MS)) == -ECANCELED)
                return 0;
            continue;
        }
        if (s->stopping || s->nconns >= s->max_conns) {
            if (!s->stopping)
                refuse(fd);
            uco_close(fd);
            continue;
        }
        /* Responses are written whole (headers with the first chunk): Nagle
         * would only delay the tail of each one. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        /* Not calloc: the request buffer is left untouched until data
         * arrives, so an idle connection costs no more than a page or two. */
        struct conn *c = malloc(sizeof(*c));
        uco_task *t = c ? uco_spawn(conn_task, c) : NULL;
        if (!t) {
            free(c);
            uco_close(fd);
            continue;
        }
        c->srv = s;
        c->task = t;
        c->fd = fd;
        c->reading = c->cancelled = false;
        c->pipe[0] = c->pipe[1] = -1;
        c->len = 0;
        c->prev = NULL;
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->nconns++;
        uco_wg_add(s->wg, 1);
        uco_detach(t); /* its memory goes back as soon as it ends */
    }
    return 0;
}

static intptr_t server_main(void *arg)
{
    struct server *s = arg;
    s->main_task = uco_self();
    int ret = uco_wg_create(&s->wg);
    uco_acceptor *a = NULL;
    if (ret == 0)
        ret = uco_accept_multishot(s->lfd, SOCK_CLOEXEC, &a);
    uco_task *sig = ret == 0 ? uco_spawn(signal_task, s) : NULL;
    if (!sig) {
        fprintf(stderr, "file_server: %s\n", strerror(ret < 0 ? -ret : ENOMEM));
        if (a)
            uco_acceptor_close(a);
        uco_wg_destroy(s->wg);
        return 1;
    }
    const char *h = s->host;
    printf(strchr(h, ':') ? "listening on [%s]:%d\n" : "listening on %s:%d\n", h,
           uco_local_port(s->lfd));
    fflush(stdout);

    int err = accept_loop(s, a);
    if (err < 0)
        fprintf(stderr, "file_server: accept: %s\n", strerror(-err));

    /* Stop accepting: the acceptor closes connections queued but not taken,
     * and closing the listener makes new ones fail at once. */
    s->stopping = true;
    uco_acceptor_close(a);
    uco_close(s->lfd);
    cancel_conns(s, false);
    while (uco_wg_wait(s->wg) == -ECANCELED)
        ;
    uco_cancel(sig);
    while (uco_join(sig, NULL) == -ECANCELED) /* a cancel of ours still pending */
        ;
    uco_wg_destroy(s->wg);
    return err < 0 ? 1 : 0;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: file_server --root DIR [--host H] [--port P] [--header-timeout-ms N]\n"
               "                   [--send-timeout-ms N] [--keepalive-timeout-ms N]\n"
               "                   [--max-conns N] [--access-log]\n");
}

static bool parse_num(const char *arg, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(arg, &end, 10);
    if (errno || end == arg || *end || arg[0] == '-' || v > max)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"root", required_argument, NULL, 'r'},
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"header-timeout-ms", required_argument, NULL, 't'},
        {"send-timeout-ms", required_argument, NULL, 's'},
        {"keepalive-timeout-ms", required_argument, NULL, 'k'},
        {"max-conns", required_argument, NULL, 'm'},
        {"access-log", no_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct server s = {.host = "127.0.0.1", .max_conns = 10000, .lfd = -1, .sigfd = -1,
                       .header_ns = UCO_MSEC(10000), .send_ns = UCO_MSEC(30000),
                       .keepalive_ns = UCO_MSEC(15000)};
    const char *root = NULL;
    unsigned long port = 8080, v = 0;
    int o, idx = 0;
    while ((o = getopt_long(argc, argv, "", opts, &idx)) != -1) {
        bool ok = true;
        switch (o) {
        case 'r': root = optarg; break;
        case 'H': s.host = optarg; break;
        case 'p': ok = parse_num(optarg, 65535, &port); break;
        case 't': ok = parse_num(optarg, 86400000, &v) && v; s.header_ns = UCO_MSEC(v); break;
        case 's': ok = parse_num(optarg, 86400000, &v) && v; s.send_ns = UCO_MSEC(v); break;
        case 'k': ok = parse_num(optarg, 86400000, &v) && v; s.keepalive_ns = UCO_MSEC(v); break;
        case 'm': ok = parse_num(optarg, 1000000, &v) && v; s.max_conns = (unsigned)v; break;
        case 'l': s.access_log = true; break;
        case 'h': usage(stdout); return 0;
        default: ok = false;
        }
        if (!ok) {
            if (o != '?')
                fprintf(stderr, "file_server: bad value for --%s: %s\n", opts[idx].name, optarg);
            usage(stderr);
            return 2;
        }
    }
    if (!root || optind != argc) {
        usage(stderr);
        return 2;
    }

    /* A connection holds a socket, and a file while it sends one: let the
     * fd table grow as far as the hard limit allows. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    s.rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (s.rootfd < 0) {
        fprintf(stderr, "file_server: --root %s: %s\n", root, strerror(errno));
        return 1;
    }
    s.lfd = uco_listen_tcp(s.host, (uint16_t)port, 4096);
    if (s.lfd < 0) {
        fprintf(stderr, "file_server: listen on %s:%lu: %s\n", s.host, port, strerror(-s.lfd));
        return 1;
    }
    /* Signals become reads on the ring: blocked here, before uco_run, so
     * that every thread the runtime starts (the offload pool) inherits the
     * mask and the signals wait in the signalfd. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    s.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s.sigfd < 0) {
        fprintf(stderr, "file_server: signalfd: %s\n", strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN); /* sockets use MSG_NOSIGNAL; this covers stdout */

    uco_config cfg = {.ring_entries = 1024};
    intptr_t ret = uco_run(server_main, &s, &cfg);
    while (s.pool_n)
        free(s.pool[--s.pool_n]);
    close(s.sigfd);
    close(s.rootfd);
    if (ret < 0) {
        fprintf(stderr, "file_server: %s\n", strerror((int)-ret));
        return 1;
    }
    return (int)ret;
}
