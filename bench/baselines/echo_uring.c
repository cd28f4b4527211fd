/*
 * echo_uring: the echo server on raw liburing, one thread, no coroutines:
 * the floor under examples/echo_server.c, i.e. what io_uring itself costs
 * once the runtime's tasks and stacks are taken away.
 *
 *     echo_uring [--host H] [--port P] [--buffers N]
 *                            (defaults: all addresses, port 7000, 8192 buffers)
 *
 * Same protocol and command line as echo_epoll: prints "listening on
 * HOST:PORT", echoes every byte until the peer closes; on SIGINT/SIGTERM it
 * stops accepting, echoes what it has already received (5 s at most) and
 * exits 0.  A second signal exits at once.
 *
 * The design is the cheapest one per message that stays correct:
 *  - one multishot accept, and per connection one multishot recv into a
 *    provided buffer ring shared by every connection: a message costs a
 *    completion in and a send out, no SQE to ask for the next read;
 *  - received buffers queue on their connection in arrival order; one send
 *    is in flight per connection, a short send is resent from where it
 *    stopped, and a buffer goes back to the ring once all of it is sent;
 *  - a connection holding CONN_MAX_BUFS buffers (its peer sends without
 *    reading) has its recv cancelled and re-armed when half of that is
 *    sent: TCP flow control pushes back on the sender, and one peer cannot
 *    take the shared ring from the others; the recv also carries a byte
 *    limit of what the connection may still take, so that the kernel does
 *    not fill more buffers before the cancel lands;
 *  - when the ring is empty a multishot recv ends with ENOBUFS; the
 *    connection waits on a list and re-arms as buffers come back;
 *  - signals are read from a signalfd through the ring.
 * The ring recycles buffers in FIFO order, so over time every buffer gets
 * touched: resident memory grows to N times the pages a message touches
 * (32 MiB for messages up to 4 KiB), whatever the connection count.  And
 * a ring shared by all has a limit: every peer that never reads keeps
 * CONN_MAX_BUFS buffers (more on a kernel without the byte limit, which
 * takes a multishot burst before the cancel lands), so a ring much smaller
 * than the default (tests use 64) survives only a few such peers.
 * On the stop, input that reaches the server after the recvs are cancelled
 * is not echoed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

#define DEFAULT_PORT 7000
#define SQ_ENTRIES 4096
#define CQ_ENTRIES 32768   /* multishot recvs post many completions per submit */
#define NBUFS 8192         /* the shared buffer ring (--buffers); a power of 2 */
#define NBUFS_MAX 32768    /* the kernel's limit */
#define BUF_SIZE (16 * 1024)
#define BGID 0
#define CONN_MAX_BUFS 8    /* 128 KiB queued on one connection at most (about) */
#define STOP_GRACE_MS 5000
#define BACKOFF_MIN_MS 5
#define BACKOFF_MAX_MS 100

/* What a completion is for: the low bits of its user_data; the rest is
 * the connection, if any (malloc's 16-byte alignment leaves 4 bits). */
enum tag { T_ACCEPT = 1, T_SIGNAL, T_RETRY, T_GRACE, T_RECV, T_SEND, T_CANCEL, T_IGNORE };
#define TAG_MASK 15u
_Static_assert(_Alignof(max_align_t) >= 16, "user_data tags need 16-byte malloc alignment");

struct conn {
    int fd;
    bool open;         /* may still receive: no end of stream, error or stop yet */
    bool failed;       /* a send failed: input is dropped */
    bool recv_armed;   /* a multishot recv is in the kernel */
    bool cancel_sent;  /* ... and a cancel for it too */
    bool send_busy;
    bool starved;      /* the last recv ended with ENOBUFS */
    bool waiting;      /* on the list of connections waiting for buffers */
    unsigned ncancel;  /* cancels whose completion has not arrived */
    unsigned nq;       /* queued buffers, head first */
    int head, tail;
    struct conn *prev, *next;   /* all connections */
    struct conn *wprev, *wnext; /* waiting for buffers */
};

static struct {
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    char *bufs;
    unsigned nbufs;
    unsigned free_bufs;   /* in the ring, as far as the completions reaped say */
    unsigned to_advance;  /* returned to the ring, not yet published */
    uint32_t *len, *off;  /* per buffer: bytes received, bytes sent */
    int *next;            /* per buffer: the next in its connection's queue */
    int lfd, sfd;
    struct signalfd_siginfo si;
    struct conn all, waiting;   /* list heads */
    unsigned nconns;
    bool accept_armed, retry_pending, stopping, done;
    bool nolimit;         /* the kernel takes no byte limit on a multishot recv */
    int backoff_ms;
    struct __kernel_timespec retry_ts, grace_ts;
} S;

/* A full SQ is handed to the kernel and the SQE retried, never dropped. */
static struct io_uring_sqe *get_sqe(void *p, enum tag t)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&S.ring)))
        io_uring_submit(&S.ring);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)p | t);
    return sqe;
}

static char *buf_at(int bid)
{
    return S.bufs + (size_t)bid * BUF_SIZE;
}

/* Back to the ring; published in one go before the next submit. */
static void buf_put(int bid)
{
    io_uring_buf_ring_add(S.br, buf_at(bid), BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(S.nbufs), (int)S.to_advance++);
    S.free_bufs++;
}

static void arm_accept(void)
{
    struct io_uring_sqe *sqe = get_sqe(NULL, T_ACCEPT);
    io_uring_prep_multishot_accept(sqe, S.lfd, NULL, NULL, SOCK_CLOEXEC);
    S.accept_armed = true;
}

static void arm_signal(void)
{
    struct io_uring_sqe *sqe = get_sqe(NULL, T_SIGNAL);
    io_uring_prep_read(sqe, S.sfd, &S.si, sizeof(S.si), 0);
}

static void arm_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(c, T_RECV);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    /* The byte limit (Linux 6.17+, in the field file_index shares) ends
     * the multishot once the connection's allowance is filled: without it
     * the kernel fills every buffer it can for a full socket before the
     * cancel sent at CONN_MAX_BUFS lands, and one peer that never reads
     * could take a small ring whole.  uco's recv stream does the same. */
    if (!S.nolimit)
        sqe->file_index = (CONN_MAX_BUFS - c->nq) * BUF_SIZE;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    c->recv_armed = true;
    c->cancel_sent = false;
    c->starved = false;
}

static void cancel_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(c, T_CANCEL);
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)c | T_RECV, 0);
    c->cancel_sent = true;
    c->ncancel++;
}

static void send_head(struct conn *c)
{
    int b = c->head;
    struct io_uring_sqe *sqe = get_sqe(c, T_SEND);
    io_uring_prep_send(sqe, c->fd, buf_at(b) + S.off[b], S.len[b] - S.off[b], MSG_NOSIGNAL);
    c->send_busy = true;
}

static void wait_add(struct conn *c)
{
    c->waiting = true;
    c->wnext = &S.waiting;
    c->wprev = S.waiting.wprev;
    c->wprev->wnext = c;
    S.waiting.wprev = c;
}

static void wait_del(struct conn *c)
{
    c->waiting = false;
    c->wprev->wnext = c->wnext;
    c->wnext->wprev = c->wprev;
}

static void drop_queue(struct conn *c)
{
    for (int b = c->head; b >= 0; b = S.next[b])
        buf_put(b);
    c->head = c->tail = -1;
    c->nq = 0;
}

/* Moves a connection on after any change: sends what is queued, pauses or
 * resumes its recv, and frees it once the kernel holds nothing of it (a
 * completion still to come would otherwise find freed memory). */
static void conn_update(struct conn *c)
{
    if (c->nq && !c->send_busy)
        send_head(c);
    if (c->recv_armed) {
        if (!c->cancel_sent && (!c->open || c->nq >= CONN_MAX_BUFS))
            cancel_recv(c);
    } else if (c->open && !c->waiting && c->nq <= CONN_MAX_BUFS / 2) {
        if (S.free_bufs && !c->starved)
            arm_recv(c);
        else
            wait_add(c);
    }
    if (!c->open && c->waiting)
        wait_del(c);
    if (!c->open && !c->recv_armed && !c->send_busy && !c->ncancel && !c->nq) {
        close(c->fd);
        c->prev->next = c->next;
        c->next->prev = c->prev;
        S.nconns--;
        free(c);
    }
}

static void on_recv(struct conn *c, const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        c->recv_armed = false;
    if (cqe->res > 0) {
        int b = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        S.free_bufs--;
        if (c->failed) {
            buf_put(b);
        } else {
            S.len[b] = (uint32_t)cqe->res;
            S.off[b] = 0;
            S.next[b] = -1;
            if (c->tail >= 0)
                S.next[c->tail] = b;
            else
                c->head = b;
            c->tail = b;
            c->nq++;
        }
    } else if (cqe->res == -ENOBUFS) {
        c->starved = true;
    } else if (cqe->res == -EINVAL && !S.nolimit) {
        S.nolimit = true; /* an older kernel: re-armed without the limit */
    } else if (cqe->res != -ECANCELED) {
        c->open = false; /* 0: end of stream (what came is still echoed); < 0: reset */
    }
    conn_update(c);
}

static void on_send(struct conn *c, int res)
{
    c->send_busy = false;
    if (res > 0) {
        int b = c->head;
        S.off[b] += (uint32_t)res;
        if (S.off[b] == S.len[b]) {
            c->head = S.next[b];
            if (c->head < 0)
                c->tail = -1;
            c->nq--;
            buf_put(b);
        }
    } else { /* EPIPE, ECONNRESET: this connection only */
        drop_queue(c);
        c->open = false;
        c->failed = true;
    }
    conn_update(c);
}

static void on_accept(const struct io_uring_cqe *cqe)
{
    bool more = cqe->flags & IORING_CQE_F_MORE;
    int res = cqe->res;
    if (!more)
        S.accept_armed = false;
    if (res >= 0) {
        struct conn *c = S.stopping ? NULL : calloc(1, sizeof(*c));
        if (!c) {
            if (!S.stopping)
                srv_log_accept_error("echo_uring", ENOMEM);
            close(res);
        } else {
            int one = 1;
            setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            c->fd = res;
            c->open = true;
            c->head = c->tail = -1;
            c->next = &S.all;
            c->prev = S.all.prev;
            c->prev->next = c;
            S.all.prev = c;
            S.nconns++;
            S.backoff_ms = 0;
            conn_update(c);
        }
    } else {
        switch (-res) {
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            /* The connection waits in the backlog; try again later, and
             * later still while this lasts. */
            srv_log_accept_error("echo_uring", -res);
            S.backoff_ms = S.backoff_ms ? S.backoff_ms * 2 : BACKOFF_MIN_MS;
            if (S.backoff_ms > BACKOFF_MAX_MS)
                S.backoff_ms = BACKOFF_MAX_MS;
            if (more && !S.retry_pending)
                io_uring_prep_cancel64(get_sqe(NULL, T_IGNORE), T_ACCEPT, 0);
            S.retry_pending = true;
            break;
        case ECANCELED:
            break;
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
            break;
        default:
            fprintf(stderr, "echo_uring: accept: %s\n", strerror(-res));
            exit(1);
        }
    }
    if (!S.accept_armed && !S.stopping) {
        if (S.retry_pending) {
            S.retry_ts.tv_sec = S.backoff_ms / 1000;
            S.retry_ts.tv_nsec = (long long)(S.backoff_ms % 1000) * 1000000;
            io_uring_prep_timeout(get_sqe(NULL, T_RETRY), &S.retry_ts, 0, 0);
        } else {
            arm_accept();
        }
    }
}

static void begin_stop(void)
{
    if (S.stopping)
        exit(0); /* a second signal: at once */
    S.stopping = true;
    if (S.accept_armed)
        io_uring_prep_cancel64(get_sqe(NULL, T_IGNORE), T_ACCEPT, 0);
    close(S.lfd); /* the ring keeps its own reference until the cancel */
    S.grace_ts.tv_sec = STOP_GRACE_MS / 1000;
    S.grace_ts.tv_nsec = (long long)(STOP_GRACE_MS % 1000) * 1000000;
    io_uring_prep_timeout(get_sqe(NULL, T_GRACE), &S.grace_ts, 0, 0);
    for (struct conn *c = S.all.next; c != &S.all;) {
        struct conn *next = c->next;
        c->open = false;
        conn_update(c);
        c = next;
    }
}

static void handle(const struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    struct conn *c = (struct conn *)(uintptr_t)(ud & ~(uint64_t)TAG_MASK);
    switch (ud & TAG_MASK) {
    case T_ACCEPT:
        on_accept(cqe);
        break;
    case T_SIGNAL:
        if (cqe->res == (int)sizeof(S.si))
            begin_stop();
        arm_signal();
        break;
    case T_RETRY:
        S.retry_pending = false;
        if (!S.stopping && !S.accept_armed)
            arm_accept();
        break;
    case T_GRACE:
        S.done = true;
        break;
    case T_RECV:
        on_recv(c, cqe);
        break;
    case T_SEND:
        on_send(c, cqe->res);
        break;
    case T_CANCEL:
        c->ncancel--;
        conn_update(c);
        break;
    default: /* T_IGNORE; LIBURING_UDATA_TIMEOUT is not ours to see */
        break;
    }
}

/* Connections that found the ring empty re-arm, as many as it now holds. */
static void serve_waiting(void)
{
    unsigned budget = S.free_bufs;
    while (budget && S.waiting.wnext != &S.waiting) {
        struct conn *c = S.waiting.wnext;
        wait_del(c);
        arm_recv(c);
        budget--;
    }
}

/* Asks for the flags that make a single-threaded ring cheapest and drops
 * those the kernel refuses (DEFER_TASKRUN needs 6.1, SINGLE_ISSUER 6.0,
 * COOP_TASKRUN and SUBMIT_ALL 5.18). */
static int ring_setup(void)
{
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN |
            IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        0,
    };
    int ret = -EINVAL;
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]) && ret == -EINVAL; i++) {
        struct io_uring_params p = {.flags = tries[i] | IORING_SETUP_CQSIZE,
                                    .cq_entries = CQ_ENTRIES};
        ret = io_uring_queue_init_params(SQ_ENTRIES, &S.ring, &p);
    }
    if (ret < 0)
        return ret;
    io_uring_register_ring_fd(&S.ring); /* saves an fd lookup per enter; optional */

    /* liburing 2.3 has no io_uring_setup_buf_ring: map and register by hand. */
    size_t rsize = S.nbufs * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, rsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *bufs = mmap(NULL, (size_t)S.nbufs * BUF_SIZE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    S.len = calloc(S.nbufs, sizeof(*S.len));
    S.off = calloc(S.nbufs, sizeof(*S.off));
    S.next = calloc(S.nbufs, sizeof(*S.next));
    if (br == MAP_FAILED || bufs == MAP_FAILED || !S.len || !S.off || !S.next)
        return -ENOMEM;
    S.br = br;
    S.bufs = bufs;
    struct io_uring_buf_reg reg = {.ring_addr = (uintptr_t)br, .ring_entries = S.nbufs,
                                   .bgid = BGID};
    ret = io_uring_register_buf_ring(&S.ring, &reg, 0);
    if (ret < 0)
        return ret;
    io_uring_buf_ring_init(S.br);
    for (int i = 0; i < (int)S.nbufs; i++)
        buf_put(i);
    io_uring_buf_ring_advance(S.br, (int)S.to_advance);
    S.to_advance = 0;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: echo_uring [--host H] [--port P] [--buffers N]\n"
               "  --host H     address to listen on (default: all IPv6 and IPv4 addresses)\n"
               "  --port P     TCP port, 0 picks a free one (default: %d)\n"
               "  --buffers N  16 KiB buffers in the shared ring, a power of 2 up to %d\n"
               "               (default: %d)\n",
            DEFAULT_PORT, NBUFS_MAX, NBUFS);
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
    S.nbufs = NBUFS;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        long v;
        switch (opt) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            if ((port = srv_parse_port("echo_uring", optarg)) < 0)
                return 2;
            break;
        case 'b':
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 1 || v > NBUFS_MAX || (v & (v - 1))) {
                fprintf(stderr, "echo_uring: --buffers: '%s' is not a power of 2 from 1 to %d\n",
                        optarg, NBUFS_MAX);
                return 2;
            }
            S.nbufs = (unsigned)v;
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
        fprintf(stderr, "echo_uring: unexpected argument '%s'\n", argv[optind]);
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
    S.waiting.wprev = S.waiting.wnext = &S.waiting;
    if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0 ||
        (S.sfd = signalfd(-1, &sigs, SFD_CLOEXEC)) < 0) {
        perror("echo_uring: signalfd");
        return 1;
    }
    int ret = ring_setup();
    if (ret < 0) {
        fprintf(stderr, "echo_uring: io_uring setup (needs Linux 6.0+ for multishot recv "
                        "and buffer rings): %s\n", strerror(-ret));
        return 1;
    }
    S.lfd = srv_listen_tcp(host, port, 0);
    if (S.lfd < 0) {
        fprintf(stderr, "echo_uring: cannot listen on %s port %d: %s\n",
                host && *host ? host : "all addresses", port, strerror(-S.lfd));
        return 1;
    }
    if (srv_print_listening(S.lfd) != 0) {
        perror("echo_uring: stdout");
        return 1;
    }
    arm_signal();
    arm_accept();

    while (!S.done && !(S.stopping && S.nconns == 0)) {
        if (S.to_advance) {
            io_uring_buf_ring_advance(S.br, (int)S.to_advance);
            S.to_advance = 0;
        }
        serve_waiting();
        ret = io_uring_submit_and_wait(&S.ring, 1);
        if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
            fprintf(stderr, "echo_uring: io_uring_submit_and_wait: %s\n", strerror(-ret));
            return 1;
        }
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&S.ring, head, cqe) {
            handle(cqe);
            n++;
        }
        io_uring_cq_advance(&S.ring, n);
    }
    return 0;
}
