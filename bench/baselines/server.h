/*
 * What the comparison echo servers in bench/baselines/ share and that has
 * nothing to do with how each one serves: --port parsing, the listening
 * socket, the "listening on HOST:PORT" line, the fd limit and the
 * rate-limited accept-error log.  Header-only: each baseline is one .c file
 * built by itself (see the Makefile), and includes this.
 */
#ifndef UCO_BENCH_SERVER_H
#define UCO_BENCH_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SRV_BACKLOG 4096
#define SRV_LOG_INTERVAL_MS 60000 /* accept errors: one line a minute at most */

/* The --port argument, 0-65535; -1 after saying why on stderr. */
static inline int srv_parse_port(const char *prog, const char *arg)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < 0 || v > 65535) {
        fprintf(stderr, "%s: --port: '%s' is not a port number (0-65535)\n", prog, arg);
        return -1;
    }
    return (int)v;
}

static inline int srv_listen_on(const struct sockaddr *sa, socklen_t len, int sock_flags)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | sock_flags, 0);
    if (fd < 0)
        return -errno;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (sa->sa_family == AF_INET6) /* "::" takes IPv4 too */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, sa, len) < 0 || listen(fd, SRV_BACKLOG) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* A listening socket on host:port (NULL or "" host: all IPv6 and IPv4
 * addresses), with sock_flags (e.g. SOCK_NONBLOCK) added; -errno. */
static inline int srv_listen_tcp(const char *host, int port, int sock_flags)
{
    if (!host || !*host) {
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                                  .sin6_addr = IN6ADDR_ANY_INIT};
        int fd = srv_listen_on((struct sockaddr *)&a6, sizeof(a6), sock_flags);
        if (fd != -EAFNOSUPPORT)
            return fd;
        struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_ANY)};
        return srv_listen_on((struct sockaddr *)&a4, sizeof(a4), sock_flags);
    }
    char ps[8];
    snprintf(ps, sizeof(ps), "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    int err = getaddrinfo(host, ps, &hints, &ai);
    if (err)
        return err == EAI_SYSTEM ? -errno : -ENOENT;
    int fd = -EADDRNOTAVAIL;
    for (struct addrinfo *a = ai; a; a = a->ai_next)
        if ((fd = srv_listen_on(a->ai_addr, a->ai_addrlen, sock_flags)) >= 0)
            break;
    freeaddrinfo(ai);
    return fd;
}

/* "listening on HOST:PORT" on stdout, flushed: the line tests and
 * tools/bench_macro.py read the port from.  0, or -1/EOF on failure. */
static inline int srv_print_listening(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN];
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        printf("listening on [%s]:%u\n", host, ntohs(a->sin6_port));
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        printf("listening on %s:%u\n", host, ntohs(a->sin_port));
    }
    return fflush(stdout);
}

/* One fd per connection: the soft limit goes up to the hard one. */
static inline void srv_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* An accept that failed (EMFILE, ENOMEM...): one line, then at most one a
 * minute with the count of failures in between, so a server out of fds
 * does not flood its log.  Called from one thread. */
static inline void srv_log_accept_error(const char *prog, int err)
{
    static long long logged_at = -SRV_LOG_INTERVAL_MS;
    static unsigned long unlogged;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (now - logged_at < SRV_LOG_INTERVAL_MS) {
        unlogged++;
        return;
    }
    if (unlogged)
        fprintf(stderr, "%s: accept: %s (%lu more failures since the last report); retrying\n",
                prog, strerror(err), unlogged);
    else
        fprintf(stderr, "%s: accept: %s; backing off and retrying "
                        "(reported at most once a minute)\n", prog, strerror(err));
    logged_at = now;
    unlogged = 0;
}

#endif
