/*
 * uco-load: a load generator on uco.
 *
 *   uco-load echo [--host H] [--port P[,P...]] [--connections N] [--size BYTES]
 *                 [--duration SECONDS] [--warmup SECONDS] [--pipeline DEPTH]
 *                 [--slice SECONDS [--settle SECONDS] [--cpu-pid PID[,PID...]]
 *                  [--reference]] [--json]
 *   uco-load http --url http://host:port/path [--connections N]
 *                 [--duration SECONDS] [--warmup SECONDS] [--json]
 *
 * Each connection is a task.  echo sends --size-byte messages, keeps
 * --pipeline of them in flight and checks every echoed byte; http sends
 * HTTP/1.1 keep-alive GETs and reads each response (Content-Length,
 * chunked, or until close).  Progress goes to stderr once a second; at the
 * end of --duration every connection is cancelled and closed and a summary
 * goes to stdout (--json: one JSON object).  Bad arguments: exit 2.
 * --warmup runs the load that long first and counts none of it (connections
 * get established, caches warm); the lines "uco-load: measuring" and
 * "uco-load: done" on stderr mark the counted window, so that a benchmark
 * script can read the server's CPU time at exactly those two moments.
 *
 * Interleaved (echo --slice S, for comparing servers on a noisy machine):
 * --connections go to every --port at once, and the servers take turns:
 * only one port's connections send at a time.  A turn runs --settle
 * seconds uncounted, S seconds counted, then stops sending and waits for
 * every echo still owed.  A cycle gives every port one turn (every other
 * cycle in reverse order); --reference gives the first port one more
 * before each of the others' and one at the end, so every other turn is
 * bracketed by two of its.  --duration is the counted time per port,
 * --warmup one uncounted turn per port first.  --cpu-pid names each
 * port's server process: each turn reports that process's CPU time (and
 * uco-load's own).  The summary has every turn and totals per port.
 *
 * Counting: a request counts when its whole response has arrived; its
 * latency runs from just before its first byte is sent.  errors counts
 * failed connects, connections lost mid-request, echoes with wrong bytes,
 * malformed HTTP responses and HTTP statuses of 400 and up.  MB/s is bytes
 * received per second (10^6).  Latencies go into a log-linear histogram:
 * exact to 127 us, then 64 buckets per power of two (within 1.6%).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <uco.h>

#define MAX_CONNECTIONS 1000000u
#define MAX_SIZE (64u << 20)
#define MAX_PIPELINE 4096u
#define RBUF_SIZE (64 * 1024)        /* echo: receive buffer per connection */
#define HTTP_BUF (16 * 1024)         /* http: the longest header line we take */
#define PATTERN_PERIOD 4093u         /* echo payloads are windows of one random pattern */
#define RETRY_PAUSE UCO_MSEC(100)    /* after a failed connect or a lost connection */
#define MAX_TARGETS 16u              /* echo servers one interleaved run takes turns on */
#define OPEN_WAIT UCO_SEC(30)        /* --slice: every connection is up by then */
#define DRAIN_WAIT UCO_SEC(10)       /* --slice: a server answers what it was sent by then */

/* ---- latency histogram: log-linear, microseconds, fixed size ---- */

#define SUB_BITS 6
#define SUB (1u << SUB_BITS)                   /* buckets per power of two */
#define HIST_BUCKETS (2 * SUB + (63 - SUB_BITS) * SUB)

struct hist {
    uint64_t count[HIST_BUCKETS];
    uint64_t total, max;
};

static unsigned hist_index(uint64_t us)
{
    if (us < 2 * SUB)
        return (unsigned)us; /* exact */
    unsigned msb = 63u - (unsigned)__builtin_clzll(us);
    unsigned shift = msb - SUB_BITS; /* >= 1: keep the top SUB_BITS + 1 bits */
    return 2 * SUB + (shift - 1) * SUB + (unsigned)(us >> shift) - SUB;
}

/* The highest value that lands in bucket i. */
static uint64_t hist_value(unsigned i)
{
    if (i < 2 * SUB)
        return i;
    unsigned shift = (i - 2 * SUB) / SUB + 1;
    uint64_t sub = (i - 2 * SUB) % SUB + SUB;
    return ((sub + 1) << shift) - 1;
}

static void hist_add(struct hist *h, uint64_t us)
{
    h->count[hist_index(us)]++;
    h->total++;
    if (us > h->max)
        h->max = us;
}

static uint64_t hist_percentile(const struct hist *h, double p)
{
    if (!h->total)
        return 0;
    uint64_t want = (uint64_t)ceil(p / 100.0 * (double)h->total), seen = 0;
    if (want < 1)
        want = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want)
            return hist_value(i) < h->max ? hist_value(i) : h->max;
    }
    return h->max;
}

/* ---- settings and totals ---- */

enum mode { ECHO, HTTP };

static struct {
    enum mode mode;
    const char *host;       /* echo: --host; http: from the URL */
    unsigned port;
    unsigned connections;
    size_t size;
    double duration;
    double warmup;          /* seconds of load counted by nobody */
    unsigned pipeline;
    unsigned ports[MAX_TARGETS]; /* echo: --port P[,P...]; port is ports[0] */
    unsigned ntargets;
    unsigned pids[MAX_TARGETS]; /* --cpu-pid: whose CPU clock each slice reads */
    unsigned npids;
    double slice, settle;   /* --slice, --settle: interleaved when slice > 0 */
    bool reference;         /* --reference: the first port's turns bracket the others' */
    bool json;
    const char *url;
    char *request;          /* http: the GET, built once */
    size_t request_len;
    char target[300];       /* host:port as printed */
} cfg = {.host = "127.0.0.1", .port = 7000, .connections = 16, .size = 64,
         .duration = 10, .pipeline = 1, .ports = {7000}, .ntargets = 1, .settle = 0.02};

struct tally {
    uint64_t requests, errors, bytes;
    struct hist lat;
};

#define NO_TARGET UINT_MAX

static struct {
    struct tally total;     /* the counted window (not interleaved) */
    struct tally win;       /* interleaved: the slice being counted */
    unsigned open;          /* connections established now */
    bool counting;          /* the warm-up is over */
    bool stop;              /* the duration is over: count nothing more */
    bool measuring;         /* interleaved: a slice of target `active` counts */
    unsigned active;        /* interleaved: the target that may send, or NO_TARGET */
} g = {.active = NO_TARGET};

/* An echo server of an interleaved run (--slice): its connections send
 * only while it is `active`; go is set then. */
static struct target {
    uco_event *go;
    int64_t inflight;       /* requests sent and not yet answered */
    uint64_t requests, errors;
    double secs;            /* counted, summed over its slices */
    clockid_t clk;          /* its server's CPU clock (--cpu-pid) */
} targets[MAX_TARGETS];

static unsigned char *pattern; /* echo: cfg.size + PATTERN_PERIOD random bytes */

/* Where what target t does now is counted, or NULL. */
static struct tally *tally_of(unsigned t)
{
    if (cfg.slice > 0)
        return g.measuring && t == g.active ? &g.win : NULL;
    return g.counting && !g.stop ? &g.total : NULL;
}

static void count_error(unsigned t);

static void count_request(unsigned t, uint64_t started, bool ok)
{
    struct tally *c = tally_of(t);
    if (!ok) {
        count_error(t);
    } else if (c) {
        c->requests++;
        hist_add(&c->lat, (uco_now() - started + 500) / 1000);
    }
}

static void count_bytes(unsigned t, ssize_t n)
{
    struct tally *c = tally_of(t);
    if (c)
        c->bytes += (uint64_t)n;
}

/* Interleaved, a target's errors count over the whole run as well: a
 * connection lost between its slices is still a failure of that server. */
static void count_error(unsigned t)
{
    struct tally *c = tally_of(t);
    if (c)
        c->errors++;
    if (cfg.slice > 0 && !g.stop)
        targets[t].errors++;
}

/* Joins t even with a cancellation of ours pending: that cancellation is
 * delivered by our next await (see uco_cancel), which may be this join;
 * the next call then joins. */
static void join_now(uco_task *t)
{
    while (uco_join(t, NULL) == -ECANCELED)
        ;
}

static int dial(unsigned port)
{
    int fd = uco_dial_tcp(cfg.host, (uint16_t)port);
    if (fd >= 0) {
        /* Requests are small writes answered by reads: no Nagle delay. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        g.open++;
    }
    return fd;
}

static void hang_up(int fd)
{
    uco_close(fd); /* not a cancellation point: runs even when stopping */
    g.open--;
}

/* ---- echo ---- */

struct echo_conn {
    unsigned id;
    unsigned target;        /* index into cfg.ports and targets */
    int fd;
    uco_sem *credits;       /* requests that may still be sent: pipeline depth */
    uint64_t *sent_at;      /* send time of request k at k % pipeline */
    uint64_t nsent, nrecv;  /* requests sent / answered on this connection */
    uco_recv_stream *rs;    /* a multishot recv into echo_ring, or NULL: */
    unsigned char *rbuf;    /* plain recvs into this buffer */
    size_t pos;             /* bytes of request nrecv received so far */
    bool bad;               /* request nrecv has a wrong byte */
};

/* Echoes arrive through one multishot recv per connection into a shared
 * ring of provided buffers: one recv per arrival, where a plain recv
 * tries once, finds nothing, arms a poll and tries again.  The load
 * generator is the first to saturate on a small machine, so every
 * request it saves is a request the servers can show.  Each buffer goes
 * back as soon as it is checked, so a connection seldom holds more than
 * one; 2 per busy connection (at least 256, at most 32768) leave slack,
 * and fewer buffers stay warmer in the cache. */
#define ECHO_BUF_SIZE 4096
static uco_bufring *echo_ring;

static unsigned echo_ring_bufs(unsigned connections)
{
    unsigned n = 256;
    while (n < 32768 && n / 2 < connections)
        n *= 2;
    return n;
}

/* The next chunk of echoes: > 0 bytes at *data, 0 at end of stream, or
 * -errno.  *id names the ring buffer to release (none when plain). */
static ssize_t echo_recv(struct echo_conn *c, const unsigned char **data, unsigned *id)
{
    if (c->rs) {
        void *buf;
        ssize_t n = uco_recv_stream_next(c->rs, &buf, id);
        *data = buf;
        return n;
    }
    *data = c->rbuf;
    return uco_recv(c->fd, c->rbuf, RBUF_SIZE, 0);
}

/* Request k of connection c is the window of the pattern at this offset:
 * every request differs, and the reader checks it without keeping a copy. */
static const unsigned char *echo_payload(const struct echo_conn *c, uint64_t k)
{
    return pattern + (c->id * 7919u + k * 31u) % PATTERN_PERIOD;
}

/* Interleaved: waits until c's server has its turn. */
static int echo_turn(const struct echo_conn *c)
{
    int ret = 0;
    while (cfg.slice > 0 && g.active != c->target && ret == 0)
        ret = uco_event_wait(targets[c->target].go);
    return ret;
}

/* The sending half: one message per credit.  Runs beside the reader so a
 * large --size or --pipeline never deadlocks on full socket buffers. */
static intptr_t echo_writer(void *arg)
{
    struct echo_conn *c = arg;
    struct target *t = &targets[c->target];
    ssize_t ret;
    for (;;) {
        if ((ret = uco_sem_acquire(c->credits)) < 0 || (ret = echo_turn(c)) < 0)
            break;
        c->sent_at[c->nsent % cfg.pipeline] = uco_now();
        t->inflight++; /* before the send: its echo may be read before we resume */
        ret = uco_send_all(c->fd, echo_payload(c, c->nsent), cfg.size, NULL);
        if (ret < 0) {
            t->inflight--;
            break;
        }
        c->nsent++;
    }
    if (ret != -ECANCELED)
        shutdown(c->fd, SHUT_RDWR); /* wake the reader: this connection is done */
    return ret;
}

/* Reads echoes and checks them; returns when cancelled or when the
 * connection fails (counted as an error). */
/* Takes the next chunk of echoes, checks it and counts the requests it
 * completes; returns > 0, or <= 0 when the connection is over (counted
 * as an error unless cancelled). */
static ssize_t echo_take(struct echo_conn *c)
{
    const unsigned char *p;
    unsigned id = 0;
    ssize_t n = echo_recv(c, &p, &id), got = n;
    if (n <= 0) {
        if (n != -ECANCELED)
            count_error(c->target); /* reset, or closed with requests in flight */
        return n;
    }
    count_bytes(c->target, n);
    while (n > 0) {
        size_t take = cfg.size - c->pos < (size_t)n ? cfg.size - c->pos : (size_t)n;
        if (memcmp(p, echo_payload(c, c->nrecv) + c->pos, take) != 0)
            c->bad = true;
        p += take;
        n -= (ssize_t)take;
        c->pos += take;
        if (c->pos == cfg.size) {
            count_request(c->target, c->sent_at[c->nrecv % cfg.pipeline], !c->bad);
            c->nrecv++;
            targets[c->target].inflight--;
            c->pos = 0;
            c->bad = false;
            if (c->credits)
                uco_sem_release(c->credits);
        }
    }
    if (c->rs)
        uco_buf_release(echo_ring, id);
    return got;
}

/* One request at a time, small enough to sit in the socket buffers whole:
 * send it, then read its echo, in one task.  Half the switches and stacks
 * of a writer beside a reader, for the load generator that saturates
 * first. */
#define LOCKSTEP_MAX (16u * 1024)

static void echo_lockstep(struct echo_conn *c)
{
    struct target *t = &targets[c->target];
    for (;;) {
        if (echo_turn(c) < 0)
            return;
        c->sent_at[0] = uco_now();
        t->inflight++;
        ssize_t ret = uco_send_all(c->fd, echo_payload(c, c->nsent), cfg.size, NULL);
        if (ret < 0) {
            t->inflight--;
            if (ret != -ECANCELED)
                count_error(c->target);
            return;
        }
        c->nsent++;
        while (c->nrecv < c->nsent)
            if (echo_take(c) <= 0)
                return;
    }
}

/* A writer task beside this reader, --pipeline requests in flight. */
static void echo_pipelined(struct echo_conn *c)
{
    if (uco_sem_create(cfg.pipeline, &c->credits) < 0) {
        count_error(c->target);
        return;
    }
    uco_task *w = uco_spawn(echo_writer, c);
    if (!w) {
        count_error(c->target);
    } else {
        while (echo_take(c) > 0)
            ;
        uco_cancel(w);
        join_now(w);
    }
    uco_sem_destroy(c->credits);
    c->credits = NULL;
}

/* Sends and checks echoes until cancelled or the connection fails. */
static void echo_session(struct echo_conn *c)
{
    c->nsent = c->nrecv = 0;
    c->pos = 0;
    c->bad = false;
    if (!echo_ring || uco_recv_multishot(c->fd, echo_ring, &c->rs) < 0)
        c->rs = NULL; /* plain recvs: slower, the same answers */
    if (!c->rs && !c->rbuf && !(c->rbuf = malloc(RBUF_SIZE))) {
        count_error(c->target);
        return;
    }
    if (cfg.pipeline == 1 && cfg.size <= LOCKSTEP_MAX)
        echo_lockstep(c);
    else
        echo_pipelined(c);
    if (c->rs)
        uco_recv_stream_close(c->rs); /* not a cancellation point; queued buffers go back */
    c->rs = NULL;
    targets[c->target].inflight -= (int64_t)(c->nsent - c->nrecv); /* never to be answered */
}

static intptr_t echo_conn_main(void *arg)
{
    struct echo_conn *c = arg;
    c->sent_at = calloc(cfg.pipeline, sizeof(*c->sent_at));
    if (!c->sent_at) {
        count_error(c->target);
    } else {
        while (!g.stop) {
            c->fd = dial(cfg.ports[c->target]);
            if (c->fd == -ECANCELED)
                break;
            if (c->fd >= 0) {
                echo_session(c);
                hang_up(c->fd);
                if (g.stop)
                    break;
            } else {
                count_error(c->target);
            }
            if (uco_sleep(RETRY_PAUSE) == -ECANCELED)
                break;
        }
    }
    free(c->sent_at);
    free(c->rbuf);
    return 0;
}

/* ---- http ---- */

/* Buffered reading of a response: buf[start, end) is unread. */
struct reader {
    int fd;
    char *buf;
    size_t start, end;
};

/* Reads more; returns > 0, 0 at end of stream, or -errno. */
static ssize_t rd_fill(struct reader *r)
{
    if (r->start == r->end) {
        r->start = r->end = 0;
    } else if (r->end == HTTP_BUF) {
        if (r->start == 0)
            return -E2BIG; /* a header line longer than the buffer */
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    ssize_t n = uco_recv(r->fd, r->buf + r->end, HTTP_BUF - r->end, 0);
    if (n > 0) {
        r->end += (size_t)n;
        count_bytes(0, n);
    }
    return n;
}

/* The next line without its CRLF (NUL-terminated in place). */
static int rd_line(struct reader *r, char **line)
{
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl) {
            *line = r->buf + r->start;
            r->start = (size_t)(nl - r->buf) + 1;
            if (nl > *line && nl[-1] == '\r')
                nl--;
            *nl = '\0';
            return 0;
        }
        ssize_t n = rd_fill(r);
        if (n <= 0)
            return n == 0 ? -EPROTO : (int)n;
    }
}

/* Skips n body bytes (n == UINT64_MAX: up to the end of the stream). */
static int rd_skip(struct reader *r, uint64_t n)
{
    while (n) {
        if (r->start == r->end) {
            ssize_t got = rd_fill(r);
            if (got == 0 && n == UINT64_MAX)
                return 0;
            if (got <= 0)
                return got == 0 ? -EPROTO : (int)got;
        }
        size_t avail = r->end - r->start;
        size_t take = n < avail ? (size_t)n : avail;
        r->start += take;
        if (n != UINT64_MAX)
            n -= take;
    }
    return 0;
}

/* Whether a comma-separated header value lists token. */
static bool has_token(const char *value, const char *token)
{
    size_t len = strlen(token);
    for (const char *p = value; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!strncasecmp(p, token, len) && (!p[len] || p[len] == ',' || p[len] == ' ' ||
                                            p[len] == '\t' || p[len] == ';'))
            return true;
        while (*p && *p != ',')
            p++;
    }
    return false;
}

static int parse_u64(const char *s, int base, uint64_t *out)
{
    char *end;
    while (*s == ' ' || *s == '\t')
        s++;
    if (!isxdigit((unsigned char)*s))
        return -EPROTO;
    errno = 0;
    unsigned long long v = strtoull(s, &end, base);
    if (errno)
        return -EPROTO;
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end && !(base == 16 && *end == ';')) /* chunk extensions are ignored */
        return -EPROTO;
    *out = v;
    return 0;
}

/* Reads one response: its status in *status; *keep_alive says whether the
 * connection may carry the next request.  -errno on a broken response. */
static int http_response(struct reader *r, int *status, bool *keep_alive)
{
    char *line;
    int minor, ret;
    do { /* 1xx responses precede the real one */
        if ((ret = rd_line(r, &line)) < 0)
            return ret;
        if (sscanf(line, "HTTP/1.%d %3d", &minor, status) != 2 || *status < 100 ||
            *status > 999)
            return -EPROTO;
        bool chunked = false, close_ = minor == 0, has_length = false;
        uint64_t length = 0;
        for (;;) {
            if ((ret = rd_line(r, &line)) < 0)
                return ret;
            if (!*line)
                break;
            char *colon = strchr(line, ':');
            if (!colon)
                return -EPROTO;
            *colon = '\0';
            const char *value = colon + 1;
            if (!strcasecmp(line, "content-length")) {
                if (parse_u64(value, 10, &length) < 0)
                    return -EPROTO;
                has_length = true;
            } else if (!strcasecmp(line, "transfer-encoding")) {
                chunked = has_token(value, "chunked");
            } else if (!strcasecmp(line, "connection")) {
                if (has_token(value, "close"))
                    close_ = true;
                else if (has_token(value, "keep-alive"))
                    close_ = false;
            }
        }
        *keep_alive = !close_;
        if (*status < 200 || *status == 204 || *status == 304)
            continue; /* no body */
        if (chunked) {
            for (;;) {
                uint64_t n;
                if ((ret = rd_line(r, &line)) < 0 || (ret = parse_u64(line, 16, &n)) < 0)
                    return ret;
                if (n == 0)
                    break;
                if ((ret = rd_skip(r, n)) < 0 || (ret = rd_line(r, &line)) < 0)
                    return ret;
                if (*line)
                    return -EPROTO; /* chunk data not followed by CRLF */
            }
            do { /* trailers, up to an empty line */
                if ((ret = rd_line(r, &line)) < 0)
                    return ret;
            } while (*line);
        } else if (has_length) {
            if ((ret = rd_skip(r, length)) < 0)
                return ret;
        } else { /* the body runs to the end of the stream */
            *keep_alive = false;
            if ((ret = rd_skip(r, UINT64_MAX)) < 0)
                return ret;
        }
    } while (*status < 200);
    return 0;
}

static intptr_t http_conn_main(void *arg)
{
    (void)arg;
    struct reader r = {.buf = malloc(HTTP_BUF)};
    if (!r.buf) {
        count_error(0);
        return 0;
    }
    while (!g.stop) {
        r.fd = dial(cfg.port);
        if (r.fd == -ECANCELED)
            break;
        if (r.fd < 0) {
            count_error(0);
            if (uco_sleep(RETRY_PAUSE) == -ECANCELED)
                break;
            continue;
        }
        r.start = r.end = 0;
        bool keep_alive = true;
        int ret = 0;
        while (keep_alive) {
            uint64_t t0 = uco_now();
            int status = 0;
            ret = (int)uco_send_all(r.fd, cfg.request, cfg.request_len, NULL);
            if (ret >= 0)
                ret = http_response(&r, &status, &keep_alive);
            if (ret < 0)
                break;
            count_request(0, t0, status < 400);
        }
        hang_up(r.fd);
        if (ret == -ECANCELED)
            break;
        if (ret < 0) { /* lost or garbled: start over on a new connection, after a pause */
            count_error(0);
            if (uco_sleep(RETRY_PAUSE) == -ECANCELED)
                break;
        }
    }
    free(r.buf);
    return 0;
}

/* ---- the run ---- */

static void progress(uint64_t start, uint64_t *last_requests)
{
    double t = (double)(uco_now() - start) / 1e9;
    fprintf(stderr, "uco-load: %5.1f s  %llu requests (%llu/s)  %llu errors  %u open\n", t,
            (unsigned long long)g.total.requests,
            (unsigned long long)(g.total.requests - *last_requests),
            (unsigned long long)g.total.errors, g.open);
    *last_requests = g.total.requests;
}

static double elapsed_s;

/* ---- interleaved: the targets take turns, slice by slice ---- */

/* One counted slice of one target. */
struct slice {
    unsigned target, cycle;
    unsigned seq;           /* turns in the order they ran */
    double secs;
    uint64_t requests, errors, bytes;
    int64_t cpu_ns;         /* the server's CPU time over the slice, -1: unknown */
    int64_t load_cpu_ns;    /* ours: which side of the loopback ran out first */
    uint64_t p50, p99, p999, max;
    double steal_pct;       /* of the machine's CPU time the hypervisor took, -1: unknown */
};

static struct slice *slices;
static unsigned nslices;

/* The machine's CPU time so far and how much of it the hypervisor
 * stole (the "cpu" line of /proc/stat, in clock ticks). */
static bool cpu_ticks(uint64_t *total, uint64_t *steal)
{
    FILE *f = fopen("/proc/stat", "re");
    if (!f)
        return false;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 8)
        return false;
    *total = 0;
    for (int i = 0; i < 8; i++)
        *total += v[i];
    *steal = v[7];
    return true;
}

static int64_t clock_ns(clockid_t clk)
{
    struct timespec ts;
    if (clock_gettime(clk, &ts) < 0)
        return -1;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t target_cpu_ns(unsigned i)
{
    return i < cfg.npids ? clock_ns(targets[i].clk) : -1;
}

/* Waits until target i has had every request it was sent answered, so
 * that the next slice has the machine to itself. */
static void drain(unsigned i)
{
    uint64_t give_up = uco_now() + DRAIN_WAIT;
    while (targets[i].inflight > 0 && uco_now() < give_up)
        uco_sleep(UCO_MSEC(1));
    if (targets[i].inflight > 0)
        fprintf(stderr, "uco-load: %s:%u still owes %lld echoes after %d s\n", cfg.host,
                cfg.ports[i], (long long)targets[i].inflight, (int)(DRAIN_WAIT / UCO_SEC(1)));
}

/* Target i's turn: it runs --settle uncounted, then secs counted into
 * *out (none when out is NULL: the warm-up), then stops and drains. */
static void take_turn(unsigned i, double secs, struct slice *out)
{
    g.active = i;
    uco_event_set(targets[i].go);
    uco_sleep((uint64_t)(cfg.settle * 1e9));
    memset(&g.win, 0, sizeof(g.win));
    uint64_t tk0 = 0, st0 = 0, tk1 = 0, st1 = 0;
    bool ticks = cpu_ticks(&tk0, &st0);
    int64_t cpu0 = target_cpu_ns(i), load0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    uint64_t t0 = uco_now();
    g.measuring = out != NULL;
    uco_sleep((uint64_t)(secs * 1e9));
    g.measuring = false;
    uint64_t t1 = uco_now();
    int64_t cpu1 = target_cpu_ns(i), load1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    ticks = ticks && cpu_ticks(&tk1, &st1) && tk1 > tk0;
    g.active = NO_TARGET;
    uco_event_clear(targets[i].go);
    if (out) {
        *out = (struct slice){
            .target = i, .secs = (double)(t1 - t0) / 1e9, .requests = g.win.requests,
            .errors = g.win.errors, .bytes = g.win.bytes,
            .cpu_ns = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1,
            .load_cpu_ns = load0 >= 0 && load1 >= 0 ? load1 - load0 : -1,
            .p50 = hist_percentile(&g.win.lat, 50), .p99 = hist_percentile(&g.win.lat, 99),
            .p999 = hist_percentile(&g.win.lat, 99.9), .max = g.win.lat.max,
            .steal_pct = ticks ? 100.0 * (double)(st1 - st0) / (double)(tk1 - tk0) : -1};
        targets[i].requests += out->requests;
        targets[i].secs += out->secs;
    }
    drain(i);
}

/* The turns of cycle k, into order: every target once, every other
 * cycle backwards, so that no server always follows the same one.  With
 * --reference, target 0 goes before each of the others: every turn of
 * theirs then has one of its own just before and just after (the next
 * cycle's first, or the closing turn), a fraction of a second away. */
static unsigned cycle_order(unsigned k, unsigned *order)
{
    unsigned n = 0, first = cfg.reference ? 1 : 0;
    for (unsigned j = first; j < cfg.ntargets; j++) {
        if (cfg.reference)
            order[n++] = 0;
        order[n++] = k % 2 ? cfg.ntargets - 1 - (j - first) : j;
    }
    return n;
}

static void counted_turn(unsigned i, unsigned cycle)
{
    take_turn(i, cfg.slice, &slices[nslices]);
    slices[nslices].cycle = cycle;
    slices[nslices].seq = nslices;
    nslices++;
}

static void run_slices(unsigned total_conns)
{
    uint64_t give_up = uco_now() + OPEN_WAIT;
    while (g.open < total_conns && uco_now() < give_up)
        uco_sleep(UCO_MSEC(10));
    if (g.open < total_conns)
        fprintf(stderr, "uco-load: only %u of %u connections open\n", g.open, total_conns);
    unsigned cycles = (unsigned)ceil(cfg.duration / cfg.slice - 1e-9);
    unsigned order[2 * MAX_TARGETS], per_cycle = cycle_order(0, order);
    slices = calloc((size_t)cycles * per_cycle + 1, sizeof(*slices));
    if (!slices) {
        fprintf(stderr, "uco-load: out of memory\n");
        return;
    }
    for (unsigned i = 0; cfg.warmup > 0 && i < cfg.ntargets; i++)
        take_turn(i, cfg.warmup, NULL);
    fprintf(stderr, "uco-load: measuring\n");
    for (unsigned k = 0; k < cycles; k++) {
        unsigned n = cycle_order(k, order);
        for (unsigned j = 0; j < n; j++)
            counted_turn(order[j], k);
    }
    if (cfg.reference && cfg.ntargets > 1)
        counted_turn(0, cycles - 1); /* the last other turn's "after" */
    fprintf(stderr, "uco-load: done\n");
}

static intptr_t main_task(void *arg)
{
    (void)arg;
    unsigned n = cfg.connections * cfg.ntargets;
    uco_task **t = calloc(n, sizeof(*t));
    struct echo_conn *ec = cfg.mode == ECHO ? calloc(n, sizeof(*ec)) : NULL;
    if (!t || (cfg.mode == ECHO && !ec)) {
        free(t);
        free(ec);
        return -ENOMEM;
    }
    if (cfg.mode == ECHO) {
        /* Interleaved, one target's connections are busy at a time. */
        int ret = uco_bufring_create(echo_ring_bufs(cfg.connections), ECHO_BUF_SIZE, &echo_ring);
        if (ret < 0) { /* said once: the load still runs, on plain recvs */
            fprintf(stderr, "uco-load: no provided buffer ring (%s): plain recvs\n",
                    strerror(-ret));
            echo_ring = NULL;
        }
    }
    for (unsigned i = 0; i < cfg.ntargets; i++) {
        if (uco_event_create(&targets[i].go) < 0) {
            free(t);
            free(ec);
            return -ENOMEM;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        if (cfg.mode == ECHO) {
            ec[i].id = i;
            ec[i].target = i % cfg.ntargets; /* their connects interleave too */
            t[i] = uco_spawn(echo_conn_main, &ec[i]);
        } else {
            t[i] = uco_spawn(http_conn_main, NULL);
        }
        if (!t[i]) {
            n = i; /* out of memory: run with those we have */
            fprintf(stderr, "uco-load: only %u connections could be started\n", n);
            break;
        }
    }
    if (cfg.slice > 0) {
        run_slices(n);
        goto stop;
    }
    if (cfg.warmup > 0)
        uco_sleep((uint64_t)(cfg.warmup * 1e9));
    g.counting = true;
    if (cfg.warmup > 0)
        fprintf(stderr, "uco-load: measuring\n");
    uint64_t start = uco_now(), end = start + (uint64_t)(cfg.duration * 1e9);
    uint64_t next_tick = start + UCO_SEC(1), last = 0, now;
    while ((now = uco_now()) < end) {
        uint64_t wake = next_tick < end ? next_tick : end;
        uco_sleep(wake - now);
        if (uco_now() >= next_tick && uco_now() < end) {
            progress(start, &last);
            next_tick += UCO_SEC(1);
        }
    }
    g.stop = true; /* the totals are final from here on */
    elapsed_s = (double)(uco_now() - start) / 1e9;
    if (cfg.warmup > 0)
        fprintf(stderr, "uco-load: done\n");
stop:
    g.stop = true;
    for (unsigned i = 0; i < n; i++)
        uco_cancel(t[i]);
    uco_gather(t, n, NULL);
    for (unsigned i = 0; i < cfg.ntargets; i++)
        uco_event_destroy(targets[i].go);
    if (echo_ring)
        uco_bufring_destroy(echo_ring); /* every stream is closed */
    echo_ring = NULL;
    free(t);
    free(ec);
    return 0;
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void json_ns(int64_t ns)
{
    if (ns >= 0)
        printf("%lld", (long long)ns);
    else
        printf("null");
}

static void report_slice_json(const struct slice *sl)
{
    printf("{\"target\":%u,\"cycle\":%u,\"seq\":%u,\"duration_s\":%.6f,\"requests\":%llu,"
           "\"requests_per_sec\":%.1f,\"bytes\":%llu,\"errors\":%llu,\"server_cpu_ns\":",
           sl->target, sl->cycle, sl->seq, sl->secs, (unsigned long long)sl->requests,
           sl->secs > 0 ? (double)sl->requests / sl->secs : 0, (unsigned long long)sl->bytes,
           (unsigned long long)sl->errors);
    json_ns(sl->cpu_ns);
    printf(",\"load_cpu_ns\":");
    json_ns(sl->load_cpu_ns);
    printf(",\"steal_pct\":%.1f", sl->steal_pct);
    printf(",\"latency_us\":{\"p50\":%llu,\"p99\":%llu,\"p99_9\":%llu,\"max\":%llu}}",
           (unsigned long long)sl->p50, (unsigned long long)sl->p99,
           (unsigned long long)sl->p999, (unsigned long long)sl->max);
}

/* Interleaved: per target the totals over its slices, then every slice. */
static void report_slices(void)
{
    if (cfg.json)
        printf("{\"mode\":\"echo\",\"interleaved\":true,\"reference\":%s,\"connections\":%u,"
               "\"size\":%zu,\"pipeline\":%u,\"slice_s\":%.3f,\"settle_s\":%.3f,\"targets\":[",
               cfg.reference ? "true" : "false", cfg.connections, cfg.size, cfg.pipeline,
               cfg.slice, cfg.settle);
    else
        printf("echo, interleaved: %u targets x %u connections, %zu-byte messages, "
               "pipeline %u, slices of %.3f s after %.3f s to settle\n", cfg.ntargets,
               cfg.connections, cfg.size, cfg.pipeline, cfg.slice, cfg.settle);
    for (unsigned i = 0; i < cfg.ntargets; i++) {
        const struct target *t = &targets[i];
        double rps = t->secs > 0 ? (double)t->requests / t->secs : 0;
        if (cfg.json)
            printf("%s{\"port\":%u,\"requests\":%llu,\"duration_s\":%.3f,"
                   "\"requests_per_sec\":%.1f,\"errors\":%llu}", i ? "," : "", cfg.ports[i],
                   (unsigned long long)t->requests, t->secs, rps,
                   (unsigned long long)t->errors);
        else
            printf("%s:%u  requests %llu  requests/s %.1f  errors %llu\n", cfg.host,
                   cfg.ports[i], (unsigned long long)t->requests, rps,
                   (unsigned long long)t->errors);
    }
    if (!cfg.json) {
        printf("slices        %u\n", nslices);
        return;
    }
    printf("],\"slices\":[");
    for (unsigned k = 0; k < nslices; k++) {
        printf(k ? "," : "");
        report_slice_json(&slices[k]);
    }
    printf("]}\n");
}

static void report(void)
{
    if (cfg.slice > 0) {
        report_slices();
        fflush(stdout);
        return;
    }
    double rps = elapsed_s > 0 ? (double)g.total.requests / elapsed_s : 0;
    double mbps = elapsed_s > 0 ? (double)g.total.bytes / elapsed_s / 1e6 : 0;
    unsigned long long p50 = hist_percentile(&g.total.lat, 50), p99 = hist_percentile(&g.total.lat, 99),
                       p999 = hist_percentile(&g.total.lat, 99.9), max = g.total.lat.max;
    if (cfg.json) {
        printf("{\"mode\":\"%s\",\"target\":", cfg.mode == ECHO ? "echo" : "http");
        json_string(cfg.mode == ECHO ? cfg.target : cfg.url);
        printf(",\"connections\":%u", cfg.connections);
        if (cfg.mode == ECHO)
            printf(",\"size\":%zu,\"pipeline\":%u", cfg.size, cfg.pipeline);
        printf(",\"duration_s\":%.3f,\"requests\":%llu,\"requests_per_sec\":%.1f,"
               "\"bytes\":%llu,\"mb_per_sec\":%.3f,\"errors\":%llu,"
               "\"latency_us\":{\"p50\":%llu,\"p99\":%llu,\"p99_9\":%llu,\"max\":%llu}}\n",
               elapsed_s, (unsigned long long)g.total.requests, rps, (unsigned long long)g.total.bytes,
               mbps, (unsigned long long)g.total.errors, p50, p99, p999, max);
    } else {
        if (cfg.mode == ECHO)
            printf("echo %s: %u connections, %zu-byte messages, pipeline %u, %.2f s\n",
                   cfg.target, cfg.connections, cfg.size, cfg.pipeline, elapsed_s);
        else
            printf("http %s: %u connections, %.2f s\n", cfg.url, cfg.connections, elapsed_s);
        printf("requests      %llu\n", (unsigned long long)g.total.requests);
        printf("requests/s    %.1f\n", rps);
        printf("MB/s          %.3f\n", mbps);
        printf("errors        %llu\n", (unsigned long long)g.total.errors);
        printf("latency (us)  p50 %llu  p99 %llu  p99.9 %llu  max %llu\n", p50, p99, p999, max);
    }
    fflush(stdout);
}

/* ---- arguments ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: uco-load echo [--host H] [--port P[,P...]] [--connections N] [--size BYTES]\n"
            "                     [--duration SECONDS] [--warmup SECONDS] [--pipeline DEPTH]\n"
            "                     [--slice SECONDS [--settle SECONDS] [--cpu-pid PID[,PID...]]\n"
            "                      [--reference]]\n"
            "                     [--json]\n"
            "       uco-load http --url http://host[:port]/path [--connections N]\n"
            "                     [--duration SECONDS] [--warmup SECONDS] [--json]\n"
            "  --host H          echo server address (default 127.0.0.1)\n"
            "  --port P[,P...]   echo server port (default 7000); several need --slice\n"
            "  --connections N   concurrent connections, 1-%u (default 16)\n"
            "  --size BYTES      echo message size, k/m suffixes for KiB/MiB (default 64)\n"
            "  --duration S      seconds to run, fractions allowed (default 10)\n"
            "  --warmup S        seconds of load before that, not counted (default 0)\n"
            "  --pipeline DEPTH  echo messages in flight per connection (default 1)\n"
            "  --slice S         interleaved: --connections to every port, which take turns\n"
            "                    of S seconds counted; --duration is per port, --warmup one\n"
            "                    uncounted turn each first\n"
            "  --settle S        interleaved: seconds each turn runs before it counts\n"
            "                    (default 0.02)\n"
            "  --cpu-pid PID,..  interleaved: the server process of each port, whose CPU\n"
            "                    time each turn reports\n"
            "  --reference       interleaved: the first port takes a turn before each\n"
            "                    other port's, and one at the end\n"
            "  --url URL         http target, plain http only\n"
            "  --json            print the summary as one JSON object\n",
            MAX_CONNECTIONS);
}

static void __attribute__((noreturn, format(printf, 1, 2))) bad_args(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("uco-load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n(uco-load --help for usage)\n", stderr);
    va_end(ap);
    exit(2);
}

/* An integer in [lo, hi]; with_suffix takes k/K (KiB) and m/M (MiB). */
static unsigned long long parse_count(const char *opt, const char *arg, unsigned long long lo,
                                      unsigned long long hi, bool with_suffix)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*arg))
        bad_args("%s: '%s' is not a number", opt, arg);
    unsigned long long v = strtoull(arg, &end, 10);
    if (with_suffix && (*end == 'k' || *end == 'K') && !end[1]) {
        v = v > ULLONG_MAX >> 10 ? ULLONG_MAX : v << 10;
        end++;
    } else if (with_suffix && (*end == 'm' || *end == 'M') && !end[1]) {
        v = v > ULLONG_MAX >> 20 ? ULLONG_MAX : v << 20;
        end++;
    }
    if (errno || *end)
        bad_args("%s: '%s' is not a number", opt, arg);
    if (v < lo || v > hi)
        bad_args("%s: %s is out of range (%llu-%llu)", opt, arg, lo, hi);
    return v;
}

/* http://host[:port][/path]; host may be [v6]. */
/* Seconds, fractions allowed: more than 0 (or 0 itself when zero_ok), at
 * most 10^6. */
static double parse_seconds(const char *opt, const char *arg, bool zero_ok)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || !isfinite(v))
        bad_args("%s: '%s' is not a number of seconds", opt, arg);
    if (v < 0 || (v == 0 && !zero_ok) || v > 1e6)
        bad_args("%s: %s is out of range (%s 0, at most 1000000)", opt, arg,
                 zero_ok ? "at least" : "more than");
    return v;
}

/* A comma-separated list of at most MAX_TARGETS integers in [lo, hi]. */
static unsigned parse_list(const char *opt, const char *arg, unsigned long long lo,
                           unsigned long long hi, unsigned *out)
{
    char buf[256];
    if (strlen(arg) >= sizeof(buf))
        bad_args("%s: list too long", opt);
    strcpy(buf, arg);
    unsigned n = 0;
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == MAX_TARGETS)
            bad_args("%s: more than %u values", opt, MAX_TARGETS);
        out[n++] = (unsigned)parse_count(opt, tok, lo, hi, false);
    }
    if (n == 0 || arg[0] == ',' || arg[strlen(arg) - 1] == ',' || strstr(arg, ",,"))
        bad_args("%s: '%s' is not a list of numbers", opt, arg);
    return n;
}

static void parse_url(const char *url)
{
    static char host[256], path[2048];
    if (strncasecmp(url, "http://", 7) != 0)
        bad_args("--url: '%s' is not an http:// URL%s", url,
                 strncasecmp(url, "https://", 8) == 0 ? " (https is not supported)" : "");
    const char *a = url + 7, *slash = strchr(a, '/');
    size_t alen = slash ? (size_t)(slash - a) : strlen(a);
    const char *port = NULL, *h = a;
    size_t hlen;
    if (*a == '[') {
        const char *close = memchr(a, ']', alen);
        if (!close)
            bad_args("--url: '%s': unterminated [IPv6 address]", url);
        h = a + 1;
        hlen = (size_t)(close - h);
        if (close + 1 < a + alen) {
            if (close[1] != ':')
                bad_args("--url: '%s': junk after ]", url);
            port = close + 2;
        }
    } else {
        const char *colon = memchr(a, ':', alen);
        hlen = colon ? (size_t)(colon - a) : alen;
        if (colon)
            port = colon + 1;
    }
    if (hlen == 0 || hlen >= sizeof(host))
        bad_args("--url: '%s' has no host", url);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    cfg.port = 80;
    if (port) {
        char digits[8];
        size_t plen = (size_t)(a + alen - port);
        if (plen == 0 || plen >= sizeof(digits))
            bad_args("--url: '%s' has a bad port", url);
        memcpy(digits, port, plen);
        digits[plen] = '\0';
        cfg.port = (unsigned)parse_count("--url port", digits, 1, 65535, false);
    }
    snprintf(path, sizeof(path), "%s", slash ? slash : "/");
    cfg.host = host;
    size_t cap = strlen(path) + alen + 128;
    cfg.request = malloc(cap);
    if (!cfg.request)
        exit(1);
    cfg.request_len = (size_t)snprintf(cfg.request, cap,
                                       "GET %s HTTP/1.1\r\nHost: %.*s\r\n"
                                       "User-Agent: uco-load\r\nAccept: */*\r\n\r\n",
                                       path, (int)alen, a);
}

/* --slice and what goes with it. */
static void check_interleaved(bool settle_set)
{
    if (cfg.ntargets > 1 && cfg.slice == 0)
        bad_args("--port: %u ports need --slice (they take turns)", cfg.ntargets);
    if (cfg.slice == 0 && (settle_set || cfg.npids || cfg.reference))
        bad_args("--%s needs --slice",
                 settle_set ? "settle" : cfg.npids ? "cpu-pid" : "reference");
    if (cfg.npids && cfg.npids != cfg.ntargets)
        bad_args("--cpu-pid: %u pids for %u ports", cfg.npids, cfg.ntargets);
    if ((unsigned long long)cfg.connections * cfg.ntargets > MAX_CONNECTIONS)
        bad_args("--connections %u to %u ports: more than %u in all", cfg.connections,
                 cfg.ntargets, MAX_CONNECTIONS);
    struct timespec ts;
    for (unsigned i = 0; i < cfg.npids; i++)
        if (clock_getcpuclockid((pid_t)cfg.pids[i], &targets[i].clk) != 0 ||
            clock_gettime(targets[i].clk, &ts) != 0)
            bad_args("--cpu-pid: no process %u whose CPU time can be read", cfg.pids[i]);
}

static void parse_args(int argc, char **argv)
{
    if (argc < 2)
        bad_args("missing mode: echo or http");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        exit(0);
    }
    if (!strcmp(argv[1], "echo"))
        cfg.mode = ECHO;
    else if (!strcmp(argv[1], "http"))
        cfg.mode = HTTP;
    else
        bad_args("unknown mode '%s': echo or http", argv[1]);
    enum { O_HOST = 1, O_PORT, O_CONN, O_SIZE, O_DUR, O_WARM, O_PIPE, O_URL, O_JSON, O_SLICE,
           O_SETTLE, O_PID, O_REF, O_HELP };
    static const struct option opts[] = {
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},
        {"connections", required_argument, NULL, O_CONN},
        {"size", required_argument, NULL, O_SIZE},
        {"duration", required_argument, NULL, O_DUR},
        {"warmup", required_argument, NULL, O_WARM},
        {"pipeline", required_argument, NULL, O_PIPE},
        {"url", required_argument, NULL, O_URL},
        {"json", no_argument, NULL, O_JSON},
        {"slice", required_argument, NULL, O_SLICE},
        {"settle", required_argument, NULL, O_SETTLE},
        {"cpu-pid", required_argument, NULL, O_PID},
        {"reference", no_argument, NULL, O_REF},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    opterr = 0; /* we name the problem ourselves */
    bool settle_set = false;
    int opt;
    optind = 2;
    while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        const char *name = opt > 0 && opt <= O_HELP ? opts[opt - 1].name : "";
        if ((cfg.mode == HTTP && (opt == O_HOST || opt == O_PORT || opt == O_SIZE ||
                                  opt == O_PIPE || opt == O_SLICE || opt == O_SETTLE ||
                                  opt == O_PID || opt == O_REF)) ||
            (cfg.mode == ECHO && opt == O_URL))
            bad_args("--%s does not apply to %s mode", name, argv[1]);
        switch (opt) {
        case O_HOST:
            if (!*optarg)
                bad_args("--host: empty");
            cfg.host = optarg;
            break;
        case O_PORT:
            cfg.ntargets = parse_list("--port", optarg, 1, 65535, cfg.ports);
            cfg.port = cfg.ports[0];
            break;
        case O_PID: /* 2^22 is PID_MAX_LIMIT; larger pids would wrap in the clock id */
            cfg.npids = parse_list("--cpu-pid", optarg, 1, 1u << 22, cfg.pids);
            break;
        case O_SLICE:
            cfg.slice = parse_seconds("--slice", optarg, false);
            break;
        case O_REF:
            cfg.reference = true;
            break;
        case O_SETTLE:
            cfg.settle = parse_seconds("--settle", optarg, true);
            settle_set = true;
            break;
        case O_CONN:
            cfg.connections = (unsigned)parse_count("--connections", optarg, 1,
                                                    MAX_CONNECTIONS, false);
            break;
        case O_SIZE:
            cfg.size = (size_t)parse_count("--size", optarg, 1, MAX_SIZE, true);
            break;
        case O_PIPE:
            cfg.pipeline = (unsigned)parse_count("--pipeline", optarg, 1, MAX_PIPELINE, false);
            break;
        case O_DUR:
            cfg.duration = parse_seconds("--duration", optarg, false);
            break;
        case O_WARM:
            cfg.warmup = parse_seconds("--warmup", optarg, true);
            break;
        case O_URL:
            cfg.url = optarg;
            break;
        case O_JSON:
            cfg.json = true;
            break;
        case O_HELP:
            usage(stdout);
            exit(0);
        case ':':
            bad_args("%s needs a value", argv[optind - 1]);
        default:
            bad_args("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        bad_args("unexpected argument '%s'", argv[optind]);
    if (cfg.mode == HTTP) {
        if (!cfg.url)
            bad_args("http mode needs --url http://host:port/path");
        parse_url(cfg.url);
    } else {
        snprintf(cfg.target, sizeof(cfg.target), strchr(cfg.host, ':') ? "[%s]:%u" : "%s:%u",
                 cfg.host, cfg.port);
        check_interleaved(settle_set);
    }
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);

    /* One fd per connection, plus a few for the runtime. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        unsigned long long fds = (unsigned long long)cfg.connections * cfg.ntargets + 32;
        if (rl.rlim_cur != RLIM_INFINITY && fds > rl.rlim_cur)
            bad_args("--connections %u to %u port(s) needs more file descriptors than "
                     "RLIMIT_NOFILE allows (%llu)", cfg.connections, cfg.ntargets,
                     (unsigned long long)rl.rlim_cur);
    }
    if (cfg.mode == ECHO) {
        pattern = malloc(cfg.size + PATTERN_PERIOD);
        if (!pattern) {
            fprintf(stderr, "uco-load: out of memory\n");
            return 1;
        }
        uint64_t x = uco_now() | 1; /* xorshift64: any bytes will do, cheaply */
        for (size_t i = 0; i < cfg.size + PATTERN_PERIOD; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            pattern[i] = (unsigned char)(x >> 24);
        }
    }
    uco_config ucfg = {.ring_entries = 1024};
    intptr_t ret = uco_run(main_task, NULL, &ucfg);
    if (ret < 0) {
        fprintf(stderr, "uco-load: %s\n", strerror((int)-ret));
        return 1;
    }
    report();
    free(pattern);
    free(cfg.request);
    return 0;
}
