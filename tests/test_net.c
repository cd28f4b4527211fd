/* Sockets: bytes round-tripped over socketpairs and TCP on 127.0.0.1 and
 * ::1, the errors peers cause, multishot accept, provided buffers. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

static void fill(unsigned char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)((i * 131 + seed) >> 3);
}

/* Reads exactly n bytes or fails the test. */
static void recv_exact(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = uco_recv(fd, (char *)buf + got, n - got, 0);
        ck_assert_int_gt(r, 0);
        got += (size_t)r;
    }
}

static intptr_t pair_main(void *arg)
{
    (void)arg;
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(uco_send(sv[0], "ping", 4, 0), 4);
    char buf[16] = {0};
    ck_assert_int_eq(uco_recv(sv[1], buf, sizeof(buf), 0), 4);
    ck_assert_str_eq(buf, "ping");
    /* sendmsg / recvmsg with two iovecs each */
    struct iovec out[2] = {{"ab", 2}, {"cde", 3}};
    struct msghdr m = {.msg_iov = out, .msg_iovlen = 2};
    ck_assert_int_eq(uco_sendmsg(sv[1], &m, 0), 5);
    char x[3] = {0}, y[4] = {0};
    struct iovec in[2] = {{x, 2}, {y, 3}};
    struct msghdr mi = {.msg_iov = in, .msg_iovlen = 2};
    ck_assert_int_eq(uco_recvmsg(sv[0], &mi, 0), 5);
    ck_assert_str_eq(x, "ab");
    ck_assert_str_eq(y, "cde");
    /* wait_fd: not readable until something is sent */
    ck_assert_int_eq(uco_wait_fd(sv[0], POLLOUT) & POLLOUT, POLLOUT);
    ck_assert_int_eq(uco_send(sv[1], "z", 1, 0), 1);
    ck_assert_int_eq(uco_wait_fd(sv[0], POLLIN) & POLLIN, POLLIN);
    ck_assert_int_eq(uco_recv(sv[0], buf, 1, 0), 1);
    /* shutdown: the peer sees the end of the stream */
    ck_assert_int_eq(uco_shutdown(sv[1], SHUT_WR), 0);
    ck_assert_int_eq(uco_recv(sv[0], buf, sizeof(buf), 0), 0);
    /* A closed peer: -EPIPE, never SIGPIPE (which would kill this test) */
    ck_assert_int_eq(uco_close(sv[1]), 0);
    /* The socket is released when its last reference drops, and the
     * shutdown above ran in an io-wq worker, whose request may still hold
     * one for a moment after uco_close returns (CI saw a send succeed
     * there).  Once sv[0] reports POLLHUP its peer is gone; until then a
     * poll ends at once on the POLLRDHUP the shutdown left, so poll again
     * after a millisecond, for at most two seconds. */
    int hup = 0;
    for (int i = 0; i < 2000 && !(hup & POLLHUP); i++) {
        if (i)
            ck_assert_int_eq(uco_sleep(UCO_MSEC(1)), 0);
        hup = uco_wait_fd(sv[0], POLLHUP);
        ck_assert_int_ge(hup, 0);
    }
    ck_assert_int_ne(hup & POLLHUP, 0);
    ck_assert_int_eq(uco_send(sv[0], "x", 1, 0), -EPIPE);
    ck_assert_int_eq(uco_send_all(sv[0], "xy", 2, NULL), -EPIPE);
    ck_assert_int_eq(uco_close(sv[0]), 0);
    ck_assert_int_eq(uco_recv(sv[0], buf, 1, 0), -EBADF);
    return 0;
}

START_TEST(test_socketpair_send_recv_msg_poll_shutdown_epipe)
{
    int fds = count_fds();
    ck_assert_int_eq(uco_run(pair_main, NULL, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

#define TCP_BYTES (256u * 1024)

static intptr_t tcp_server(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int c = uco_accept(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
    if (c < 0)
        return c;
    unsigned char *buf = malloc(TCP_BYTES);
    ssize_t total = 0, n;
    while ((n = uco_recv(c, buf, TCP_BYTES, 0)) > 0) { /* echo */
        if (uco_send_all(c, buf, (size_t)n, NULL) != n)
            break;
        total += n;
    }
    free(buf);
    uco_close(c);
    return total;
}

static intptr_t tcp_main(void *arg)
{
    const char *host = arg;
    int lfd = uco_listen_tcp(host, 0, 16);
    ck_assert_int_ge(lfd, 0);
    int port = uco_local_port(lfd);
    ck_assert_int_gt(port, 0);
    uco_task *srv = uco_spawn(tcp_server, (void *)(intptr_t)lfd);
    int fd = uco_dial_tcp(host, (uint16_t)port);
    ck_assert_int_ge(fd, 0);
    unsigned char *out = malloc(TCP_BYTES), *in = malloc(TCP_BYTES);
    fill(out, TCP_BYTES, 3);
    size_t sent = 0;
    ck_assert_int_eq(uco_send_all(fd, out, TCP_BYTES, &sent), TCP_BYTES);
    recv_exact(fd, in, TCP_BYTES);
    ck_assert_int_eq(memcmp(in, out, TCP_BYTES), 0);
    uco_shutdown(fd, SHUT_WR);
    intptr_t echoed;
    ck_assert_int_eq(uco_join(srv, &echoed), 0);
    ck_assert_int_eq(echoed, TCP_BYTES);
    uco_close(fd);
    uco_close(lfd);
    free(out);
    free(in);
    return 0;
}

START_TEST(test_tcp_round_trip_over_ipv4_and_ipv6)
{
    int fds = count_fds();
    ck_assert_int_eq(uco_run(tcp_main, "127.0.0.1", NULL), 0);
    ck_assert_int_eq(uco_run(tcp_main, "::1", NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

static intptr_t tcp_name_main(void *arg)
{
    (void)arg;
    /* "localhost" goes through getaddrinfo on the offload pool. */
    return tcp_main("localhost");
}

START_TEST(test_dial_resolves_names_off_the_loop)
{
    ck_assert_int_eq(uco_run(tcp_name_main, NULL, NULL), 0);
}
END_TEST

static intptr_t errors_main(void *arg)
{
    (void)arg;
    /* A port nobody listens on: bind one, read it, close it. */
    int lfd = uco_listen_tcp("127.0.0.1", 0, 1);
    int port = uco_local_port(lfd);
    /* The same port twice: EADDRINUSE. */
    ck_assert_int_eq(uco_listen_tcp("127.0.0.1", (uint16_t)port, 1), -EADDRINUSE);
    close(lfd);
    ck_assert_int_eq(uco_dial_tcp("127.0.0.1", (uint16_t)port), -ECONNREFUSED);
    ck_assert_int_eq(uco_dial_tcp("::1", (uint16_t)port), -ECONNREFUSED);
    ck_assert_int_eq(uco_dial_tcp("no-such-host.invalid", 80), -ENOENT);
    ck_assert_int_eq(uco_dial_tcp("", 80), -EINVAL);
    ck_assert_int_eq(uco_accept(-1, NULL, NULL, 0), -EBADF);
    ck_assert_int_eq(uco_socket(12345, SOCK_STREAM, 0), -EAFNOSUPPORT);
    ck_assert_int_eq(uco_local_port(-1), -EBADF);
    return 0;
}

START_TEST(test_socket_errors_are_reported)
{
    int fds = count_fds();
    ck_assert_int_eq(uco_run(errors_main, NULL, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(test_net_calls_outside_a_coroutine)
{
    char b[1];
    ck_assert_int_eq(uco_recv(0, b, 1, 0), -EPERM);
    ck_assert_int_eq(uco_dial_tcp("127.0.0.1", 1), -EPERM);
    ck_assert_int_eq(uco_wait_fd(0, POLLIN), -EPERM);
    /* listen needs no loop: it never blocks */
    int lfd = uco_listen_tcp("127.0.0.1", 0, 1);
    ck_assert_int_ge(lfd, 0);
    close(lfd);
}
END_TEST

/* ---- multishot accept ---- */

#define CLIENTS 50

static intptr_t dialer(void *arg)
{
    int fd = uco_dial_tcp("127.0.0.1", (uint16_t)(intptr_t)arg);
    if (fd < 0)
        return fd;
    char b;
    ssize_t n = uco_recv(fd, &b, 1, 0); /* the server's byte */
    uco_close(fd);
    return n == 1 && b == 'k' ? 0 : -1;
}

static intptr_t multishot_main(void *arg)
{
    (void)arg;
    int lfd = uco_listen_tcp("127.0.0.1", 0, 128);
    int port = uco_local_port(lfd);
    uco_acceptor *a;
    ck_assert_int_eq(uco_accept_multishot(lfd, SOCK_CLOEXEC, &a), 0);
    uco_task *c[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        c[i] = uco_spawn(dialer, (void *)(intptr_t)port);
    for (int i = 0; i < CLIENTS; i++) {
        int fd = uco_acceptor_next(a);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(uco_send(fd, "k", 1, 0), 1);
        uco_close(fd);
    }
    intptr_t r[CLIENTS];
    ck_assert_int_eq(uco_gather(c, CLIENTS, r), 0);
    for (int i = 0; i < CLIENTS; i++)
        ck_assert_int_eq(r[i], 0);
    /* Connections accepted but never taken are closed by close(). */
    int extra = uco_dial_tcp("127.0.0.1", (uint16_t)port);
    ck_assert_int_ge(extra, 0);
    uco_sleep(UCO_MSEC(20)); /* let the kernel queue it in the acceptor */
    ck_assert_int_eq(uco_acceptor_close(a), 0);
    char b;
    ck_assert_int_eq(uco_recv(extra, &b, 1, 0), 0); /* server side closed */
    uco_close(extra);
    uco_close(lfd);
    return 0;
}

START_TEST(test_multishot_accept_serves_many_clients_and_closes_clean)
{
    int fds = count_fds();
    ck_assert_int_eq(uco_run(multishot_main, NULL, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* ---- provided buffers ---- */

/* The two kinds of stream socket the recv stream reads in different ways:
 * TCP with a multishot recv, AF_UNIX with one-shot recvs (uco.h). */
enum pair_kind { PAIR_TCP, PAIR_UNIX };

/* A connected pair, sv[0] the reading end.  TCP on 127.0.0.1 (in a
 * coroutine), without Nagle: the tests send small pieces one at a time. */
static void stream_pair(enum pair_kind kind, int sv[2])
{
    if (kind == PAIR_UNIX) {
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        return;
    }
    int l = uco_listen_tcp("127.0.0.1", 0, 1);
    ck_assert_int_ge(l, 0);
    sv[1] = uco_dial_tcp("127.0.0.1", (uint16_t)uco_local_port(l));
    ck_assert_int_ge(sv[1], 0);
    sv[0] = uco_accept(l, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(sv[0], 0);
    ck_assert_int_eq(uco_close(l), 0);
    int one = 1;
    ck_assert_int_eq(setsockopt(sv[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
}


static intptr_t bufring_main(void *arg)
{
    int sv[2];
    stream_pair((enum pair_kind)(intptr_t)arg, sv);
    uco_bufring *br;
    ck_assert_int_eq(uco_bufring_create(3, 64, &br), -EINVAL); /* not a power of 2 */
    ck_assert_int_eq(uco_bufring_create(4, 64, &br), 0);
    void *b;
    unsigned id;
    ck_assert_int_eq(uco_send(sv[1], "hello", 5, 0), 5);
    ck_assert_int_eq(uco_recv_buf(sv[0], br, &b, &id), 5);
    ck_assert_int_eq(memcmp(b, "hello", 5), 0);
    ck_assert_int_eq(uco_bufring_destroy(br), -EBUSY); /* a buffer is out */
    uco_buf_release(br, id);

    /* Multishot: 2 buffers for 10 chunks.  The kernel runs dry, the stream
     * re-arms once buffers come back: every byte arrives, in order. */
    uco_bufring *small;
    ck_assert_int_eq(uco_bufring_create(2, 8, &small), 0);
    uco_recv_stream *s;
    ck_assert_int_eq(uco_recv_multishot(sv[0], small, &s), 0);
    char want[80], got[80];
    for (int i = 0; i < 80; i++)
        want[i] = (char)('a' + i % 26);
    ck_assert_int_eq(uco_send_all(sv[1], want, 80, NULL), 80);
    size_t n = 0;
    void *held[2];
    unsigned held_id[2];
    /* Hold both buffers: the stream reports -ENOBUFS instead of hanging. */
    for (int i = 0; i < 2; i++) {
        ssize_t r = uco_recv_stream_next(s, &held[i], &held_id[i]);
        ck_assert_int_gt(r, 0);
        memcpy(got + n, held[i], (size_t)r);
        n += (size_t)r;
    }
    uco_sleep(UCO_MSEC(10)); /* the kernel tries, finds no buffer, ends the multishot */
    ck_assert_int_eq(uco_recv_stream_next(s, &b, &id), -ENOBUFS);
    uco_buf_release(small, held_id[0]);
    uco_buf_release(small, held_id[1]);
    while (n < 80) {
        ssize_t r = uco_recv_stream_next(s, &b, &id);
        ck_assert_int_gt(r, 0);
        memcpy(got + n, b, (size_t)r);
        n += (size_t)r;
        uco_buf_release(small, id);
    }
    ck_assert_int_eq(memcmp(got, want, 80), 0);
    uco_close(sv[1]);
    ck_assert_int_eq(uco_recv_stream_next(s, &b, &id), 0); /* end of stream */
    ck_assert_int_eq(uco_recv_stream_next(s, &b, &id), 0);
    ck_assert_int_eq(uco_recv_stream_close(s), 0);
    ck_assert_int_eq(uco_bufring_destroy(small), 0);
    ck_assert_int_eq(uco_bufring_destroy(br), 0);
    uco_close(sv[0]);
    return 0;
}

START_TEST(test_provided_buffers_and_multishot_recv_survive_enobufs)
{
    int fds = count_fds();
    ck_assert_int_eq(uco_run(bufring_main, (void *)(intptr_t)_i, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* A big ring keeps only about one buffer per stream (plus a margin) in the
 * kernel's FIFO, the rest in reserve: one stream echoing 2,000 messages
 * cycles through at most 65 of 1,024 buffers (all 1,024 would each be
 * cold when used again).  A burst bigger than that grows the ring from the
 * reserve: 200 streams each with 3 buffers' worth waiting (600 buffers,
 * the ring keeping 232) get every byte while the reader holds them all,
 * and no stream sees -ENOBUFS while buffers are left. */
#define WARM_PAIRS 200
#define WARM_CHUNK 64

static intptr_t warm_main(void *arg)
{
    (void)arg;
    uco_bufring *br;
    ck_assert_int_eq(uco_bufring_create(1024, WARM_CHUNK, &br), 0);
    int sv[2];
    stream_pair(PAIR_TCP, sv);
    uco_recv_stream *s;
    ck_assert_int_eq(uco_recv_multishot(sv[0], br, &s), 0);
    static bool seen[1024];
    memset(seen, 0, sizeof(seen));
    unsigned distinct = 0;
    for (int i = 0; i < 2000; i++) {
        char msg[16];
        snprintf(msg, sizeof(msg), "m%06d", i);
        ck_assert_int_eq(uco_send(sv[1], msg, 8, 0), 8);
        void *b;
        unsigned id;
        ck_assert_int_eq(uco_recv_stream_next(s, &b, &id), 8);
        ck_assert_int_eq(memcmp(b, msg, 8), 0);
        distinct += !seen[id];
        seen[id] = true;
        uco_buf_release(br, id);
    }
    ck_assert_uint_le(distinct, 64 + 1); /* the ring's 64 and the one in hand */
    ck_assert_int_eq(uco_shutdown(sv[1], SHUT_WR), 0);
    void *b;
    unsigned id;
    ck_assert_int_eq(uco_recv_stream_next(s, &b, &id), 0);
    ck_assert_int_eq(uco_recv_stream_close(s), 0);
    uco_close(sv[0]);
    uco_close(sv[1]);

    /* One stream with 200 buffers' worth queued, all held: far more than
     * the ring keeps, so the reserve must feed it (each buffer taken is
     * replaced from the reserve; a ring the kernel finds empty anyway
     * grows), never a wait for a release that would not come. */
    {
        int tp[2];
        stream_pair(PAIR_TCP, tp);
        int a1 = tp[0], c1 = tp[1];
        static char big[200 * WARM_CHUNK];
        for (size_t x = 0; x < sizeof(big); x++)
            big[x] = (char)(x * 13 + x / WARM_CHUNK);
        ck_assert_int_eq(uco_send_all(c1, big, sizeof(big), NULL), (ssize_t)sizeof(big));
        ck_assert_int_eq(uco_shutdown(c1, SHUT_WR), 0);
        uco_sleep(UCO_MSEC(20)); /* all of it in a1's receive queue */
        ck_assert_int_eq(uco_recv_multishot_max(a1, br, 256, &s), 0);
        static unsigned ids[256];
        unsigned n = 0;
        size_t off = 0;
        ssize_t r;
        uint64_t sv1;
        ck_assert_int_eq(uco_timeout_begin(UCO_SEC(5), &sv1), 0);
        while ((r = uco_recv_stream_next(s, &b, &id)) > 0) {
            ck_assert_int_eq(memcmp(b, big + off, (size_t)r), 0);
            off += (size_t)r;
            ck_assert_uint_lt(n, 256);
            ids[n++] = id;
        }
        ck_assert_int_eq(uco_timeout_end(sv1), 0);
        ck_assert_msg(r == 0, "next: %zd after %zu bytes", r, off);
        ck_assert_uint_eq(off, sizeof(big));
        for (unsigned i = 0; i < n; i++)
            uco_buf_release(br, ids[i]);
        ck_assert_int_eq(uco_recv_stream_close(s), 0);
        uco_close(a1);
        uco_close(c1);
    }

    /* The burst: every connection's data (and its FIN) is there before
     * the streams start.  (TCP, for the multishot recv: AF_UNIX sockets
     * get one-shot recvs, see uco.h.) */
    int lfd = uco_listen_tcp("127.0.0.1", 0, WARM_PAIRS);
    ck_assert_int_ge(lfd, 0);
    int port = uco_local_port(lfd);
    static int pv[WARM_PAIRS][2];
    static uco_recv_stream *st[WARM_PAIRS];
    char want[3 * WARM_CHUNK];
    for (int k = 0; k < WARM_PAIRS; k++) {
        pv[k][1] = uco_dial_tcp("127.0.0.1", (uint16_t)port);
        ck_assert_int_ge(pv[k][1], 0);
        pv[k][0] = uco_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(pv[k][0], 0);
        memset(want, 'A' + k % 26, sizeof(want));
        ck_assert_int_eq(uco_send_all(pv[k][1], want, sizeof(want), NULL), (ssize_t)sizeof(want));
        ck_assert_int_eq(uco_shutdown(pv[k][1], SHUT_WR), 0);
    }
    for (int k = 0; k < WARM_PAIRS; k++)
        ck_assert_int_eq(uco_recv_multishot_max(pv[k][0], br, 4, &st[k]), 0);
    /* Every buffer is held until all streams are read: only the reserve
     * can feed the later streams (a ring that did not grow would leave
     * them waiting for releases that never come: -ETIMEDOUT). */
    static unsigned held[3 * WARM_PAIRS];
    unsigned nheld = 0;
    uint64_t saved;
    ck_assert_int_eq(uco_timeout_begin(UCO_SEC(5), &saved), 0);
    for (int k = 0; k < WARM_PAIRS; k++) {
        size_t got = 0;
        ssize_t r;
        while ((r = uco_recv_stream_next(st[k], &b, &id)) > 0) {
            for (ssize_t x = 0; x < r; x++)
                ck_assert_int_eq(((char *)b)[x], 'A' + k % 26);
            got += (size_t)r;
            ck_assert_uint_lt(nheld, 3 * WARM_PAIRS);
            held[nheld++] = id;
        }
        ck_assert_msg(r == 0, "stream %d: %zd", k, r);
        ck_assert_uint_eq(got, sizeof(want));
    }
    ck_assert_int_eq(uco_timeout_end(saved), 0);
    for (unsigned i = 0; i < nheld; i++)
        uco_buf_release(br, held[i]);
    for (int k = 0; k < WARM_PAIRS; k++) {
        ck_assert_int_eq(uco_recv_stream_close(st[k]), 0);
        uco_close(pv[k][0]);
        uco_close(pv[k][1]);
    }
    uco_close(lfd);
    ck_assert_int_eq(uco_bufring_destroy(br), 0);
    return 0;
}

START_TEST(test_shared_ring_keeps_few_buffers_in_the_kernel_and_grows_for_a_burst)
{
    int fds = count_fds();
    ck_assert_int_eq(uco_run(warm_main, NULL, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* ---- one ring shared by many streams ---- */

#define SH_READERS 6
#define SH_BYTES 8192
#define SH_CAP 2

struct sh_pair {
    int sv[2];
    uco_bufring *br;
    uco_recv_stream *s;
    unsigned seed;
};

static intptr_t sh_send(void *arg)
{
    struct sh_pair *p = arg;
    unsigned char *b = malloc(SH_BYTES);
    fill(b, SH_BYTES, p->seed);
    ssize_t n = uco_send_all(p->sv[1], b, SH_BYTES, NULL);
    free(b);
    uco_shutdown(p->sv[1], SHUT_WR);
    return n == SH_BYTES ? 0 : -1;
}

/* Drains the stream to its end, holding each buffer across a yield so
 * the streams compete for the ring; every byte must come back in order. */
static intptr_t sh_read(void *arg)
{
    struct sh_pair *p = arg;
    unsigned char *want = malloc(SH_BYTES), *got = malloc(SH_BYTES + 64);
    fill(want, SH_BYTES, p->seed);
    size_t n = 0;
    ssize_t r;
    void *b;
    unsigned id;
    while ((r = uco_recv_stream_next(p->s, &b, &id)) > 0) {
        if (n + (size_t)r <= SH_BYTES + 64)
            memcpy(got + n, b, (size_t)r);
        n += (size_t)r;
        uco_yield();
        uco_buf_release(p->br, id);
    }
    intptr_t ret = r == 0 && n == SH_BYTES && memcmp(got, want, SH_BYTES) == 0 ? 0 : -1;
    free(want);
    free(got);
    return ret;
}

static intptr_t shared_main(void *arg)
{
    uco_bufring *br;
    ck_assert_int_eq(uco_bufring_create(8, 64, &br), 0);
    struct sh_pair p[SH_READERS + 1];
    for (unsigned i = 0; i <= SH_READERS; i++) {
        stream_pair((enum pair_kind)(intptr_t)arg, p[i].sv);
        p[i].br = br;
        p[i].seed = i * 7 + 1;
        ck_assert_int_eq(uco_recv_multishot_max(p[i].sv[0], br, SH_CAP, &p[i].s), 0);
    }
    /* The hog (the last pair) receives and never releases: it stops at
     * its cap and the readers still get the ring's other buffers. */
    struct sh_pair *hog = &p[SH_READERS];
    uco_task *hs = uco_spawn(sh_send, hog);
    uco_sleep(UCO_MSEC(20));
    void *held[8];
    unsigned held_id[8];
    size_t hog_n = 0;
    unsigned taken = 0;
    ssize_t r;
    while (taken < 8 && (r = uco_recv_stream_next(hog->s, &held[taken], &held_id[taken])) > 0)
        hog_n += (size_t)r, taken++;
    void *b;
    unsigned id;
    ck_assert_int_eq(uco_recv_stream_next(hog->s, &b, &id), -ENOBUFS);
    ck_assert_int_eq(taken, SH_CAP); /* stopped at the cap */
    uco_task *ts[2 * SH_READERS];
    for (unsigned i = 0; i < SH_READERS; i++) {
        ts[2 * i] = uco_spawn(sh_read, &p[i]);
        ts[2 * i + 1] = uco_spawn(sh_send, &p[i]);
    }
    intptr_t res[2 * SH_READERS];
    ck_assert_int_eq(uco_gather(ts, 2 * SH_READERS, res), 0);
    for (unsigned i = 0; i < 2 * SH_READERS; i++)
        ck_assert_int_eq(res[i], 0);
    /* Released, the hog restarts and gets the rest of its bytes intact. */
    unsigned char *want = malloc(SH_BYTES), *got = malloc(SH_BYTES);
    fill(want, SH_BYTES, hog->seed);
    size_t off = 0;
    for (unsigned i = 0; i < taken; i++) {
        size_t len = i + 1 < taken ? 64 : hog_n - off;
        memcpy(got + off, held[i], len);
        off += len;
        uco_buf_release(br, held_id[i]);
    }
    while ((r = uco_recv_stream_next(hog->s, &b, &id)) > 0) {
        ck_assert_uint_le(hog_n + (size_t)r, SH_BYTES);
        memcpy(got + hog_n, b, (size_t)r);
        hog_n += (size_t)r;
        uco_buf_release(br, id);
    }
    ck_assert_int_eq(r, 0);
    ck_assert_uint_eq(hog_n, SH_BYTES);
    ck_assert_int_eq(memcmp(got, want, SH_BYTES), 0);
    free(want);
    free(got);
    intptr_t hr;
    ck_assert_int_eq(uco_join(hs, &hr), 0);
    ck_assert_int_eq(hr, 0);
    ck_assert_int_eq(uco_bufring_destroy(br), -EBUSY); /* streams are open on it */
    for (unsigned i = 0; i <= SH_READERS; i++) {
        ck_assert_int_eq(uco_recv_stream_close(p[i].s), 0);
        uco_close(p[i].sv[0]);
        uco_close(p[i].sv[1]);
    }
    ck_assert_int_eq(uco_bufring_destroy(br), 0); /* every buffer came back */
    return 0;
}

START_TEST(test_shared_ring_stops_a_hog_at_its_cap_and_the_others_progress)
{
    int fds = count_fds();
    ck_assert_int_eq(uco_run(shared_main, (void *)(intptr_t)_i, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* ---- the end of a stream queued before the stream starts ---- */

/* The peer's bytes and its end of stream are both waiting when the
 * stream is created.  Every byte and then the end (0) must come, for
 * both kinds: on AF_UNIX a multishot recv would hang here (uco.h), so
 * the stream reads it with one-shot recvs. */
static intptr_t queued_eof_main(void *arg)
{
    int sv[2];
    stream_pair((enum pair_kind)(intptr_t)arg, sv);
    unsigned char want[300], got[300];
    fill(want, sizeof(want), 5);
    ck_assert_int_eq(uco_send_all(sv[1], want, sizeof(want), NULL), (ssize_t)sizeof(want));
    ck_assert_int_eq(uco_shutdown(sv[1], SHUT_WR), 0);
    uco_sleep(UCO_MSEC(10)); /* both in sv[0]'s receive queue */
    uco_bufring *br;
    ck_assert_int_eq(uco_bufring_create(8, 64, &br), 0);
    uco_recv_stream *s;
    ck_assert_int_eq(uco_recv_multishot(sv[0], br, &s), 0);
    uint64_t saved;
    ck_assert_int_eq(uco_timeout_begin(UCO_SEC(2), &saved), 0);
    size_t n = 0;
    ssize_t r;
    void *b;
    unsigned id;
    while ((r = uco_recv_stream_next(s, &b, &id)) > 0) {
        ck_assert_uint_le(n + (size_t)r, sizeof(got));
        memcpy(got + n, b, (size_t)r);
        n += (size_t)r;
        uco_buf_release(br, id);
    }
    ck_assert_int_eq(uco_timeout_end(saved), 0);
    ck_assert_msg(r == 0, "next: %zd after %zu bytes", r, n);
    ck_assert_uint_eq(n, sizeof(want));
    ck_assert_int_eq(memcmp(got, want, sizeof(want)), 0);
    ck_assert_int_eq(uco_recv_stream_next(s, &b, &id), 0); /* and stays ended */
    ck_assert_int_eq(uco_recv_stream_close(s), 0);
    ck_assert_int_eq(uco_bufring_destroy(br), 0);
    uco_close(sv[0]);
    uco_close(sv[1]);
    return 0;
}

START_TEST(test_stream_reports_an_end_queued_before_it_started)
{
    int fds = count_fds();
    ck_assert_int_eq(uco_run(queued_eof_main, (void *)(intptr_t)_i, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* ---- a burst of one-shot recvs larger than the ring ---- */

#define BURST_RECVS 200

struct burst {
    int sv[2];
    uco_bufring *br;
    int *done; /* recvs finished so far, shared by the burst */
    unsigned seed;
};

/* One recv into a provided buffer, held until the whole burst has its
 * own, so that every buffer of the burst is out at once. */
static intptr_t burst_recv(void *arg)
{
    struct burst *b = arg;
    unsigned char want[48];
    fill(want, sizeof(want), b->seed);
    void *buf;
    unsigned id;
    ssize_t r = uco_recv_buf(b->sv[0], b->br, &buf, &id);
    ++*b->done;
    if (r < 0)
        return r;
    intptr_t ret = r == (ssize_t)sizeof(want) && memcmp(buf, want, sizeof(want)) == 0 ? 0 : -1;
    while (*b->done < BURST_RECVS)
        uco_yield();
    uco_buf_release(b->br, id);
    return ret;
}

/* 200 recvs submitted in one batch find data waiting: the kernel takes
 * their buffers inline, from a ring of 64, and fails the rest with
 * -ENOBUFS.  The reserve (1,024) has plenty: the ring must grow and the
 * recvs go again, none reporting -ENOBUFS.  A second burst then finds
 * the ring long enough.  The ring grows to what the burst needed, not
 * to all 1,024 (the 136 ENOBUFS of one batch double it once, not 136
 * times): one recv after another then cycles through the kernel's FIFO,
 * between 200 and 512 distinct buffers. */
static intptr_t burst_main(void *arg)
{
    (void)arg;
    uco_bufring *br;
    ck_assert_int_eq(uco_bufring_create(1024, 64, &br), 0);
    static struct burst b[BURST_RECVS];
    for (int round = 0; round < 2; round++) {
        int done = 0;
        uco_task *t[BURST_RECVS];
        for (unsigned i = 0; i < BURST_RECVS; i++) {
            stream_pair(PAIR_UNIX, b[i].sv);
            b[i].br = br;
            b[i].done = &done;
            b[i].seed = i * 13 + (unsigned)round;
            unsigned char msg[48];
            fill(msg, sizeof(msg), b[i].seed);
            ck_assert_int_eq(write(b[i].sv[1], msg, sizeof(msg)), (ssize_t)sizeof(msg));
        }
        for (unsigned i = 0; i < BURST_RECVS; i++)
            t[i] = uco_spawn(burst_recv, &b[i]);
        intptr_t res[BURST_RECVS];
        ck_assert_int_eq(uco_gather(t, BURST_RECVS, res), 0);
        for (unsigned i = 0; i < BURST_RECVS; i++) {
            ck_assert_msg(res[i] == 0, "round %d, recv %u: %ld", round, i, (long)res[i]);
            uco_close(b[i].sv[0]);
            uco_close(b[i].sv[1]);
        }
    }
    int sv[2];
    stream_pair(PAIR_UNIX, sv);
    static bool seen[1024];
    unsigned distinct = 0;
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(write(sv[1], "12345678", 8), 8);
        void *buf;
        unsigned id;
        ck_assert_int_eq(uco_recv_buf(sv[0], br, &buf, &id), 8);
        distinct += !seen[id];
        seen[id] = true;
        uco_buf_release(br, id);
    }
    ck_assert_msg(distinct >= 200 && distinct <= 512, "%u distinct buffers", distinct);
    uco_close(sv[0]);
    uco_close(sv[1]);
    ck_assert_int_eq(uco_bufring_destroy(br), 0); /* every buffer came back */
    return 0;
}

START_TEST(test_burst_of_recvs_beyond_the_ring_grows_it_from_the_reserve)
{
    int fds = count_fds();
    ck_assert_int_eq(uco_run(burst_main, NULL, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* next() with a deadline of now: what has arrived, else -ETIMEDOUT. */
static ssize_t next_now(uco_recv_stream *s, void **b, unsigned *id)
{
    uint64_t saved;
    uco_timeout_begin(0, &saved);
    ssize_t r = uco_recv_stream_next(s, b, id);
    uco_timeout_end(saved);
    return r;
}

static intptr_t dry_wait(void *arg)
{
    void *b;
    unsigned id;
    return uco_recv_stream_next(arg, &b, &id);
}

static intptr_t dry_main(void *arg)
{
    enum { A, B, C, D, E, N };
    int sv[N][2];
    uco_recv_stream *s[N];
    uco_bufring *br;
    ck_assert_int_eq(uco_bufring_create(4, 64, &br), 0);
    for (int i = 0; i < N; i++) {
        stream_pair((enum pair_kind)(intptr_t)arg, sv[i]);
        ck_assert_int_eq(uco_recv_multishot(sv[i][0], br, &s[i]), 0);
    }
    /* A takes all four buffers and holds them. */
    unsigned char msg[N][256];
    for (int i = 0; i < N; i++)
        fill(msg[i], 256, (unsigned)i + 11);
    ck_assert_int_eq(uco_send_all(sv[A][1], msg[A], 256, NULL), 256);
    uco_sleep(UCO_MSEC(10));
    void *held[4], *b;
    unsigned held_id[4], id;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(uco_recv_stream_next(s[A], &held[i], &held_id[i]), 64);
        ck_assert_int_eq(memcmp(held[i], msg[A] + 64 * i, 64), 0);
    }
    ck_assert_int_eq(uco_recv_stream_next(s[A], &b, &id), -ENOBUFS); /* at its cap */
    /* B, C, D, E get data in that order and find the ring empty. */
    for (int i = B; i <= E; i++) {
        ck_assert_int_eq(uco_send_all(sv[i][1], msg[i], 64, NULL), 64);
        uco_sleep(UCO_MSEC(5));
    }
    /* Another stream holds the buffers: they wait, no -ENOBUFS. */
    ck_assert_int_eq(next_now(s[C], &b, &id), -ETIMEDOUT);
    uco_task *w = uco_spawn(dry_wait, s[D]);
    uco_yield();
    double cpu = cpu_sec();
    uco_sleep(UCO_MSEC(300));
    cpu = cpu_sec() - cpu;
    ck_assert_msg(cpu < 0.05, "%.3f s of CPU in 0.3 s waiting for buffers", cpu);
    /* A waiting stream is cancelled and closed: it leaves the queue. */
    uco_cancel(w);
    intptr_t wr;
    ck_assert_int_eq(uco_join(w, &wr), 0);
    ck_assert_int_eq(wr, -ECANCELED);
    ck_assert_int_eq(uco_recv_stream_close(s[D]), 0);
    /* Each buffer given back re-arms the next stream in the order they
     * ran dry, and only that one: the later ones still have nothing. */
    int order[] = {B, C, E};
    void *got[3];
    unsigned got_id[3];
    for (int k = 0; k < 3; k++) {
        uco_buf_release(br, held_id[k]);
        uco_sleep(UCO_MSEC(5));
        for (int j = k + 1; j < 3; j++)
            ck_assert_int_eq(next_now(s[order[j]], &b, &id), -ETIMEDOUT);
        ck_assert_int_eq(next_now(s[order[k]], &got[k], &got_id[k]), 64);
        ck_assert_int_eq(memcmp(got[k], msg[order[k]], 64), 0);
    }
    uco_buf_release(br, held_id[3]);
    for (int k = 0; k < 3; k++)
        uco_buf_release(br, got_id[k]);
    for (int i = 0; i < N; i++) {
        if (i != D)
            ck_assert_int_eq(uco_recv_stream_close(s[i]), 0);
        uco_close(sv[i][0]);
        uco_close(sv[i][1]);
    }
    ck_assert_int_eq(uco_bufring_destroy(br), 0);
    return 0;
}

START_TEST(test_dry_shared_ring_rearms_waiters_in_order_without_spinning)
{
    int fds = count_fds();
    ck_assert_int_eq(uco_run(dry_main, (void *)(intptr_t)_i, NULL), 0);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* ---- 10,000 connections ---- */

/* 10,000 natively and under ASan; valgrind runs the same test smaller. */
#define CONNS (UNDER_VALGRIND ? 500 : 10000)
#define MSG 32

static int conn_port;

static intptr_t echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[MSG];
    ssize_t n;
    while ((n = uco_recv(fd, buf, sizeof(buf), 0)) > 0)
        if (uco_send_all(fd, buf, (size_t)n, NULL) != n)
            break;
    uco_close(fd);
    return 0;
}

static intptr_t conn_server(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    uco_acceptor *a;
    if (uco_accept_multishot(lfd, SOCK_CLOEXEC, &a) < 0)
        return -1;
    for (int i = 0; i < CONNS; i++) {
        int fd = uco_acceptor_next(a);
        if (fd < 0)
            return fd;
        uco_detach(uco_spawn(echo_conn, (void *)(intptr_t)fd));
    }
    return uco_acceptor_close(a);
}

/* Each client connects, then (once all are connected) sends its id and
 * checks the echo. */
static uco_event *all_connected;
static int connected;

static intptr_t conn_client(void *arg)
{
    unsigned id = (unsigned)(intptr_t)arg;
    int fd = uco_dial_tcp("127.0.0.1", (uint16_t)conn_port);
    if (fd < 0)
        return fd;
    if (++connected == CONNS)
        uco_event_set(all_connected);
    uco_event_wait(all_connected);
    unsigned char msg[MSG], back[MSG];
    fill(msg, MSG, id);
    intptr_t ret = -1;
    if (uco_send_all(fd, msg, MSG, NULL) == MSG) {
        size_t got = 0;
        ssize_t n = 1;
        while (got < MSG && (n = uco_recv(fd, back + got, MSG - got, 0)) > 0)
            got += (size_t)n;
        ret = got == MSG && memcmp(msg, back, MSG) == 0 ? 0 : -2;
    }
    uco_close(fd);
    return ret;
}

static intptr_t clients_main(void *arg)
{
    (void)arg;
    uco_event_create(&all_connected);
    uco_task **t = calloc(CONNS, sizeof(*t));
    for (int i = 0; i < CONNS; i++)
        t[i] = uco_spawn(conn_client, (void *)(intptr_t)i);
    intptr_t *r = calloc(CONNS, sizeof(*r));
    uco_gather(t, CONNS, r);
    int bad = 0;
    for (int i = 0; i < CONNS; i++)
        bad += r[i] != 0;
    free(t);
    free(r);
    uco_event_destroy(all_connected);
    return bad;
}

START_TEST(test_ten_thousand_concurrent_connections_echo_exact_bytes)
{
    /* Server here, clients in a child: 10,000 fds on each side. */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < CONNS + 100) {
        rl.rlim_cur = rl.rlim_max < CONNS + 100 ? rl.rlim_max : CONNS + 100;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ck_assert_msg(rl.rlim_cur >= CONNS + 100, "RLIMIT_NOFILE %lu is too low",
                  (unsigned long)rl.rlim_cur);
    int lfd = uco_listen_tcp("127.0.0.1", 0, 4096);
    ck_assert_int_ge(lfd, 0);
    conn_port = uco_local_port(lfd);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(lfd);
        intptr_t bad = uco_run(clients_main, NULL, NULL);
        _exit(bad == 0 ? 0 : 1);
    }
    int fds = count_fds();
    ck_assert_int_eq(uco_run(conn_server, (void *)(intptr_t)lfd, NULL), 0);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "clients failed: %#x", st);
    ck_assert_int_eq(count_fds(), fds);
    close(lfd);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("net");
    TCase *tc = tcase_create("net");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_socketpair_send_recv_msg_poll_shutdown_epipe);
    tcase_add_test(tc, test_tcp_round_trip_over_ipv4_and_ipv6);
    tcase_add_test(tc, test_dial_resolves_names_off_the_loop);
    tcase_add_test(tc, test_socket_errors_are_reported);
    tcase_add_test(tc, test_net_calls_outside_a_coroutine);
    tcase_add_test(tc, test_multishot_accept_serves_many_clients_and_closes_clean);
    tcase_add_loop_test(tc, test_provided_buffers_and_multishot_recv_survive_enobufs, PAIR_TCP, PAIR_UNIX + 1);
    tcase_add_test(tc, test_shared_ring_keeps_few_buffers_in_the_kernel_and_grows_for_a_burst);
    tcase_add_loop_test(tc, test_shared_ring_stops_a_hog_at_its_cap_and_the_others_progress, PAIR_TCP, PAIR_UNIX + 1);
    tcase_add_loop_test(tc, test_dry_shared_ring_rearms_waiters_in_order_without_spinning, PAIR_TCP, PAIR_UNIX + 1);
    tcase_add_loop_test(tc, test_stream_reports_an_end_queued_before_it_started, PAIR_TCP, PAIR_UNIX + 1);
    tcase_add_test(tc, test_burst_of_recvs_beyond_the_ring_grows_it_from_the_reserve);
    tcase_add_test(tc, test_ten_thousand_concurrent_connections_echo_exact_bytes);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
