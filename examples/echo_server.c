/*
 * echo_server: a TCP echo server on uco, meant to be copied.
 *
 *     echo_server [--host H] [--port P] [--buffers N]
 *                 (defaults: all addresses, port 7000, 4096 buffers of 16 KiB)
 *
 * Prints "listening on HOST:PORT" once it listens (--port 0 picks a free
 * port), echoes every byte back until the peer closes, and on SIGINT or
 * SIGTERM stops accepting, echoes what has already arrived, waits for its
 * connections and exits 0.  A second signal stops at once.
 *
 * The moving parts:
 *  - one task per connection (uco_spawn + uco_detach): the code reads as
 *    blocking code, and an idle connection costs a parked task;
 *  - one multishot accept feeds the connection tasks; running out of file
 *    descriptors (EMFILE, ENFILE) is logged once and retried with a growing
 *    pause, the pending connections wait in the listen backlog;
 *  - input arrives through a multishot recv per connection into one
 *    provided buffer ring shared by all connections: one SQE keeps
 *    receiving, and each buffer goes back to the ring as soon as its echo
 *    is sent.  A connection holds at most CONN_BUFS buffers (the stream's
 *    cap): a peer that sends without reading stops being received from
 *    once its task is stuck echoing, so TCP flow control pushes it back and
 *    it cannot drain buffers the other connections need.  When the ring
 *    does run dry (more busy connections than buffers), connections wait
 *    for buffers in turn, without spinning.  One ring, not one per
 *    connection: its buffers stay warm in the caches and the kernel picks
 *    from one list.  Where the ring cannot be set up, connections receive
 *    with plain recvs into a buffer of their own;
 *  - signals are read from a signalfd through the ring (they are blocked,
 *    so they arrive nowhere else): no handler, no async-signal-safety rules;
 *  - the stop: the acceptor and the listening socket close; connections
 *    parked for their next message are cancelled (uco_cancel); every
 *    connection then echoes the input that has already reached the server,
 *    finishing an echo in progress, and closes without waiting for more;
 *    the server waits for them (a wait group), STOP_GRACE at most.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <uco.h>

#define DEFAULT_PORT 7000
#define BACKLOG 4096 /* the kernel caps it at net.core.somaxconn */

/* The shared ring: RING_BUFS buffers of 16 KiB (64 MiB, allocated up
 * front, touched by the kernel only as data arrives), and each connection
 * holds CONN_BUFS of them at most (64 KiB in flight).  4096 buffers let
 * 1,000 connections sit on full buffers at once; more connections than
 * that share what comes back.  --buffers changes RING_BUFS. */
#define RING_BUFS 4096
#define CONN_BUFS 4
#define BUF_SIZE (16 * 1024)

/* A peer that stops reading while we echo holds a task, a socket and a
 * ring for nothing; past this long without being able to send, it is
 * dropped. */
#define SEND_TIMEOUT UCO_SEC(10)
/* After a stop, connections get this long to echo what had arrived. */
#define STOP_GRACE UCO_SEC(5)
/* Pause between accept retries when out of fds or memory. */
#define BACKOFF_MIN UCO_MSEC(5)
#define BACKOFF_MAX UCO_MSEC(100)
/* The same accept failure is logged at most this often. */
#define LOG_INTERVAL UCO_SEC(60)

struct server;

struct conn {
    struct server *srv;
    uco_task *task;
    int fd;
    uco_recv_stream *rs;    /* a multishot recv into the ring, or NULL: */
    char *buf;              /* ... plain recvs into this buffer */
    bool waiting;           /* parked for the next message: a stop cancels it */
    bool cancel_sent;       /* ... and did */
    struct conn *prev, *next;
};

struct server {
    int lfd, sfd;
    unsigned nbufs;         /* --buffers */
    uco_bufring *br;        /* the shared ring, or NULL: plain recvs */
    uco_event *stop;        /* set by a signal or a fatal accept error */
    uco_wg *live;           /* counts connection tasks */
    struct conn conns;      /* list head: every connection task */
    bool stopping;          /* no new input is awaited */
    bool hard_stop;         /* nothing more is echoed */
    int exit_code;
    uint64_t logged_at;     /* last accept failure report */
    unsigned long unlogged; /* failures since then */
};

static void usage(FILE *f)
{
    fprintf(f, "usage: echo_server [--host H] [--port P] [--buffers N]\n"
               "  --host H      address to listen on (default: all IPv6 and IPv4 addresses)\n"
               "  --port P      TCP port, 0 picks a free one (default: %d)\n"
               "  --buffers N   16 KiB receive buffers shared by all connections, a power\n"
               "                of 2 from %d to 32768 (default: %d)\n",
            DEFAULT_PORT, CONN_BUFS, RING_BUFS);
}

/* ---- one connection ---- */

/* The next chunk of input: > 0 bytes in *data, 0 at end of stream, or
 * -errno.  Waits for input. */
static ssize_t conn_recv(struct conn *c, void **data, unsigned *id)
{
    if (c->rs)
        return uco_recv_stream_next(c->rs, data, id);
    *data = c->buf;
    *id = 0;
    return uco_recv(c->fd, c->buf, BUF_SIZE, 0);
}

/* After a stop: the next chunk of input that has already reached the
 * server, without waiting for more.  -ECANCELED when there is none. */
static ssize_t conn_recv_arrived(struct conn *c, void **data, unsigned *id)
{
    /* A deadline of now: what is queued comes back, any wait fails at once. */
    uint64_t saved;
    uco_timeout_begin(0, &saved);
    ssize_t n = conn_recv(c, data, id);
    uco_timeout_end(saved);
    if (n != -ETIMEDOUT)
        return n;
    /* Bytes still in the socket are on their way to us: wait for them. */
    int unread = 0;
    if (ioctl(c->fd, FIONREAD, &unread) == 0 && unread > 0)
        return conn_recv(c, data, id);
    return -ECANCELED;
}

/* The next chunk to echo, 0 at end of stream, < 0 to close. */
static ssize_t conn_next(struct conn *c, void **data, unsigned *id)
{
    struct server *s = c->srv;
    for (;;) {
        if (s->hard_stop)
            return -ECANCELED;
        ssize_t n;
        if (s->stopping) {
            n = conn_recv_arrived(c, data, id);
        } else {
            c->waiting = true;
            n = conn_recv(c, data, id);
            c->waiting = false;
        }
        if (c->cancel_sent) { /* stopped while waiting here */
            c->cancel_sent = false;
            if (n == -ECANCELED)
                continue; /* now echo what has arrived, then close */
            /* The stop raced with input that completed anyway: the runtime
             * returned it and keeps the cancellation pending for our next
             * await (see uco_cancel).  Take it here, or it would cut the
             * echo of this chunk short. */
            (void)uco_yield();
        }
        return n;
    }
}

static void conn_release(struct conn *c, unsigned id)
{
    if (c->rs)
        uco_buf_release(c->srv->br, id);
}

/* Sends one chunk back.  The first send usually takes it all and needs no
 * timer; a peer that is slow to read gets SEND_TIMEOUT to take the rest. */
static int echo(int fd, const char *data, size_t len)
{
    ssize_t n = uco_send(fd, data, len, 0);
    if (n < 0 || (size_t)n == len)
        return n < 0 ? (int)n : 0;
    uint64_t saved;
    uco_timeout_begin(SEND_TIMEOUT, &saved);
    n = uco_send_all(fd, data + n, len - (size_t)n, NULL);
    uco_timeout_end(saved);
    return n < 0 ? (int)n : 0;
}

/* After a stop: closing a socket with unread input makes the kernel send
 * a reset, and a reset throws away echoes still queued in our socket.  So
 * while echoes are on their way (bytes not yet acknowledged), send our end
 * of stream behind them and read, dropping it, whatever still comes until
 * the peer closes too.  The stop's grace period bounds the wait. */
static void conn_linger(struct conn *c)
{
    int queued = 0;
    if (c->srv->hard_stop || ioctl(c->fd, SIOCOUTQ, &queued) < 0 || queued == 0)
        return;
    if (uco_shutdown(c->fd, SHUT_WR) < 0)
        return;
    void *data;
    unsigned id;
    while (conn_recv(c, &data, &id) > 0)
        conn_release(c, id);
}

static intptr_t conn_main(void *arg)
{
    struct conn *c = arg;
    struct server *s = c->srv;
    if (s->br && uco_recv_multishot_max(c->fd, s->br, CONN_BUFS, &c->rs) < 0)
        c->rs = NULL;
    if (!c->rs)
        c->buf = malloc(BUF_SIZE);
    if (c->rs || c->buf) {
        void *data;
        unsigned id;
        ssize_t n;
        while ((n = conn_next(c, &data, &id)) > 0) {
            int err = echo(c->fd, data, (size_t)n);
            conn_release(c, id);
            /* ECONNRESET, EPIPE, ETIMEDOUT: this peer is gone or stuck,
             * which ends this connection and nothing else. */
            if (err < 0)
                break;
        }
        if (n == -ECANCELED && s->stopping)
            conn_linger(c);
    }
    /* Neither close waits on the peer, and neither is a cancellation
     * point: a stopped connection always cleans up. */
    if (c->rs)
        uco_recv_stream_close(c->rs); /* queued buffers go back to the ring */
    uco_close(c->fd);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    uco_wg_done(s->live);
    free(c->buf);
    free(c);
    return 0;
}

/* ---- accepting ---- */

/* Logs an accept failure, at most once per LOG_INTERVAL: a server out of
 * file descriptors fails thousands of times a second, its log should not. */
static void log_accept_error(struct server *s, int err)
{
    uint64_t now = uco_now();
    if (s->logged_at && now - s->logged_at < LOG_INTERVAL) {
        s->unlogged++;
        return;
    }
    if (s->unlogged)
        fprintf(stderr, "echo_server: accept: %s (%lu more failures since the last report); "
                        "retrying\n", strerror(-err), s->unlogged);
    else
        fprintf(stderr, "echo_server: accept: %s; backing off and retrying "
                        "(reported at most once a minute)\n", strerror(-err));
    s->logged_at = now;
    s->unlogged = 0;
}

static void conn_start(struct server *s, int fd)
{
    /* Echoes are small writes answering small reads: do not let Nagle hold
     * one back waiting for the peer's ACK. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct conn *c = calloc(1, sizeof(*c));
    if (c) {
        c->srv = s;
        c->fd = fd;
        c->task = uco_spawn(conn_main, c);
    }
    if (!c || !c->task) {
        log_accept_error(s, -ENOMEM);
        free(c);
        uco_close(fd);
        return;
    }
    c->next = &s->conns;
    c->prev = s->conns.prev;
    c->prev->next = c;
    s->conns.prev = c;
    uco_wg_add(s->live, 1);
    uco_detach(c->task);
}

static intptr_t accept_main(void *arg)
{
    struct server *s = arg;
    uco_acceptor *a = NULL;
    uint64_t backoff = 0;
    int ret = uco_accept_multishot(s->lfd, SOCK_CLOEXEC, &a);
    while (ret == 0) {
        int fd = uco_acceptor_next(a);
        if (fd >= 0) {
            backoff = 0;
            if (s->stopping) { /* accepted as the stop came in */
                uco_close(fd);
                break;
            }
            conn_start(s, fd);
            continue;
        }
        switch (-fd) {
        case ECANCELED: /* the stop */
            break;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            /* Out of fds or memory: the connection stays in the backlog.
             * Pause, growing the pause while it lasts, so the retries do
             * not spin; closing connections free what we need. */
            log_accept_error(s, fd);
            backoff = backoff ? backoff * 2 : BACKOFF_MIN;
            if (backoff > BACKOFF_MAX)
                backoff = BACKOFF_MAX;
            if (uco_sleep(backoff) == -ECANCELED)
                break;
            continue;
        case ECONNABORTED: /* the peer gave up before we took it */
        case EINTR:
        case EAGAIN:
        case EPROTO:
        case EPERM: /* refused by a firewall rule */
        case ENETDOWN:
        case ENONET:
        case EHOSTDOWN:
        case EHOSTUNREACH:
        case ENETUNREACH:
        case EOPNOTSUPP:
            continue;
        default:
            ret = fd;
            continue;
        }
        break;
    }
    if (ret < 0) { /* the listening socket itself is broken */
        fprintf(stderr, "echo_server: accept: %s\n", strerror(-ret));
        s->exit_code = 1;
        uco_event_set(s->stop);
    }
    if (a)
        uco_acceptor_close(a); /* closes what it accepted and we never took */
    uco_close(s->lfd);
    return 0;
}

/* ---- stopping ---- */

/* Cancels every connection task: whatever it awaits returns -ECANCELED. */
static void stop_now(struct server *s)
{
    s->hard_stop = true;
    for (struct conn *c = s->conns.next; c != &s->conns; c = c->next)
        uco_cancel(c->task);
}

/* The first SIGINT/SIGTERM stops gently, a second one at once. */
static intptr_t signal_main(void *arg)
{
    struct server *s = arg;
    struct signalfd_siginfo si;
    for (int seen = 0;;) {
        ssize_t n = uco_read(s->sfd, &si, sizeof(si), -1);
        if (n == -ECANCELED)
            break;
        if (n == -EINTR || n == -EAGAIN)
            continue;
        if (n != (ssize_t)sizeof(si)) {
            fprintf(stderr, "echo_server: reading signals: %s\n",
                    n < 0 ? strerror((int)-n) : "short read");
            s->exit_code = 1;
            uco_event_set(s->stop);
            break;
        }
        if (seen++ == 0)
            uco_event_set(s->stop);
        else
            stop_now(s);
    }
    return 0;
}

static intptr_t server_main(void *arg)
{
    struct server *s = arg;
    s->conns.next = s->conns.prev = &s->conns;
    if (uco_event_create(&s->stop) < 0 || uco_wg_create(&s->live) < 0) {
        fprintf(stderr, "echo_server: out of memory\n");
        return 1;
    }
    /* Said once: without the ring the server still works, a bit slower. */
    int ret = uco_bufring_create(s->nbufs, BUF_SIZE, &s->br);
    if (ret < 0) {
        fprintf(stderr, "echo_server: no provided buffer ring (%s): "
                        "receiving into per-connection buffers\n", strerror(-ret));
        s->br = NULL;
    }
    uco_task *sig = uco_spawn(signal_main, s);
    uco_task *acc = sig ? uco_spawn(accept_main, s) : NULL;
    if (!acc) {
        fprintf(stderr, "echo_server: out of memory\n");
        if (sig) {
            uco_cancel(sig);
            uco_join(sig, NULL);
        }
        uco_close(s->lfd);
        return 1;
    }

    uco_event_wait(s->stop);

    /* 1. Stop accepting: the acceptor and the listening socket close, new
     *    clients are refused from now on. */
    s->stopping = true;
    uco_cancel(acc);
    uco_join(acc, NULL);
    /* 2. Connections parked for their next message have nothing to finish:
     *    cancel them (they still echo input that has just arrived).  Those
     *    in the middle of an echo finish it, and any input that has already
     *    reached us, then close on their own. */
    for (struct conn *c = s->conns.next; c != &s->conns; c = c->next) {
        if (c->waiting) {
            c->cancel_sent = true;
            uco_cancel(c->task);
        }
    }
    /* 3. Wait for them, STOP_GRACE at most: a peer that keeps sending or
     *    stops reading does not hold the exit back. */
    uint64_t saved;
    uco_timeout_begin(STOP_GRACE, &saved);
    ret = uco_wg_wait(s->live);
    uco_timeout_end(saved);
    if (ret < 0) {
        stop_now(s);
        uco_wg_wait(s->live);
    }

    uco_cancel(sig);
    uco_join(sig, NULL);
    if (s->br)
        uco_bufring_destroy(s->br); /* every connection has given its buffers back */
    uco_wg_destroy(s->live);
    uco_event_destroy(s->stop);
    return s->exit_code;
}

/* ---- setup ---- */

static int parse_port(const char *arg, int *port)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < 0 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

/* "listening on 127.0.0.1:7000" or "listening on [::]:7000": the address
 * actually bound, with the port the kernel picked for --port 0. */
static int print_listening(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN];
    unsigned port;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
        printf("listening on [%s]:%u\n", host, port);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
        printf("listening on %s:%u\n", host, port);
    }
    return fflush(stdout) == 0 ? 0 : -EIO;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"buffers", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    const char *host = NULL;
    int port = DEFAULT_PORT, opt;
    unsigned nbufs = RING_BUFS;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            if (parse_port(optarg, &port) < 0) {
                fprintf(stderr, "echo_server: --port: '%s' is not a port number (0-65535)\n",
                        optarg);
                return 2;
            }
            break;
        case 'b': {
            char *end;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || v < CONN_BUFS || v > 32768 || (v & (v - 1))) {
                fprintf(stderr, "echo_server: --buffers: '%s' is not a power of 2 from %d "
                                "to 32768\n", optarg, CONN_BUFS);
                return 2;
            }
            nbufs = (unsigned)v;
            break;
        }
        case 'H':
            usage(stdout);
            return 0;
        default: /* getopt has named the problem */
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "echo_server: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    /* 10,000 connections need 10,000 fds; the soft limit is often 1,024. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* Sends use MSG_NOSIGNAL; this covers a closed stdout or stderr. */
    signal(SIGPIPE, SIG_IGN);

    /* Blocked before the ring (and any thread) exists, so SIGINT/SIGTERM
     * are only ever delivered through the signalfd. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    struct server srv = {.lfd = -1, .sfd = -1, .nbufs = nbufs};
    if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0 ||
        (srv.sfd = signalfd(-1, &sigs, SFD_CLOEXEC)) < 0) {
        perror("echo_server: signalfd");
        return 1;
    }

    srv.lfd = uco_listen_tcp(host, (uint16_t)port, BACKLOG);
    if (srv.lfd < 0) {
        fprintf(stderr, "echo_server: cannot listen on %s port %d: %s\n",
                host && *host ? host : "all addresses", port, strerror(-srv.lfd));
        return 1;
    }
    int ret = print_listening(srv.lfd);
    if (ret < 0) {
        fprintf(stderr, "echo_server: %s\n", strerror(-ret));
        return 1;
    }

    /* A bigger ring than the default: with thousands of connections, more
     * operations go out per submit and fewer completions overflow. */
    uco_config cfg = {.ring_entries = 4096};
    intptr_t rc = uco_run(server_main, &srv, &cfg);
    close(srv.sfd);
    if (rc < 0) {
        fprintf(stderr, "echo_server: %s\n", strerror((int)-rc));
        return 1;
    }
    return (int)rc;
}
