/* Socket operations, and the TCP helpers people reach for first. */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

int uco_socket(int domain, int type, int protocol)
{
    GET_SQE(sqe);
    io_uring_prep_socket(sqe, domain, type, protocol, 0);
    int ret = uco_await(sqe);
    if (ret == -EINVAL) {
        /* Kernels before 5.19 lack IORING_OP_SOCKET; socket(2) never
         * blocks, so it is a safe fallback (and gives the real error). */
        ret = socket(domain, type, protocol);
        ret = ret < 0 ? -errno : ret;
    }
    return ret;
}

int uco_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    GET_SQE(sqe);
    io_uring_prep_connect(sqe, fd, addr, addrlen);
    return uco_await(sqe);
}

int uco_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    GET_SQE(sqe);
    io_uring_prep_accept(sqe, fd, addr, addrlen, flags);
    int ret = uco_await(sqe);
    if (ret >= 0 && addr && addrlen) {
        vg_defined(addrlen, sizeof(*addrlen));
        vg_defined(addr, *addrlen);
    }
    return ret;
}

ssize_t uco_recv(int fd, void *buf, size_t len, int flags)
{
    GET_SQE(sqe);
    io_uring_prep_recv(sqe, fd, buf, len, flags);
    int ret = uco_await(sqe);
    if (ret > 0)
        vg_defined(buf, (size_t)ret);
    return ret;
}

ssize_t uco_send(int fd, const void *buf, size_t len, int flags)
{
    GET_SQE(sqe);
    io_uring_prep_send(sqe, fd, buf, len, flags | MSG_NOSIGNAL);
    return uco_await(sqe);
}

ssize_t uco_send_all(int fd, const void *buf, size_t len, size_t *done)
{
    size_t off = 0;
    ssize_t ret = 0;
    while (off < len) {
        ret = uco_send(fd, (const char *)buf + off, len - off, 0);
        if (ret <= 0) {
            if (ret == 0)
                ret = -EIO;
            break;
        }
        off += (size_t)ret;
    }
    if (done)
        *done = off;
    return off == len ? (ssize_t)len : ret;
}

ssize_t uco_recvmsg(int fd, struct msghdr *msg, int flags)
{
    GET_SQE(sqe);
    io_uring_prep_recvmsg(sqe, fd, msg, (unsigned)flags);
    int ret = uco_await(sqe);
    if (ret >= 0) {
        vg_defined_iov(msg->msg_iov, msg->msg_iovlen, ret);
        vg_defined(&msg->msg_flags, sizeof(msg->msg_flags));
        if (msg->msg_name)
            vg_defined(msg->msg_name, msg->msg_namelen);
        if (msg->msg_control)
            vg_defined(msg->msg_control, msg->msg_controllen);
    }
    return ret;
}

ssize_t uco_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    GET_SQE(sqe);
    io_uring_prep_sendmsg(sqe, fd, msg, (unsigned)flags | MSG_NOSIGNAL);
    return uco_await(sqe);
}

int uco_shutdown(int fd, int how)
{
    GET_SQE(sqe);
    io_uring_prep_shutdown(sqe, fd, how);
    return uco_await(sqe);
}

int uco_wait_fd(int fd, unsigned events)
{
    GET_SQE(sqe);
    io_uring_prep_poll_add(sqe, fd, events);
    return uco_await(sqe);
}

int uco_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}

/* ---- name resolution, off the loop ---- */

struct resolve {
    const char *host;
    char port[8];
    int passive;
    int sys_errno; /* errno of the thread that ran getaddrinfo */
    struct addrinfo *res;
};

static intptr_t resolve_job(void *arg)
{
    struct resolve *r = arg;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_ADDRCONFIG | r->passive};
    int err = getaddrinfo(r->host, r->port, &hints, &r->res);
    r->sys_errno = errno;
    return err;
}

static int gai_errno(int err, int sys_errno)
{
    switch (err) {
    case 0: return 0;
    case EAI_NONAME:
    case EAI_NODATA: return -ENOENT;
    case EAI_MEMORY: return -ENOMEM;
    case EAI_AGAIN: return -EAGAIN;
    case EAI_SYSTEM: return sys_errno ? -sys_errno : -EIO;
    default: return -EINVAL;
    }
}

/* Literal addresses are parsed in place; names go to getaddrinfo on the
 * offload pool inside a task (it may block for seconds on DNS), or
 * directly when called outside the loop. */
static int resolve(const char *host, uint16_t port, int passive, struct addrinfo **out)
{
    struct resolve r = {.host = host, .passive = passive};
    snprintf(r.port, sizeof(r.port), "%u", (unsigned)port);
    struct in6_addr probe;
    bool literal = inet_pton(AF_INET, host, &probe) == 1 || inet_pton(AF_INET6, host, &probe) == 1;
    intptr_t err;
    if (literal || !sched_current()) {
        if (literal)
            passive |= AI_NUMERICHOST;
        r.passive = passive;
        err = resolve_job(&r);
    } else {
        int ret = uco_offload(resolve_job, &r, &err);
        if (ret < 0)
            return ret;
    }
    *out = r.res;
    return gai_errno((int)err, r.sys_errno);
}

static int listen_on(const struct sockaddr *sa, socklen_t len, int backlog)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (sa->sa_family == AF_INET6) /* "::" also takes IPv4 */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, sa, len) < 0 || listen(fd, backlog) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int uco_listen_tcp(const char *host, uint16_t port, int backlog)
{
    if (!host || !*host) {
        struct sockaddr_in6 any6 = {.sin6_family = AF_INET6, .sin6_port = htons(port),
                                    .sin6_addr = IN6ADDR_ANY_INIT};
        int fd = listen_on((struct sockaddr *)&any6, sizeof(any6), backlog);
        if (fd != -EAFNOSUPPORT)
            return fd;
        struct sockaddr_in any4 = {.sin_family = AF_INET, .sin_port = htons(port),
                                   .sin_addr.s_addr = htonl(INADDR_ANY)};
        return listen_on((struct sockaddr *)&any4, sizeof(any4), backlog);
    }
    struct addrinfo *ai = NULL;
    int ret = resolve(host, port, AI_PASSIVE, &ai);
    for (struct addrinfo *a = ai; ret == 0 && a; a = a->ai_next) {
        ret = listen_on(a->ai_addr, a->ai_addrlen, backlog);
        if (ret >= 0)
            break;
        if (a->ai_next)
            ret = 0;
    }
    if (ai)
        freeaddrinfo(ai);
    return ret;
}

static int dial_one(const struct addrinfo *a)
{
    int fd = uco_socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fd;
    int ret = uco_connect(fd, a->ai_addr, a->ai_addrlen);
    if (ret < 0) {
        uco_close(fd);
        return ret;
    }
    return fd;
}

int uco_dial_tcp(const char *host, uint16_t port)
{
    if (!sched_current())
        return -EPERM;
    if (!host || !*host)
        return -EINVAL;
    struct addrinfo *ai = NULL;
    int ret = resolve(host, port, 0, &ai);
    for (struct addrinfo *a = ai; ret == 0 && a; a = a->ai_next) {
        ret = dial_one(a);
        if (ret >= 0 || ret == -ECANCELED || ret == -ETIMEDOUT)
            break;
        if (a->ai_next)
            ret = 0;
    }
    if (ai)
        freeaddrinfo(ai);
    return ret;
}
