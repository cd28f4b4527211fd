/*
 * echo_threads: the echo server as a thread per connection with blocking
 * I/O, the classic design; a baseline for examples/echo_server.c (it does
 * not use uco).
 *
 *     echo_threads [--host H] [--port P]     (defaults: all addresses, port 7000)
 *
 * Same protocol and behaviour as echo_server: prints "listening on
 * HOST:PORT", echoes every byte until the peer closes; on SIGINT/SIGTERM it
 * stops accepting, lets connections echo what has already arrived, waits
 * for them (5 s at most) and exits 0.
 *
 * Threads: main accepts; a signal thread waits in sigwait(); one detached
 * thread per connection, with a small stack (10,000 threads at the default
 * 8 MiB would reserve 80 GB of address space).
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

#define DEFAULT_PORT 7000
#define BUF_SIZE (16 * 1024)          /* as echo_server's buffers */
#define THREAD_STACK (128 * 1024)
#define SEND_TIMEOUT_S 10             /* a peer that stops reading is dropped */
#define STOP_GRACE_S 5
#define BACKOFF_MIN_MS 5
#define BACKOFF_MAX_MS 100

struct conn {
    int fd;
    struct conn *prev, *next;
    char buf[BUF_SIZE];
};

/* Connections, for the stop: guarded by lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t all_done = PTHREAD_COND_INITIALIZER;
static struct conn conns = {.prev = &conns, .next = &conns};
static unsigned live;
static atomic_bool stopping;
static int listen_fd = -1;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Sends all of buf; -1 when the peer is gone or stuck (SO_SNDTIMEO). */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    for (;;) {
        ssize_t n = recv(c->fd, c->buf, sizeof(c->buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        /* 0: the peer is done, or the stop shut our read side down (recv
         * returns what had arrived first).  < 0: reset, this connection only. */
        if (n <= 0 || send_all(c->fd, c->buf, (size_t)n) < 0)
            break;
    }
    /* After a stop: closing with unread input makes the kernel send a
     * reset, which throws away echoes still queued in our socket; wait
     * (within the grace period) until the peer has acknowledged them. */
    int queued;
    double until = now_s() + STOP_GRACE_S;
    while (atomic_load(&stopping) && ioctl(c->fd, SIOCOUTQ, &queued) == 0 && queued > 0 &&
           now_s() < until)
        sleep_ms(1);
    /* Unlinked and closed under the lock: the stopper never shuts down an
     * fd number that has been reused. */
    pthread_mutex_lock(&lock);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    close(c->fd);
    if (--live == 0)
        pthread_cond_broadcast(&all_done);
    pthread_mutex_unlock(&lock);
    free(c);
    return NULL;
}

static void conn_start(int fd, const pthread_attr_t *attr)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {.tv_sec = SEND_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct conn *c = malloc(sizeof(*c));
    if (!c) {
        srv_log_accept_error("echo_threads", ENOMEM);
        close(fd);
        return;
    }
    c->fd = fd;
    pthread_mutex_lock(&lock);
    c->next = &conns;
    c->prev = conns.prev;
    c->prev->next = c;
    conns.prev = c;
    live++;
    pthread_t t;
    int err = pthread_create(&t, attr, conn_main, c);
    if (err) { /* out of threads: drop this one connection */
        c->prev->next = c->next;
        c->next->prev = c->prev;
        live--;
        close(fd);
        free(c);
    }
    pthread_mutex_unlock(&lock);
    if (err) {
        srv_log_accept_error("echo_threads", err);
        sleep_ms(BACKOFF_MIN_MS);
    }
}

/* Waits for SIGINT/SIGTERM (blocked in every thread), then wakes the
 * accept loop: shutdown() on a listening socket makes accept() fail. */
static void *signal_main(void *arg)
{
    sigset_t *sigs = arg;
    int sig;
    while (sigwait(sigs, &sig) != 0)
        ;
    atomic_store(&stopping, true);
    shutdown(listen_fd, SHUT_RDWR);
    /* A second signal: stop at once. */
    while (sigwait(sigs, &sig) != 0)
        ;
    _exit(0);
}

/* Waits until every connection thread is gone, or until `until`. */
static bool wait_conns(double until)
{
    pthread_mutex_lock(&lock);
    while (live) {
        double left = until - now_s();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long ns = ts.tv_nsec + (long)((left - (double)(long)left) * 1e9);
        ts.tv_sec += (time_t)left + ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&all_done, &lock, &ts);
    }
    bool done = live == 0;
    pthread_mutex_unlock(&lock);
    return done;
}

/* Shuts every connection down (how: SHUT_RD to let it finish, SHUT_RDWR to end it). */
static void shutdown_conns(int how)
{
    pthread_mutex_lock(&lock);
    for (struct conn *c = conns.next; c != &conns; c = c->next)
        shutdown(c->fd, how);
    pthread_mutex_unlock(&lock);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: echo_threads [--host H] [--port P]\n"
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
            if ((port = srv_parse_port("echo_threads", optarg)) < 0)
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
        fprintf(stderr, "echo_threads: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    srv_raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    /* Blocked before any thread starts, so every thread inherits the mask
     * and only sigwait() sees them. */
    static sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    listen_fd = srv_listen_tcp(host, port, 0);
    if (listen_fd < 0) {
        fprintf(stderr, "echo_threads: cannot listen on %s port %d: %s\n",
                host && *host ? host : "all addresses", port, strerror(-listen_fd));
        return 1;
    }
    if (srv_print_listening(listen_fd) != 0) {
        perror("echo_threads: stdout");
        return 1;
    }

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, THREAD_STACK);
    pthread_t sig_thread;
    if (pthread_create(&sig_thread, &attr, signal_main, &sigs) != 0) {
        fprintf(stderr, "echo_threads: cannot start the signal thread\n");
        return 1;
    }
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);

    int backoff = 0;
    while (!atomic_load(&stopping)) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            backoff = 0;
            conn_start(fd, &attr);
            continue;
        }
        int err = errno;
        if (atomic_load(&stopping))
            break;
        switch (err) {
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            /* The connection waits in the backlog; pause, longer while it lasts. */
            srv_log_accept_error("echo_threads", err);
            backoff = backoff ? backoff * 2 : BACKOFF_MIN_MS;
            if (backoff > BACKOFF_MAX_MS)
                backoff = BACKOFF_MAX_MS;
            sleep_ms(backoff);
            break;
        case EINTR:
        case ECONNABORTED:
        case EAGAIN:
        case EPROTO:
        case EPERM:
        case ENETDOWN:
        case ENONET:
        case EHOSTDOWN:
        case EHOSTUNREACH:
        case ENETUNREACH:
        case EOPNOTSUPP:
            break;
        default:
            fprintf(stderr, "echo_threads: accept: %s\n", strerror(err));
            return 1;
        }
    }

    /* Stop: no more accepts; idle connections see end of stream at once,
     * busy ones echo what has arrived first; after the grace, end them. */
    close(listen_fd);
    shutdown_conns(SHUT_RD);
    if (!wait_conns(now_s() + STOP_GRACE_S)) {
        shutdown_conns(SHUT_RDWR);
        wait_conns(now_s() + 1);
    }
    return 0;
}
