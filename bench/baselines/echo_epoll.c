/*
 * echo_epoll: the echo server as one thread, non-blocking sockets and
 * edge-triggered epoll, the design of most C event loops; a baseline for
 * examples/echo_server.c (it does not use uco).
 *
 *     echo_epoll [--host H] [--port P]       (defaults: all addresses, port 7000)
 *
 * Same protocol and behaviour as echo_server: prints "listening on
 * HOST:PORT", echoes every byte until the peer closes; on SIGINT/SIGTERM it
 * stops accepting, lets connections echo what has already arrived (5 s at
 * most) and exits 0.
 *
 * Edge-triggered means each readiness change is reported once: a
 * connection must read until EAGAIN or remember that it has not.  Each
 * connection owns one buffer; while part of it waits to be sent (the peer
 * reads slowly) nothing more is read, so TCP flow control pushes back on
 * the sender instead of our memory growing.  A connection that is still
 * ready after a budget of operations goes on a ready list and continues
 * next round, so one busy peer cannot starve the others.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

#define DEFAULT_PORT 7000
#define BUF_SIZE (16 * 1024)  /* as echo_server's buffers */
#define BUDGET 16             /* reads + writes per connection per round */
#define ACCEPT_BUDGET 64      /* accepts per round */
#define MAX_EVENTS 256
#define SEND_TIMEOUT_MS 10000 /* a peer that stops reading is dropped */
#define STOP_GRACE_MS 5000
#define BACKOFF_MIN_MS 5
#define BACKOFF_MAX_MS 100

struct conn {
    int fd;               /* -1 once closed (freed after the round) */
    size_t off, len;      /* buf[off, len) still to be sent */
    bool ready;           /* on the ready list */
    bool lingering;       /* stopped: input is dropped until the peer closes */
    long long stalled_at; /* when a send last hit EAGAIN, 0 if none pending */
    struct conn *prev, *next;   /* all connections */
    struct conn *next_ready;    /* the ready list, or the dead list */
    char buf[BUF_SIZE];
};

/* Sentinels told apart from connections in epoll_event.data.ptr. */
static char listener_tag, signal_tag;

static struct {
    int ep, lfd, sfd;
    struct conn all;                 /* list head */
    struct conn *ready, **ready_tail; /* to continue next round */
    struct conn *dead;               /* closed this round */
    unsigned nconns;
    bool accept_ready;               /* the listener has had an edge since its last EAGAIN */
    long long accept_retry_at;       /* > 0: accepting paused until then (EMFILE ...) */
    int backoff_ms;
    bool stopping;
    long long stop_deadline;
} S;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_close(struct conn *c)
{
    close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    S.nconns--;
    /* Later events of this round may still point at c: free it after the round. */
    if (!c->ready) {
        c->next_ready = S.dead;
        S.dead = c;
    } /* else the ready list frees it when it gets there */
}

static void make_ready(struct conn *c)
{
    if (c->ready)
        return;
    c->ready = true;
    c->next_ready = NULL;
    *S.ready_tail = c;
    S.ready_tail = &c->next_ready;
}

/* Moves bytes until the socket says EAGAIN, the peer is done, or the
 * budget runs out (then the connection goes on the ready list). */
static void conn_pump(struct conn *c)
{
    for (int i = 0; i < BUDGET; i++) {
        if (c->off < c->len) {
            ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
            if (n > 0) {
                c->off += (size_t)n;
                c->stalled_at = 0;
                if (c->off == c->len)
                    c->off = c->len = 0;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                /* The EPOLLOUT edge brings us back; the rest waits in buf. */
                if (!c->stalled_at)
                    c->stalled_at = now_ms();
                return;
            }
            conn_close(c); /* ECONNRESET, EPIPE: this connection only */
            return;
        }
        ssize_t n = recv(c->fd, c->buf, sizeof(c->buf), 0);
        if (n > 0) {
            if (!c->lingering) {
                c->off = 0;
                c->len = (size_t)n;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* Everything that had arrived is echoed: after a stop, done.
             * But closing with unread input makes the kernel send a reset,
             * which throws away echoes still queued in the socket: while
             * some are, send our end of stream behind them and drop input
             * until the peer closes (within the grace period). */
            int queued = 0;
            if (S.stopping && !c->lingering && ioctl(c->fd, SIOCOUTQ, &queued) == 0 &&
                queued > 0 && shutdown(c->fd, SHUT_WR) == 0)
                c->lingering = true;
            else if (S.stopping && !c->lingering)
                conn_close(c);
            return;
        }
        conn_close(c); /* 0: end of stream (all echoed); < 0: reset */
        return;
    }
    make_ready(c);
}

static void accept_some(void)
{
    for (int i = 0; i < ACCEPT_BUDGET; i++) {
        int fd = accept4(S.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            switch (err) {
            case EAGAIN:
                S.accept_ready = false; /* the next edge says when */
                return;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                /* The connection waits in the backlog.  No edge will come
                 * for it: retry on a timer, longer while this lasts. */
                srv_log_accept_error("echo_epoll", err);
                S.backoff_ms = S.backoff_ms ? S.backoff_ms * 2 : BACKOFF_MIN_MS;
                if (S.backoff_ms > BACKOFF_MAX_MS)
                    S.backoff_ms = BACKOFF_MAX_MS;
                S.accept_retry_at = now_ms() + S.backoff_ms;
                return;
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
            case EPERM:
            case ENETDOWN:
            case ENONET:
            case EHOSTDOWN:
            case EHOSTUNREACH:
            case ENETUNREACH:
            case EOPNOTSUPP:
                continue;
            default:
                fprintf(stderr, "echo_epoll: accept: %s\n", strerror(err));
                exit(1);
            }
        }
        S.backoff_ms = 0;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = malloc(sizeof(*c));
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.ptr = c};
        if (!c || epoll_ctl(S.ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            srv_log_accept_error("echo_epoll", c ? errno : ENOMEM);
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->off = c->len = 0;
        c->ready = false;
        c->lingering = false;
        c->stalled_at = 0;
        c->next = &S.all;
        c->prev = S.all.prev;
        c->prev->next = c;
        S.all.prev = c;
        S.nconns++;
        /* Data may have arrived before the ADD: the first edge is not
         * guaranteed to reach us, so look now. */
        conn_pump(c);
    }
    /* Budget spent: more may be waiting, and no new edge will say so. */
}

static void begin_stop(void)
{
    if (S.stopping)
        exit(0); /* a second signal: at once */
    S.stopping = true;
    S.stop_deadline = now_ms() + STOP_GRACE_MS;
    close(S.lfd);
    S.lfd = -1;
    S.accept_ready = false;
    /* Idle connections close at their next EAGAIN: look at each now. */
    for (struct conn *c = S.all.next; c != &S.all;) {
        struct conn *next = c->next;
        if (c->off == c->len)
            conn_pump(c);
        c = next;
    }
}

static void read_signals(void)
{
    struct signalfd_siginfo si;
    while (read(S.sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        begin_stop();
}

/* Connections whose peer has not read for SEND_TIMEOUT_MS are dropped.
 * A linear scan, but only once a second. */
static void drop_stalled(long long now)
{
    for (struct conn *c = S.all.next; c != &S.all;) {
        struct conn *next = c->next;
        if (c->stalled_at && now - c->stalled_at >= SEND_TIMEOUT_MS)
            conn_close(c);
        c = next;
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: echo_epoll [--host H] [--port P]\n"
               "  --host H   address to listen on (default: all IPv6 and IPv4 addresses)\n"
               "  --port P   TCP port, 0 picks a free one (default: %d)\n",
            DEFAULT_PORT);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    const char *host = NULL;
    int port = DEFAULT_PORT, opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            if ((port = srv_parse_port("echo_epoll", optarg)) < 0)
                return 2;
            break;
        case 'H':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "echo_epoll: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    srv_raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    S.all.prev = S.all.next = &S.all;
    S.ready_tail = &S.ready;
    if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0 ||
        (S.sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
        (S.ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        perror("echo_epoll: setup");
        return 1;
    }
    S.lfd = srv_listen_tcp(host, port, SOCK_NONBLOCK);
    if (S.lfd < 0) {
        fprintf(stderr, "echo_epoll: cannot listen on %s port %d: %s\n",
                host && *host ? host : "all addresses", port, strerror(-S.lfd));
        return 1;
    }
    struct epoll_event lev = {.events = EPOLLIN | EPOLLET, .data.ptr = &listener_tag};
    struct epoll_event sev = {.events = EPOLLIN | EPOLLET, .data.ptr = &signal_tag};
    if (epoll_ctl(S.ep, EPOLL_CTL_ADD, S.lfd, &lev) < 0 ||
        epoll_ctl(S.ep, EPOLL_CTL_ADD, S.sfd, &sev) < 0) {
        perror("echo_epoll: epoll_ctl");
        return 1;
    }
    if (srv_print_listening(S.lfd) != 0) {
        perror("echo_epoll: stdout");
        return 1;
    }
    S.accept_ready = true; /* connections may be queued before the ADD */

    struct epoll_event evs[MAX_EVENTS];
    long long next_scan = now_ms() + 1000;
    for (;;) {
        /* Block only when nothing is left over from the last round, and
         * not past the next timer (accept retry, stall scan, stop grace). */
        long long now = now_ms(), wake = next_scan;
        if (S.accept_retry_at && S.accept_retry_at < wake)
            wake = S.accept_retry_at;
        if (S.stopping && S.stop_deadline < wake)
            wake = S.stop_deadline;
        int timeout = (int)(wake > now ? wake - now : 0);
        if (S.ready || (S.accept_ready && !S.accept_retry_at))
            timeout = 0;
        int n = epoll_wait(S.ep, evs, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            perror("echo_epoll: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &listener_tag) {
                S.accept_ready = true;
            } else if (p == &signal_tag) {
                read_signals();
            } else {
                struct conn *c = p;
                if (c->fd >= 0 && !c->ready)
                    conn_pump(c);
            }
        }
        /* Continue the connections that used up their budget last round
         * (only those queued before this point: new ones wait a round). */
        struct conn *r = S.ready;
        S.ready = NULL;
        S.ready_tail = &S.ready;
        while (r) {
            struct conn *c = r;
            r = r->next_ready;
            c->ready = false;
            if (c->fd >= 0)
                conn_pump(c);
            else
                free(c);
        }
        now = now_ms();
        if (S.accept_retry_at && now >= S.accept_retry_at) {
            S.accept_retry_at = 0;
            S.accept_ready = true;
        }
        if (S.accept_ready && !S.accept_retry_at && !S.stopping)
            accept_some();
        if (now >= next_scan) {
            drop_stalled(now);
            next_scan = now + 1000;
        }
        while (S.dead) {
            struct conn *c = S.dead;
            S.dead = c->next_ready;
            free(c);
        }
        if (S.stopping && (S.nconns == 0 || now >= S.stop_deadline))
            break;
    }
    return 0;
}
