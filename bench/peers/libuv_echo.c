/*
 * libuv_echo: the echo server on libuv's default loop (epoll underneath,
 * one thread), a peer for the server benchmarks; it does not use uco.
 *
 *     libuv_echo [--host ADDR] [--port P]   (defaults: [::] dual stack, port 7000)
 *
 * Prints "listening on HOST:PORT", echoes every byte until the peer closes
 * or resets the connection; on SIGINT or SIGTERM it closes every handle and
 * exits 0.  ADDR is a numeric IPv4 or IPv6 address.
 *
 * The usual fast libuv echo: libuv asks for a buffer right before each
 * read and hands the bytes over before asking again, so one loop-wide
 * buffer serves every connection, and uv_try_write sends the bytes back at
 * once.  Only what the socket does not take is copied to the connection
 * and queued with uv_write; reading stops until it is written, so a peer
 * that does not read is pushed back by TCP flow control instead of our
 * memory growing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "../baselines/server.h" /* --port, the fd limit: as the baselines */

#define DEFAULT_PORT 7000
#define BACKLOG 4096
#define READ_SIZE (64 * 1024)

struct conn {
    uv_tcp_t tcp; /* first: the handle's address is the connection's */
    uv_write_t req;
    char *pending; /* the part uv_try_write did not send, while queued */
};

static char rbuf[READ_SIZE];
static uv_loop_t *loop;
static uv_tcp_t server;
static uv_signal_t sigs[2];

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = (struct conn *)h;
    free(c->pending);
    free(c);
}

static void conn_close(struct conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    free(c->pending);
    c->pending = NULL;
    if (status < 0 || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c); /* ECANCELED (closing), EPIPE, ECONNRESET: this connection only */
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = (struct conn *)s;
    if (nread < 0) { /* UV_EOF: everything read has been echoed; or a reset */
        conn_close(c);
        return;
    }
    if (nread == 0) /* EAGAIN */
        return;
    uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
    int n = uv_try_write(s, &b, 1);
    if (n == nread)
        return;
    if (n < 0 && n != UV_EAGAIN) {
        conn_close(c);
        return;
    }
    size_t sent = n > 0 ? (size_t)n : 0, left = (size_t)nread - sent;
    c->pending = malloc(left);
    if (!c->pending) {
        conn_close(c);
        return;
    }
    memcpy(c->pending, buf->base + sent, left);
    b = uv_buf_init(c->pending, (unsigned)left);
    c->req.data = c;
    uv_read_stop(s);
    if (uv_write(&c->req, s, &b, 1, on_written) < 0)
        conn_close(c);
}

static void on_connection(uv_stream_t *srv, int status)
{
    if (status < 0) { /* libuv already sheds the connection on EMFILE */
        fprintf(stderr, "libuv_echo: accept: %s\n", uv_strerror(status));
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c || uv_tcp_init(loop, &c->tcp) < 0) {
        free(c);
        return;
    }
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    if (h->type == UV_TCP && h != (uv_handle_t *)&server)
        conn_close((struct conn *)h);
    else
        uv_close(h, NULL);
}

/* Closing every handle empties the loop, and uv_run returns. */
static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    uv_walk(loop, close_any, NULL);
}

static int print_listening(void)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char host[64];
    if (uv_tcp_getsockname(&server, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, host, sizeof(host));
        printf("listening on [%s]:%u\n", host, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, host, sizeof(host));
        printf("listening on %s:%u\n", host, ntohs(a->sin_port));
    }
    return fflush(stdout);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: libuv_echo [--host ADDR] [--port P]\n"
               "  --host ADDR  numeric address to listen on (default: :: and IPv4 too)\n"
               "  --port P     TCP port, 0 picks a free one (default: %d)\n",
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
    const char *host = "::";
    int port = DEFAULT_PORT, opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            if ((port = srv_parse_port("libuv_echo", optarg)) < 0)
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
        fprintf(stderr, "libuv_echo: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    srv_raise_nofile();
    signal(SIGPIPE, SIG_IGN); /* libuv writes with write(2): a reset peer must not kill us */
    loop = uv_default_loop();
    struct sockaddr_storage addr;
    int err;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0) {
        fprintf(stderr, "libuv_echo: --host: '%s' is not a numeric address\n", host);
        return 2;
    }
    /* libuv's bind clears IPV6_V6ONLY (flags 0), so "::" takes IPv4 too;
     * a failed bind is reported by uv_listen. */
    if ((err = uv_tcp_init(loop, &server)) < 0 ||
        (err = uv_tcp_bind(&server, (struct sockaddr *)&addr, 0)) < 0 ||
        (err = uv_listen((uv_stream_t *)&server, BACKLOG, on_connection)) < 0) {
        fprintf(stderr, "libuv_echo: cannot listen on %s port %d: %s\n", host, port,
                uv_strerror(err));
        return 1;
    }
    static const int signums[2] = {SIGTERM, SIGINT};
    for (int i = 0; i < 2; i++) {
        if ((err = uv_signal_init(loop, &sigs[i])) < 0 ||
            (err = uv_signal_start(&sigs[i], on_signal, signums[i])) < 0) {
            fprintf(stderr, "libuv_echo: signals: %s\n", uv_strerror(err));
            return 1;
        }
    }
    if (print_listening() != 0) {
        perror("libuv_echo: stdout");
        return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 0;
}
