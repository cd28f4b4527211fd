/* The echo sample, its baselines (threads, epoll, raw io_uring) and
 * uco-load, run as a user runs them: each server is a child process found
 * under UCO_BUILD_DIR, started on --port 0 (the port is read back from its
 * "listening on" line), and driven by clients that are uco tasks of this
 * process (or plain sockets where the order of system calls is the point
 * of the test). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define ECHO_SERVER UCO_BUILD_DIR "/examples/echo_server"
#define ECHO_THREADS UCO_BUILD_DIR "/bench/echo_threads"
#define ECHO_EPOLL UCO_BUILD_DIR "/bench/echo_epoll"
#define ECHO_URING UCO_BUILD_DIR "/bench/echo_uring"
#define UCO_LOAD UCO_BUILD_DIR "/tools/uco-load"

#define EMFILE_MSG "Too many open files"

/* ------------------------------------------------------------------ */
/* Child processes                                                      */
/* ------------------------------------------------------------------ */

/* (struct proc, proc_spawn, proc_wait, spawn_server and run_capture are
 * in util.h.) */

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *l = text; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) : strlen(l);
        if (memmem(l, len, needle, strlen(needle)))
            n++;
        l = nl ? nl + 1 : NULL;
    }
    return n;
}

/* Waits for stderr to mention needle, up to secs. */
static bool proc_wait_err(struct proc *p, const char *needle, double secs)
{
    double until = now_sec() + secs;
    while (!strstr(p->errs, needle) && p->err >= 0 && now_sec() < until)
        proc_read_err(p, 50);
    return strstr(p->errs, needle) != NULL;
}

static bool proc_alive(struct proc *p)
{
    int st;
    return wait_for(p->pid, &st, WNOHANG) == 0;
}

/* Starts a server on host, port 0, with its stderr kept in p->errs. */
static void server_start(struct proc *p, const char *path, const char *host, rlim_t nofile)
{
    char *argv[] = {(char *)path, "--host", (char *)host, "--port", "0", NULL};
    spawn_server(p, argv, PROC_STDERR_PIPE, nofile);
}

/* SIGTERM, then the exit status within secs; it must be 0. */
static double server_stop(struct proc *p, double secs)
{
    ck_assert_int_eq(kill(p->pid, SIGTERM), 0);
    double took;
    int st = proc_wait(p, secs, &took);
    ck_assert_msg(st != -1, "still running %.1f s after SIGTERM", secs);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "exit status %#x after SIGTERM; stderr: %s", st, p->errs);
    return took;
}

/* ------------------------------------------------------------------ */
/* Plain blocking sockets, for tests about the order of system calls    */
/* ------------------------------------------------------------------ */

/* Connects fd, or closes it and returns -errno.  With timeouts on both
 * directions: a hung server fails the test, not the test's timeout.
 * (Blocking calls on sockets with timeouts return EINTR instead of
 * restarting when the task-work notifications of an io_uring, such as a
 * ring torn down by an earlier uco_run, interrupt them: retried here.) */
static int connect_fd(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (connect(fd, sa, len) < 0) {
        int err = errno;
        if (err == EINTR) { /* the connect goes on: wait for its outcome */
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            socklen_t elen = sizeof(err);
            poll_for(&pf, 1, 10000);
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
                err = errno;
        }
        if (err) {
            close(fd);
            return -err;
        }
    }
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

static int tcp_connect(const char *host, int port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        len = sizeof(*a4);
    } else {
        ck_assert_int_eq(inet_pton(AF_INET6, host, &a6->sin6_addr), 1);
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        len = sizeof(*a6);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    return connect_fd(fd, (struct sockaddr *)&ss, len);
}

/* A client whose receive buffer holds only a few KiB: the server's echo
 * to it blocks until it reads. */
static int tcp_connect_small_rcvbuf(const char *host, int port)
{
    (void)host;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    return connect_fd(fd, (struct sockaddr *)&a, sizeof(a));
}

static void send_exact(int fd, const void *buf, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t w = send(fd, (const char *)buf + off, n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        ck_assert_msg(w > 0, "send: %s", strerror(errno));
        off += (size_t)w;
    }
}

/* Reads exactly n bytes (fails the test on EOF, error or timeout). */
static void recv_exact(int fd, void *buf, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t r = recv(fd, (char *)buf + off, n - off, 0);
        if (r < 0 && errno == EINTR)
            continue;
        ck_assert_msg(r > 0, "recv after %zu of %zu bytes: %s", off, n,
                      r == 0 ? "end of stream" : strerror(errno));
        off += (size_t)r;
    }
}

static void echo_round_trip(int fd, const char *msg)
{
    char back[256];
    size_t n = strlen(msg);
    send_exact(fd, msg, n);
    recv_exact(fd, back, n);
    ck_assert_int_eq(memcmp(back, msg, n), 0);
}

/* 0 at end of stream; the test fails on data, error or timeout. */
static void expect_eof(int fd)
{
    char b;
    ssize_t r;
    while ((r = recv(fd, &b, 1, 0)) < 0 && errno == EINTR)
        ;
    ck_assert_msg(r == 0, "expected end of stream, got %zd (%s)", r,
                  r < 0 ? strerror(errno) : "data");
}

static void reset_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0}; /* close sends RST */
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(fd);
}

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ------------------------------------------------------------------ */
/* Clients as uco tasks: each sends one payload, reads it back, half-   */
/* closes and expects the server's end of stream                        */
/* ------------------------------------------------------------------ */

enum { OK, E_CONNECT, E_SEND, E_SHORT, E_BYTES, E_NO_EOF, E_TIMEOUT };
static const char *const client_err[] = {"ok", "connect failed", "send failed",
                                         "echo short", "echo differs", "no EOF after half-close",
                                         "timed out"};

struct client {
    size_t size;
    unsigned char *out, *in;
    int fd;
    int result;
};

static struct {
    int port;
    int n, connected, echoed;
    uco_event *all_connected, *all_echoed;
    void (*at_peak)(void); /* runs once every connection is open and echoed */
    struct client *c;
} cl;

/* A barrier: the last of the n clients to get here opens it. */
static int arrive(int *count, uco_event *e, void (*last)(void))
{
    if (++*count == cl.n) {
        if (last)
            last();
        uco_event_set(e);
    }
    return uco_event_wait(e);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void fill_random(unsigned char *b, size_t n, uint64_t seed)
{
    uint64_t s = seed | 1;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(rng_next(&s) >> 32);
}

/* Sends the payload while the client task reads: a 1 MiB echo does not
 * fit in the socket buffers of one direction. */
static intptr_t client_writer(void *arg)
{
    struct client *c = arg;
    uint64_t saved;
    uco_timeout_begin(UCO_SEC(40), &saved);
    ssize_t n = uco_send_all(c->fd, c->out, c->size, NULL);
    uco_timeout_end(saved);
    return n;
}

static intptr_t client_main(void *arg)
{
    struct client *c = arg;
    uint64_t saved;
    uco_timeout_begin(UCO_SEC(40), &saved);
    int fd = uco_dial_tcp("127.0.0.1", (uint16_t)cl.port);
    /* All open at once: real concurrency. */
    int ret = arrive(&cl.connected, cl.all_connected, NULL) < 0 ? E_TIMEOUT : OK;
    if (fd < 0) {
        arrive(&cl.echoed, cl.all_echoed, cl.at_peak);
        uco_timeout_end(saved);
        return c->result = E_CONNECT;
    }
    c->fd = fd;
    uco_task *w = NULL;
    intptr_t sent = (intptr_t)c->size;
    if (ret == OK) {
        if (c->size > 16384)
            w = uco_spawn(client_writer, c);
        else
            sent = uco_send_all(fd, c->out, c->size, NULL);
    }
    size_t got = 0;
    ssize_t n = 1;
    while (ret == OK && got < c->size &&
           (n = uco_recv(fd, c->in + got, c->size - got, 0)) > 0)
        got += (size_t)n;
    if (w)
        uco_join(w, &sent);
    if (ret == OK && n == -ETIMEDOUT)
        ret = E_TIMEOUT;
    else if (ret == OK && sent != (intptr_t)c->size)
        ret = E_SEND;
    else if (ret == OK && got != c->size)
        ret = E_SHORT;
    else if (ret == OK && memcmp(c->in, c->out, c->size) != 0)
        ret = E_BYTES;
    /* Every connection still open: the peak. */
    if (arrive(&cl.echoed, cl.all_echoed, cl.at_peak) < 0 && ret == OK)
        ret = E_TIMEOUT;
    if (ret == OK) { /* half-close: the server echoes everything, then closes */
        char b;
        uco_shutdown(fd, SHUT_WR);
        n = uco_recv(fd, &b, 1, 0);
        ret = n == 0 ? OK : n == -ETIMEDOUT ? E_TIMEOUT : E_NO_EOF;
    }
    uco_timeout_end(saved);
    uco_close(fd);
    return c->result = ret;
}

static intptr_t clients_main(void *arg)
{
    (void)arg;
    uco_task **t = calloc((size_t)cl.n, sizeof(*t));
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(uco_event_create(&cl.all_connected), 0);
    ck_assert_int_eq(uco_event_create(&cl.all_echoed), 0);
    for (int i = 0; i < cl.n; i++)
        ck_assert_ptr_nonnull(t[i] = uco_spawn(client_main, &cl.c[i]));
    uco_gather(t, (size_t)cl.n, NULL);
    uco_event_destroy(cl.all_connected);
    uco_event_destroy(cl.all_echoed);
    free(t);
    return 0;
}

/* A size in [1, max], each power of two as likely as the next. */
static size_t log_uniform(uint64_t *s, size_t max)
{
    unsigned bits = 0;
    while ((2ul << bits) <= max)
        bits++;
    size_t lo = (size_t)1 << (rng_next(s) % (bits + 1));
    size_t size = lo + (size_t)(rng_next(s) % lo);
    return size > max ? max : size;
}

/* n clients at once against port.  Sizes: log-uniform in [1, small_max],
 * every big_every-th client exactly big bytes and as many log-uniform in
 * [1, big], client 1 a single byte.
 * Fails the test naming the first client that failed. */
static void run_clients(int port, int n, size_t small_max, int big_every, size_t big,
                        void (*at_peak)(void))
{
    uint64_t seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ (uint64_t)(now_sec() * 1e6);
    uint64_t s = seed | 1;
    raise_nofile((rlim_t)n + 100);
    memset(&cl, 0, sizeof(cl));
    cl.port = port;
    cl.n = n;
    cl.at_peak = at_peak;
    cl.c = calloc((size_t)n, sizeof(*cl.c));
    ck_assert_ptr_nonnull(cl.c);
    for (int i = 0; i < n; i++) {
        struct client *c = &cl.c[i];
        if (big_every && i % big_every == 0)
            c->size = big;
        else if (big_every && i % big_every == big_every / 2)
            c->size = log_uniform(&s, big);
        else if (i == 1)
            c->size = 1;
        else
            c->size = log_uniform(&s, small_max);
        c->out = malloc(c->size);
        c->in = malloc(c->size);
        ck_assert(c->out && c->in);
        fill_random(c->out, c->size, seed + (uint64_t)i);
        c->result = -1;
    }
    ck_assert_int_eq(uco_run(clients_main, NULL, NULL), 0);
    int bad = 0, first = -1;
    for (int i = 0; i < n; i++) {
        if (cl.c[i].result != OK) {
            bad++;
            if (first < 0)
                first = i;
        }
    }
    if (bad) {
        struct client *c = &cl.c[first];
        ck_abort_msg("%d of %d clients failed; first: client %d, %zu bytes: %s (seed %#llx)",
                     bad, n, first, c->size,
                     c->result >= 0 && c->result <= E_TIMEOUT ? client_err[c->result] : "?",
                     (unsigned long long)seed);
    }
    for (int i = 0; i < n; i++) {
        free(cl.c[i].out);
        free(cl.c[i].in);
    }
    free(cl.c);
}

/* ------------------------------------------------------------------ */
/* echo_server                                                          */
/* ------------------------------------------------------------------ */

START_TEST(test_server_echoes_random_payloads_from_1_byte_to_1_mib_over_1000_connections)
{
    struct proc p;
    server_start(&p, ECHO_SERVER, "127.0.0.1", 0);
    /* 1 MiB on 20 connections, 1 B to 1 MiB on 20 more, 1 B to 64 KiB on the rest. */
    run_clients(p.port, 1000, 64 * 1024, 50, 1u << 20, NULL);
    ck_assert_msg(proc_alive(&p), "server died: %s", p.errs);
    server_stop(&p, 5);
    ck_assert_msg(p.nerr == 0, "server wrote to stderr: %s", p.errs);
}
END_TEST

static pid_t peak_pid;
static int peak_maps;

static void count_peak_maps(void)
{
    char path[64], line[512];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)peak_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    peak_maps = 0;
    while (fgets(line, sizeof(line), f))
        peak_maps++;
    fclose(f);
}

START_TEST(test_server_holds_10000_concurrent_connections)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max < 10000 + 200) { /* the server inherits our hard limit */
        fprintf(stderr, "skipped: RLIMIT_NOFILE hard limit %lu\n", (unsigned long)rl.rlim_max);
        return;
    }
    struct proc p;
    server_start(&p, ECHO_SERVER, "127.0.0.1", 0);
    peak_pid = p.pid;
    peak_maps = -1;
    run_clients(p.port, 10000, 64, 0, 0, count_peak_maps);
    /* Per-connection rings and stacks must not fragment the address space:
     * vm.max_map_count (65530) would cap the connections.  (ASan maps
     * memory its own way: plain builds only.) */
    ck_assert_int_gt(peak_maps, 0);
    if (!UNDER_ASAN)
        ck_assert_msg(peak_maps < 2000, "%d mappings for 10,000 connections", peak_maps);
    server_stop(&p, 5);
    ck_assert_msg(p.nerr == 0, "server wrote to stderr: %s", p.errs);
}
END_TEST

/* Connections opened one after another, so each connection's memory is
 * set up between the previous one's and the next one's: it must not add
 * mappings of its own (vm.max_map_count, 65530, would cap the server). */
START_TEST(test_server_connections_do_not_fragment_the_address_space)
{
    enum { N = 2000 };
    raise_nofile(N + 100);
    struct proc p;
    server_start(&p, ECHO_SERVER, "127.0.0.1", 0);
    static int fd[N];
    for (int i = 0; i < N; i++) {
        fd[i] = tcp_connect("127.0.0.1", p.port);
        ck_assert_int_ge(fd[i], 0);
        echo_round_trip(fd[i], "one at a time");
    }
    peak_pid = p.pid;
    count_peak_maps();
    for (int i = 0; i < N; i++)
        close(fd[i]);
    ck_assert_int_gt(peak_maps, 0);
    if (!UNDER_ASAN) /* ASan maps memory its own way */
        ck_assert_msg(peak_maps < N / 4, "%d mappings for %d connections", peak_maps, N);
    server_stop(&p, 5);
}
END_TEST

START_TEST(test_server_reset_and_half_closed_peers_do_not_disturb_others)
{
    struct proc p;
    server_start(&p, ECHO_SERVER, "127.0.0.1", 0);
    enum { STEADY = 10 };
    int steady[STEADY];
    for (int i = 0; i < STEADY; i++) {
        steady[i] = tcp_connect("127.0.0.1", p.port);
        ck_assert_int_ge(steady[i], 0);
        echo_round_trip(steady[i], "before");
    }
    size_t big = 4u << 20;
    unsigned char *blob = malloc(big);
    ck_assert_ptr_nonnull(blob);
    fill_random(blob, big, 7);
    for (int round = 0; round < 5; round++) {
        /* A peer that resets while the server is echoing to it: it sends
         * a lot and never reads, so the server is blocked mid-send. */
        int r = tcp_connect("127.0.0.1", p.port);
        ck_assert_int_ge(r, 0);
        int flags = fcntl(r, F_GETFL);
        fcntl(r, F_SETFL, flags | O_NONBLOCK);
        size_t off = 0;
        struct pollfd pf = {.fd = r, .events = POLLOUT};
        while (off < big) {
            ssize_t w = send(r, blob + off, big - off, MSG_NOSIGNAL);
            if (w > 0)
                off += (size_t)w;
            else if (poll_for(&pf, 1, 100) == 0)
                break; /* buffers full both ways: the server is stuck sending to us */
        }
        reset_close(r);
        /* A peer that resets while idle. */
        int idle = tcp_connect("127.0.0.1", p.port);
        ck_assert_int_ge(idle, 0);
        echo_round_trip(idle, "idle, then reset");
        reset_close(idle);
        /* A half-closed peer still gets its echo, then the end of stream. */
        int h = tcp_connect("127.0.0.1", p.port);
        ck_assert_int_ge(h, 0);
        char msg[64], back[64];
        int len = snprintf(msg, sizeof(msg), "half-closed %d", round);
        send_exact(h, msg, (size_t)len);
        ck_assert_int_eq(shutdown(h, SHUT_WR), 0);
        recv_exact(h, back, (size_t)len);
        ck_assert_int_eq(memcmp(back, msg, (size_t)len), 0);
        expect_eof(h);
        close(h);
        /* Everyone else is still served. */
        for (int i = 0; i < STEADY; i++)
            echo_round_trip(steady[i], "still here");
    }
    free(blob);
    int fresh = tcp_connect("127.0.0.1", p.port);
    ck_assert_int_ge(fresh, 0);
    echo_round_trip(fresh, "new connection");
    close(fresh);
    ck_assert_msg(proc_alive(&p), "server died: %s", p.errs);
    for (int i = 0; i < STEADY; i++)
        close(steady[i]);
    server_stop(&p, 5);
    /* A peer going away is routine, not something to log. */
    ck_assert_msg(p.nerr == 0, "server wrote to stderr: %s", p.errs);
}
END_TEST

/* CPU seconds the process has used (from /proc/PID/stat). */
static double proc_cpu(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    unsigned long long ut = 0, st = 0;
    const char *p = strrchr(buf, ')'); /* the command may contain spaces */
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                            &ut, &st), 2);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* What a connection may hold in each server's own memory, taken twice
 * over for a chunk in the middle of its echo: echo_server's per-connection
 * cap (CONN_BUFS, 4 buffers of 16 KiB), echo_uring's (CONN_MAX_BUFS, 8). */
#define HOG_CAP (2 * 4 * 16384)
#define HOG_CAP_URING (2 * 8 * 16384)

/* Bytes the kernel queues on the server's end of the IPv4 connection
 * from peer_port to port: its receive queue and its send queue, from
 * /proc/net/tcp (columns "local rem st tx_queue:rx_queue", in hex). */
static size_t server_side_queued(int port, int peer_port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    size_t queued = 0;
    bool found = false;
    while (fgets(line, sizeof(line), f)) {
        unsigned lport, rport;
        unsigned long tx, rx;
        if (sscanf(line, " %*d: %*8x:%x %*8x:%x %*x %lx:%lx", &lport, &rport, &tx, &rx) == 4 &&
            (int)lport == port && (int)rport == peer_port) {
            queued = tx + rx;
            found = true;
        }
    }
    fclose(f);
    ck_assert_msg(found, "no connection from port %d to %d in /proc/net/tcp", peer_port, port);
    return queued;
}

/* A peer that sends until the server stops taking more, and never reads.
 * The server must push back (TCP flow control) rather than buffer what it
 * cannot send: of what the hog sent, all but at most held_max bytes are
 * still in the kernel's queues (the hog's send queue, the server's receive
 * and send queues, the hog's receive queue).  Counted rather than bounded
 * by a guess at socket buffer sizes: this kernel autotunes a receive
 * buffer up to tcp_rmem's 32 MiB.  Returns the hog's fd. */
static int connect_hog(int port, unsigned seed, size_t held_max)
{
    size_t big = 32u << 20, sent = 0;
    unsigned char *blob = malloc(big);
    ck_assert_ptr_nonnull(blob);
    fill_random(blob, big, seed);
    int hog = tcp_connect_small_rcvbuf("127.0.0.1", port);
    ck_assert_int_ge(hog, 0);
    struct pollfd out = {.fd = hog, .events = POLLOUT};
    while (sent < big) {
        ssize_t w = send(hog, blob + sent, big - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0)
            sent += (size_t)w;
        else if (poll_for(&out, 1, 200) == 0)
            break;
    }
    free(blob);
    struct sockaddr_in me;
    socklen_t len = sizeof(me);
    ck_assert_int_eq(getsockname(hog, (struct sockaddr *)&me, &len), 0);
    int outq = 0, inq = 0;
    ck_assert_int_eq(ioctl(hog, SIOCOUTQ, &outq), 0);
    ck_assert_int_eq(ioctl(hog, SIOCINQ, &inq), 0);
    size_t queued = (size_t)outq + (size_t)inq + server_side_queued(port, ntohs(me.sin_port));
    size_t held = sent > queued ? sent - queued : 0;
    ck_assert_msg(held <= held_max,
                  "the server holds %zu of the %zu bytes sent without our reading any "
                  "(%zu in the kernel's queues; %zu allowed)", held, sent, queued, held_max);
    return hog;
}

/* Nothing spins while a hog is stuck (a coarse bound). */
static void assert_idle(pid_t pid)
{
    double cpu = proc_cpu(pid);
    poll_for(NULL, 0, 300);
    cpu = proc_cpu(pid) - cpu;
    ck_assert_msg(cpu < 0.1, "the server used %.2f s of CPU in 0.3 s while idle", cpu);
}

START_TEST(test_server_peer_that_never_reads_does_not_starve_others)
{
    struct proc p;
    server_start(&p, ECHO_SERVER, "127.0.0.1", 0);
    int hog = connect_hog(p.port, 3, HOG_CAP);
    /* ...and the others are served meanwhile, large payloads included. */
    run_clients(p.port, 100, 256 * 1024, 10, 1u << 20, NULL);
    assert_idle(p.pid);
    reset_close(hog);
    server_stop(&p, 5);
    ck_assert_msg(p.nerr == 0, "server wrote to stderr: %s", p.errs);
}
END_TEST

START_TEST(test_server_sigterm_finishes_echoes_in_progress_then_exits_0_promptly)
{
    struct proc p;
    server_start(&p, ECHO_SERVER, "127.0.0.1", 0);
    enum { IDLE = 100, MSG = 40000 };
    int idle[IDLE];
    for (int i = 0; i < IDLE; i++) {
        idle[i] = tcp_connect("127.0.0.1", p.port);
        ck_assert_int_ge(idle[i], 0);
        echo_round_trip(idle[i], "hello"); /* accepted and parked */
    }
    /* A client in the middle of an echo: it sends until the server stops
     * taking more and reads nothing (with a tiny receive buffer), so the
     * server is blocked sending to it.  What has reached the server (left
     * our send queue) must all come back. */
    size_t big = 32u << 20, sent = 0;
    unsigned char *blob = malloc(big), *blob_back = malloc(big);
    ck_assert(blob && blob_back);
    fill_random(blob, big, 5);
    int busy = tcp_connect_small_rcvbuf("127.0.0.1", p.port);
    ck_assert_int_ge(busy, 0);
    struct pollfd out = {.fd = busy, .events = POLLOUT};
    while (sent < big) {
        ssize_t w = send(busy, blob + sent, big - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0)
            sent += (size_t)w;
        else if (poll_for(&out, 1, 200) == 0)
            break; /* the server has stopped reading: it is stuck sending to us */
    }
    ck_assert_msg(sent < big, "the server took %zu bytes without our reading any", sent);
    /* A client that has just sent a message: the server is stopped while
     * the message (several buffers long) and the signal reach it, so it
     * sees both in the same pass. */
    int last = tcp_connect("127.0.0.1", p.port);
    ck_assert_int_ge(last, 0);
    echo_round_trip(last, "warm up");
    static unsigned char msg[MSG], back[MSG];
    fill_random(msg, sizeof(msg), 99);
    int st;
    ck_assert_int_eq(kill(p.pid, SIGSTOP), 0);
    ck_assert_int_eq(wait_for(p.pid, &st, WUNTRACED), p.pid);
    ck_assert(WIFSTOPPED(st));
    send_exact(last, msg, sizeof(msg));
    int unsent;
    ck_assert_int_eq(ioctl(busy, SIOCOUTQ, &unsent), 0);
    size_t reached = sent - (size_t)unsent;
    double t_term = now_sec();
    ck_assert_int_eq(kill(p.pid, SIGTERM), 0);
    ck_assert_int_eq(kill(p.pid, SIGCONT), 0);
    /* Both get their echo, then the end of stream. */
    recv_exact(last, back, sizeof(back));
    ck_assert_int_eq(memcmp(back, msg, sizeof(msg)), 0);
    expect_eof(last);
    close(last);
    size_t got = 0;
    ssize_t n;
    while (got < sent &&
           ((n = recv(busy, blob_back + got, sent - got, 0)) > 0 || (n < 0 && errno == EINTR)))
        got += n > 0 ? (size_t)n : 0;
    ck_assert_msg(got >= reached, "echoed %zu of the %zu bytes that had reached the server",
                  got, reached);
    ck_assert_msg(memcmp(blob_back, blob, got) == 0, "the echo differs");
    expect_eof(busy);
    close(busy);
    free(blob);
    free(blob_back);
    st = proc_wait(&p, 2, NULL);
    double took = now_sec() - t_term;
    ck_assert_msg(st != -1 && took < 2.0, "still running %.2f s after SIGTERM", took);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %#x; stderr: %s", st,
                  p.errs);
    /* Idle connections were closed, and nobody listens any more. */
    for (int i = 0; i < IDLE; i++) {
        expect_eof(idle[i]);
        close(idle[i]);
    }
    ck_assert_int_eq(tcp_connect("127.0.0.1", p.port), -ECONNREFUSED);
    ck_assert_msg(p.nerr == 0, "server wrote to stderr: %s", p.errs);
}
END_TEST

START_TEST(test_server_out_of_fds_logs_once_stays_up_and_serves_when_fds_free_up)
{
    struct proc p;
    server_start(&p, ECHO_SERVER, "127.0.0.1", 64);
    enum { N = 100, CLOSE = 70 };
    int fd[N];
    for (int i = 0; i < N; i++) { /* they all connect: the backlog holds them */
        fd[i] = tcp_connect("127.0.0.1", p.port);
        ck_assert_int_ge(fd[i], 0);
    }
    ck_assert_msg(proc_wait_err(&p, EMFILE_MSG, 10), "no EMFILE report; stderr: %s", p.errs);
    echo_round_trip(fd[0], "served"); /* the first ones were accepted */
    proc_read_err(&p, 300); /* retries meanwhile: still one line */
    ck_assert_msg(proc_alive(&p), "server died: %s", p.errs);
    for (int i = 0; i < CLOSE; i++)
        close(fd[i]);
    /* The ones left in the backlog are accepted once fds free up. */
    for (int i = CLOSE; i < N; i++)
        echo_round_trip(fd[i], "accepted after all");
    int fresh = tcp_connect("127.0.0.1", p.port);
    ck_assert_int_ge(fresh, 0);
    echo_round_trip(fresh, "and new ones too");
    close(fresh);
    for (int i = CLOSE; i < N; i++)
        close(fd[i]);
    server_stop(&p, 5);
    ck_assert_msg(count_lines_with(p.errs, EMFILE_MSG) == 1, "EMFILE logged %d times: %s",
                  count_lines_with(p.errs, EMFILE_MSG), p.errs);
}
END_TEST

START_TEST(test_server_listens_on_ipv6_and_rejects_bad_options)
{
    struct proc p;
    server_start(&p, ECHO_SERVER, "::1", 0);
    ck_assert_msg(!strncmp(p.line, "listening on [::1]:", 19), "line: %s", p.line);
    int fd = tcp_connect("::1", p.port);
    ck_assert_int_ge(fd, 0);
    echo_round_trip(fd, "over IPv6");
    /* The port is taken: a second server says so and fails. */
    char port[16];
    snprintf(port, sizeof(port), "%d", p.port);
    char *busy[] = {ECHO_SERVER, "--host", "::1", "--port", port, NULL};
    struct output r;
    run_capture(busy, 10, &r);
    ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 1, "status %#x", r.status);
    ck_assert_msg(strstr(r.err, "Address already in use"), "stderr: %s", r.err);
    close(fd);
    server_stop(&p, 5);
    char *bad_port[] = {ECHO_SERVER, "--port", "http", NULL};
    run_capture(bad_port, 10, &r);
    ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 2, "status %#x", r.status);
    ck_assert_msg(strstr(r.err, "--port"), "stderr: %s", r.err);
    char *bad_opt[] = {ECHO_SERVER, "--verbose", NULL};
    run_capture(bad_opt, 10, &r);
    ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 2, "status %#x", r.status);
    ck_assert_msg(strstr(r.err, "verbose"), "stderr: %s", r.err);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The baselines                                                        */
/* ------------------------------------------------------------------ */

static void check_baseline(const char *path)
{
    struct proc p;
    server_start(&p, path, "127.0.0.1", 0);
    /* 1 MiB on 4 connections, up to 64 KiB on the rest: partial writes. */
    run_clients(p.port, 200, 64 * 1024, 50, 1u << 20, NULL);
    /* A reset and a half-closed peer do not take the server down. */
    int r = tcp_connect("127.0.0.1", p.port);
    ck_assert_int_ge(r, 0);
    echo_round_trip(r, "reset me");
    reset_close(r);
    int h = tcp_connect("127.0.0.1", p.port);
    ck_assert_int_ge(h, 0);
    send_exact(h, "half", 4);
    shutdown(h, SHUT_WR);
    char back[4];
    recv_exact(h, back, 4);
    ck_assert_int_eq(memcmp(back, "half", 4), 0);
    expect_eof(h);
    close(h);
    int idle = tcp_connect("127.0.0.1", p.port);
    ck_assert_int_ge(idle, 0);
    echo_round_trip(idle, "idle at the stop");
    double took = server_stop(&p, 5);
    ck_assert_msg(took < 2.0, "exit took %.3f s", took);
    expect_eof(idle);
    close(idle);
}

START_TEST(test_thread_baseline_echoes_bytes_and_exits_0_on_sigterm)
{
    check_baseline(ECHO_THREADS);
}
END_TEST

START_TEST(test_epoll_baseline_echoes_bytes_and_exits_0_on_sigterm)
{
    check_baseline(ECHO_EPOLL);
}
END_TEST

START_TEST(test_uring_baseline_echoes_bytes_and_exits_0_on_sigterm)
{
    check_baseline(ECHO_URING);
}
END_TEST

/* A ring of 64 buffers for 200 connections: connections find it empty
 * (ENOBUFS) and wait for buffers to come back; a peer that never reads has
 * its recv paused and holds only a few; nothing spins meanwhile. */
START_TEST(test_uring_baseline_with_a_small_ring_waits_for_buffers_and_pauses_a_hog)
{
    struct proc p;
    char *argv[] = {ECHO_URING, "--host", "127.0.0.1", "--port", "0", "--buffers", "64", NULL};
    spawn_server(&p, argv, PROC_STDERR_PIPE, 0);
    int hog = connect_hog(p.port, 5, HOG_CAP_URING);
    run_clients(p.port, 200, 64 * 1024, 50, 1u << 20, NULL);
    assert_idle(p.pid);
    reset_close(hog);
    server_stop(&p, 5);
    ck_assert_msg(p.nerr == 0, "server wrote to stderr: %s", p.errs);
}
END_TEST

/* ------------------------------------------------------------------ */
/* uco-load                                                             */
/* ------------------------------------------------------------------ */

/* The number after "key" at the start of a line of out, or -1. */
static double summary_value(const char *out, const char *key)
{
    size_t k = strlen(key);
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, key, k) && (l[k] == ' ' || l[k] == '\t'))
            return strtod(l + k, NULL);
    return -1;
}

START_TEST(test_uco_load_echo_reports_requests_and_no_errors)
{
    struct proc p;
    server_start(&p, ECHO_SERVER, "127.0.0.1", 0);
    char port[16];
    snprintf(port, sizeof(port), "%d", p.port);
    char *argv[] = {UCO_LOAD, "echo", "--host", "127.0.0.1", "--port", port,
                    "--connections", "16", "--size", "3000", "--duration", "1",
                    "--pipeline", "4", NULL};
    struct output r;
    run_capture(argv, 15, &r);
    ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %#x: %s",
                  r.status, r.err);
    /* It stops by itself at the end of the duration (coarse bound). */
    ck_assert_msg(r.secs >= 0.9 && r.secs < 6, "ran %.2f s", r.secs);
    double requests = summary_value(r.out, "requests");
    ck_assert_msg(requests > 0, "no requests in: %s", r.out);
    ck_assert_msg(summary_value(r.out, "errors") == 0, "errors in: %s", r.out);
    ck_assert_msg(summary_value(r.out, "requests/s") > 0, "no rate in: %s", r.out);
    ck_assert_msg(summary_value(r.out, "MB/s") > 0, "no MB/s in: %s", r.out);
    ck_assert_msg(strstr(r.out, "p50") && strstr(r.out, "p99.9") && strstr(r.out, "max"),
                  "no latencies in: %s", r.out);
    ck_assert_msg(proc_alive(&p), "server died: %s", p.errs);
    server_stop(&p, 5);
}
END_TEST

static void python_check(const char *script, const char *json);

/* Checks one JSON object with python3 when there is one; always checks
 * the shape and the keys here. */
static void check_json(const char *json, const char *const *keys)
{
    const char *end = json + strlen(json);
    while (end > json && (end[-1] == '\n' || end[-1] == ' '))
        end--;
    ck_assert_msg(json[0] == '{' && end > json && end[-1] == '}', "not an object: %s", json);
    ck_assert_msg(!memchr(json, '\n', (size_t)(end - json)), "more than one line: %s", json);
    for (const char *const *k = keys; *k; k++) {
        char quoted[64];
        snprintf(quoted, sizeof(quoted), "\"%s\":", *k);
        ck_assert_msg(strstr(json, quoted), "no key %s in %s", *k, json);
    }
    python_check("import json,sys\n"
                 "d=json.load(sys.stdin)\n"
                 "assert isinstance(d,dict)\n"
                 "l=d['latency_us']\n"
                 "assert d['requests']>0 and d['errors']==0, d\n"
                 "assert 0<=l['p50']<=l['p99']<=l['p99_9']<=l['max'], l\n",
                 json);
}

/* Runs a python3 script on json (its stdin); fails unless it exits 0, or
 * 127 when there is no python3. */
static void python_check(const char *script, const char *json)
{
    int in[2];
    ck_assert_int_eq(pipe(in), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        close(in[0]);
        close(in[1]);
        execlp("python3", "python3", "-c", script, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    ck_assert_int_eq(write(in[1], json, strlen(json)), (ssize_t)strlen(json));
    close(in[1]);
    int st;
    wait_for(pid, &st, 0);
    ck_assert_msg(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 127),
                  "python3 rejected: %s", json);
}

START_TEST(test_uco_load_json_is_one_object_with_the_expected_keys)
{
    struct proc p;
    server_start(&p, ECHO_SERVER, "127.0.0.1", 0);
    char port[16];
    snprintf(port, sizeof(port), "%d", p.port);
    char *argv[] = {UCO_LOAD, "echo", "--port", port, "--connections", "8", "--size", "100k",
                    "--duration", "1", "--json", NULL};
    struct output r;
    run_capture(argv, 15, &r);
    ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %#x: %s",
                  r.status, r.err);
    static const char *const keys[] = {"requests", "requests_per_sec", "mb_per_sec", "errors",
                                       "latency_us", "p50", "p99", "p99_9", "max", NULL};
    check_json(r.out, keys);
    server_stop(&p, 5);
}
END_TEST

/* --warmup: the load runs that long uncounted, then "measuring" and "done"
 * on stderr bracket the counted window, and the totals cover only it. */
START_TEST(test_uco_load_warmup_counts_only_the_window_it_marks)
{
    struct proc p;
    server_start(&p, ECHO_SERVER, "127.0.0.1", 0);
    char port[16];
    snprintf(port, sizeof(port), "%d", p.port);
    char *argv[] = {UCO_LOAD, "echo", "--port", port, "--connections", "4", "--size", "64",
                    "--warmup", "0.6", "--duration", "0.4", "--json", NULL};
    struct output r;
    run_capture(argv, 15, &r);
    ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %#x: %s",
                  r.status, r.err);
    ck_assert_msg(r.secs >= 0.95, "ran %.2f s: the warm-up was skipped", r.secs);
    const char *m = strstr(r.err, "uco-load: measuring\n"), *d = strstr(r.err, "uco-load: done\n");
    ck_assert_msg(m && d && m < d, "no measuring/done window in: %s", r.err);
    const char *q = strstr(r.out, "\"requests\":"), *b = strstr(r.out, "\"bytes\":");
    const char *t = strstr(r.out, "\"duration_s\":");
    ck_assert_msg(q && b && t, "no totals in: %s", r.out);
    double requests = strtod(q + 11, NULL), bytes = strtod(b + 8, NULL);
    double secs = strtod(t + 13, NULL);
    ck_assert_msg(requests > 0, "no requests in: %s", r.out);
    /* Bytes counted in the window only: one 64-byte echo per request, give or
     * take the one in flight per connection at each edge. */
    ck_assert_msg(bytes >= (requests - 4) * 64 && bytes <= (requests + 4) * 64,
                  "%.0f bytes for %.0f requests: bytes of the warm-up counted?", bytes, requests);
    ck_assert_msg(secs >= 0.39 && secs < 0.6, "counted window %.3f s, not --duration", secs);
    server_stop(&p, 5);
}
END_TEST

/* --slice: two servers take turns, the first (--reference) before each of
 * the other's turns and once at the end; every turn counts requests, the
 * CPU time of its own server and of uco-load, and the turns add up to the
 * totals per server. */
START_TEST(test_uco_load_interleaves_servers_turn_by_turn)
{
    struct proc a, b;
    server_start(&a, ECHO_SERVER, "127.0.0.1", 0);
    server_start(&b, ECHO_SERVER, "127.0.0.1", 0);
    char ports[32], pids[32];
    snprintf(ports, sizeof(ports), "%d,%d", a.port, b.port);
    snprintf(pids, sizeof(pids), "%d,%d", (int)a.pid, (int)b.pid);
    char *argv[] = {UCO_LOAD, "echo", "--port", ports, "--cpu-pid", pids, "--reference",
                    "--connections", "4", "--slice", "0.05", "--settle", "0.01",
                    "--duration", "0.15", "--warmup", "0.05", "--json", NULL};
    struct output r;
    run_capture(argv, 20, &r);
    ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %#x: %s",
                  r.status, r.err);
    ck_assert_msg(strstr(r.out, "\"interleaved\":true") && strstr(r.out, "\"slices\":["),
                  "not an interleaved report: %s", r.out);
    python_check("import json,sys\n"
                 "d=json.load(sys.stdin)\n"
                 "t,s=d['targets'],d['slices']\n"
                 "assert d['reference'] and len(t)==2, d\n"
                 "assert [x['target'] for x in s]==[0,1,0,1,0,1,0], s\n"
                 "assert [x['seq'] for x in s]==list(range(7)), s\n"
                 "assert [x['cycle'] for x in s]==[0,0,1,1,2,2,2], s\n"
                 "for x in s:\n"
                 "  l=x['latency_us']\n"
                 "  assert x['requests']>0 and x['errors']==0, x\n"
                 "  assert x['server_cpu_ns']>0 and x['load_cpu_ns']>0, x\n"
                 "  assert 0<=x['steal_pct']<=100, x\n"
                 "  assert 0.045<x['duration_s']<0.2, x\n"
                 "  assert x['bytes']==64*x['requests'], x\n"
                 "  assert 0<=l['p50']<=l['p99']<=l['p99_9']<=l['max'], l\n"
                 "for i in (0,1):\n"
                 "  assert t[i]['errors']==0, t\n"
                 "  assert t[i]['requests']==sum(x['requests'] for x in s if x['target']==i), t\n",
                 r.out);
    ck_assert_msg(proc_alive(&a) && proc_alive(&b), "a server died: %s %s", a.errs, b.errs);
    server_stop(&a, 5);
    server_stop(&b, 5);
}
END_TEST

START_TEST(test_uco_load_rejects_bad_arguments_with_status_2)
{
    static const struct {
        const char *args[8];
        const char *says;
    } cases[] = {
        {{NULL}, "missing mode"},
        {{"ping"}, "unknown mode"},
        {{"echo", "--connections", "0"}, "--connections"},
        {{"echo", "--connections", "many"}, "--connections"},
        {{"echo", "--size", "12q"}, "--size"},
        {{"echo", "--size", "0"}, "--size"},
        {{"echo", "--duration", "-1"}, "--duration"},
        {{"echo", "--duration", "soon"}, "--duration"},
        {{"echo", "--pipeline", "0"}, "--pipeline"},
        {{"echo", "--warmup", "-1"}, "--warmup"},
        {{"echo", "--warmup", "later"}, "--warmup"},
        {{"echo", "--port", "70000"}, "--port"},
        {{"echo", "--frobnicate"}, "--frobnicate"},
        {{"echo", "--size"}, "--size needs a value"},
        {{"echo", "extra"}, "extra"},
        {{"echo", "--url", "http://x/"}, "--url does not apply"},
        {{"echo", "--port", "7000,7001"}, "need --slice"},
        {{"echo", "--port", "7000,,7001", "--slice", "1"}, "not a list"},
        {{"echo", "--port", "7000,", "--slice", "1"}, "not a list"},
        {{"echo", "--reference"}, "--reference needs --slice"},
        {{"echo", "--settle", "0.1"}, "--settle needs --slice"},
        {{"echo", "--slice", "1", "--cpu-pid", "1,1"}, "2 pids for 1 ports"},
        {{"echo", "--slice", "1", "--cpu-pid", "4194304"}, "no process 4194304"},
        {{"echo", "--slice", "1", "--cpu-pid", "2147483647"}, "--cpu-pid"},
        {{"echo", "--slice", "0"}, "--slice"},
        {{"http", "--url", "http://h/", "--slice", "1"}, "--slice does not apply"},
        {{"http"}, "--url"},
        {{"http", "--url", "https://example.com/"}, "https"},
        {{"http", "--url", "http://:80/"}, "no host"},
        {{"http", "--url", "http://host:0/"}, "port"},
        {{"http", "--url", "http://host/", "--size", "10"}, "--size does not apply"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[10] = {UCO_LOAD};
        for (int j = 0; cases[i].args[j]; j++)
            argv[j + 1] = (char *)cases[i].args[j];
        struct output r;
        run_capture(argv, 10, &r);
        ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 2,
                      "case %zu (%s): status %#x", i, cases[i].says, r.status);
        ck_assert_msg(strstr(r.err, cases[i].says), "case %zu: stderr does not say '%s': %s",
                      i, cases[i].says, r.err);
        ck_assert_msg(r.out[0] == '\0', "case %zu: wrote to stdout: %s", i, r.out);
    }
}
END_TEST

/* A small HTTP/1.1 server (a uco task per connection, in a child process)
 * whose responses on /mixed cycle through every framing uco-load reads:
 * Content-Length, chunked with an extension and a trailer, 100 Continue
 * then 204, and a body ending at close.  /fail answers 500. */
static const char *const mixed[] = {
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"),
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthe body runs to the close",
};

static intptr_t http_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    size_t len = 0;
    for (unsigned k = 0;; k++) {
        char *end;
        while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
            ssize_t n = len < sizeof(buf) ? uco_recv(fd, buf + len, sizeof(buf) - len, 0) : -1;
            if (n <= 0)
                goto out;
            len += (size_t)n;
        }
        const char *resp = !strncmp(buf, "GET /fail ", 10)
                               ? "HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\nnope"
                               : mixed[k % 4];
        if (uco_send_all(fd, resp, strlen(resp), NULL) < 0 || strstr(resp, "close\r\n"))
            break;
        size_t used = (size_t)(end + 4 - buf);
        memmove(buf, buf + used, len - used);
        len -= used;
    }
out:
    uco_close(fd);
    return 0;
}

static intptr_t http_server(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = uco_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            uco_detach(uco_spawn(http_conn, (void *)(intptr_t)fd));
    }
    return 0;
}

START_TEST(test_uco_load_http_reads_every_body_framing_and_counts_failures)
{
    int lfd = uco_listen_tcp("127.0.0.1", 0, 128);
    ck_assert_int_ge(lfd, 0);
    int port = uco_local_port(lfd);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        uco_run(http_server, (void *)(intptr_t)lfd, NULL);
        _exit(0);
    }
    close(lfd);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/mixed", port);
    char *argv[] = {UCO_LOAD, "http", "--url", url, "--connections", "4", "--duration", "1",
                    "--json", NULL};
    struct output r;
    run_capture(argv, 15, &r);
    ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %#x: %s",
                  r.status, r.err);
    static const char *const keys[] = {"requests", "requests_per_sec", "mb_per_sec", "errors",
                                       "latency_us", "p50", "p99", "p99_9", "max", NULL};
    check_json(r.out, keys); /* requests > 0, errors == 0 */
    ck_assert_msg(strstr(r.out, "\"mode\":\"http\""), "%s", r.out);
    /* 500s are errors, not requests. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/fail", port);
    run_capture(argv, 15, &r);
    ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %#x", r.status);
    ck_assert_msg(strstr(r.out, "\"requests\":0,"), "%s", r.out);
    ck_assert_msg(!strstr(r.out, "\"errors\":0,"), "%s", r.out);
    kill(pid, SIGKILL);
    wait_for(pid, NULL, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("echo");
    TCase *tc = tcase_create("echo");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_server_echoes_random_payloads_from_1_byte_to_1_mib_over_1000_connections);
    tcase_add_test(tc, test_server_holds_10000_concurrent_connections);
    tcase_add_test(tc, test_server_connections_do_not_fragment_the_address_space);
    tcase_add_test(tc, test_server_reset_and_half_closed_peers_do_not_disturb_others);
    tcase_add_test(tc, test_server_peer_that_never_reads_does_not_starve_others);
    tcase_add_test(tc, test_server_sigterm_finishes_echoes_in_progress_then_exits_0_promptly);
    tcase_add_test(tc, test_server_out_of_fds_logs_once_stays_up_and_serves_when_fds_free_up);
    tcase_add_test(tc, test_server_listens_on_ipv6_and_rejects_bad_options);
    tcase_add_test(tc, test_thread_baseline_echoes_bytes_and_exits_0_on_sigterm);
    tcase_add_test(tc, test_epoll_baseline_echoes_bytes_and_exits_0_on_sigterm);
    tcase_add_test(tc, test_uring_baseline_echoes_bytes_and_exits_0_on_sigterm);
    tcase_add_test(tc, test_uring_baseline_with_a_small_ring_waits_for_buffers_and_pauses_a_hog);
    tcase_add_test(tc, test_uco_load_echo_reports_requests_and_no_errors);
    tcase_add_test(tc, test_uco_load_json_is_one_object_with_the_expected_keys);
    tcase_add_test(tc, test_uco_load_warmup_counts_only_the_window_it_marks);
    tcase_add_test(tc, test_uco_load_interleaves_servers_turn_by_turn);
    tcase_add_test(tc, test_uco_load_rejects_bad_arguments_with_status_2);
    tcase_add_test(tc, test_uco_load_http_reads_every_body_framing_and_counts_failures);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
