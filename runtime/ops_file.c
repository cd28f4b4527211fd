/* File operations: one SQE each, named after their system calls. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sys/stat.h>

#include "internal.h"

/* The kernel caps one read or write at this (as read(2) does): longer
 * requests come back short, which the contracts allow. */
#define RW_MAX 0x7ffff000u

static unsigned rw_len(size_t len) { return len > RW_MAX ? RW_MAX : (unsigned)len; }

int uco_openat(int dfd, const char *path, int flags, mode_t mode)
{
    GET_SQE(sqe);
    io_uring_prep_openat(sqe, dfd, path, flags, mode);
    return uco_await(sqe);
}

int uco_open(const char *path, int flags, mode_t mode)
{
    return uco_openat(AT_FDCWD, path, flags, mode);
}

int uco_openat2(int dfd, const char *path, const struct open_how *how)
{
    if (!how)
        return -EINVAL;
    GET_SQE(sqe);
    io_uring_prep_openat2(sqe, dfd, path, (struct open_how *)how);
    return uco_await(sqe);
}

ssize_t uco_read(int fd, void *buf, size_t len, int64_t offset)
{
    GET_SQE(sqe);
    io_uring_prep_read(sqe, fd, buf, rw_len(len), (uint64_t)offset);
    int ret = uco_await(sqe);
    if (ret > 0)
        vg_defined(buf, (size_t)ret);
    return ret;
}

ssize_t uco_write(int fd, const void *buf, size_t len, int64_t offset)
{
    GET_SQE(sqe);
    io_uring_prep_write(sqe, fd, buf, rw_len(len), (uint64_t)offset);
    return uco_await(sqe);
}

ssize_t uco_readv(int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
    if (iovcnt < 0 || (iovcnt && !iov))
        return -EINVAL;
    GET_SQE(sqe);
    io_uring_prep_readv(sqe, fd, iov, (unsigned)iovcnt, (uint64_t)offset);
    int ret = uco_await(sqe);
    vg_defined_iov(iov, (size_t)iovcnt, ret);
    return ret;
}

ssize_t uco_writev(int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
    if (iovcnt < 0 || (iovcnt && !iov))
        return -EINVAL;
    GET_SQE(sqe);
    io_uring_prep_writev(sqe, fd, iov, (unsigned)iovcnt, (uint64_t)offset);
    return uco_await(sqe);
}

/* Linux's internal "restart the call" errno, which a splice interrupted in
 * an io-wq worker reports as its result. */
#define ERESTARTSYS 512

static ssize_t splice_once(int fd_in, int64_t off_in, int fd_out, int64_t off_out,
                           unsigned len, unsigned flags)
{
    GET_SQE(sqe);
    io_uring_prep_splice(sqe, fd_in, off_in, fd_out, off_out, len, flags);
    int ret = uco_await(sqe);
    if (ret == -ERESTARTSYS) {
        /* Only uco_cancel reaches a splice blocked in the kernel; the
         * await took it for a completed operation and kept it pending. */
        uco_task *self = uco_rt_cur->current;
        if (!self->cancel_pending)
            return -EINTR;
        self->cancel_pending = false;
        return -ECANCELED;
    }
    return ret;
}

/* io_uring runs every splice in an io-wq worker, and a cancel (a deadline's,
 * say) never interrupts one blocked there.  So the pipe end is made non-blocking and
 * the waiting, where deadlines and cancellation hold, is done by polls. */
ssize_t uco_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out, size_t len,
                   unsigned flags)
{
    for (;;) {
        ssize_t ret = splice_once(fd_in, off_in, fd_out, off_out, rw_len(len),
                                  flags | SPLICE_F_NONBLOCK);
        if (ret != -EAGAIN || (flags & SPLICE_F_NONBLOCK))
            return ret;
        /* Either end may be the one not ready; a ready one costs a poll
         * that completes at once. */
        if ((ret = uco_wait_fd(fd_in, POLLIN)) < 0 || (ret = uco_wait_fd(fd_out, POLLOUT)) < 0)
            return ret;
    }
}

ssize_t uco_write_all(int fd, const void *buf, size_t len, int64_t offset, size_t *done)
{
    size_t off = 0;
    ssize_t ret = 0;
    while (off < len) {
        ret = uco_write(fd, (const char *)buf + off, len - off,
                        offset < 0 ? -1 : offset + (int64_t)off);
        if (ret <= 0) {
            if (ret == 0) /* a write that takes nothing would loop forever */
                ret = -EIO;
            break;
        }
        off += (size_t)ret;
    }
    if (done)
        *done = off;
    return off == len ? (ssize_t)len : ret;
}

static int fsync_flags(int fd, unsigned flags)
{
    GET_SQE(sqe);
    io_uring_prep_fsync(sqe, fd, flags);
    return uco_await(sqe);
}

int uco_fsync(int fd) { return fsync_flags(fd, 0); }
int uco_fdatasync(int fd) { return fsync_flags(fd, IORING_FSYNC_DATASYNC); }

int uco_statx(int dfd, const char *path, int flags, unsigned mask, struct statx *out)
{
    if (!path || !out)
        return -EINVAL;
    GET_SQE(sqe);
    io_uring_prep_statx(sqe, dfd, path, flags, mask, out);
    int ret = uco_await(sqe);
    if (ret == 0)
        vg_defined(out, sizeof(*out));
    return ret;
}

int uco_close(int fd)
{
    struct uco_rt *rt = uco_rt_cur;
    if (!rt || !rt->current)
        return -EPERM;
    struct io_uring_sqe *sqe = reactor_sqe(rt);
    io_uring_prep_close(sqe, fd);
    return reactor_await_always(rt, sqe);
}

int uco_fallocate(int fd, int mode, int64_t offset, int64_t len)
{
    GET_SQE(sqe);
    io_uring_prep_fallocate(sqe, fd, mode, (off_t)offset, (off_t)len);
    return uco_await(sqe);
}

int uco_unlink(const char *path)
{
    GET_SQE(sqe);
    io_uring_prep_unlinkat(sqe, AT_FDCWD, path, 0);
    return uco_await(sqe);
}

int uco_rename(const char *from, const char *to)
{
    GET_SQE(sqe);
    io_uring_prep_renameat(sqe, AT_FDCWD, from, AT_FDCWD, to, 0);
    return uco_await(sqe);
}

int uco_mkdir(const char *path, mode_t mode)
{
    GET_SQE(sqe);
    io_uring_prep_mkdirat(sqe, AT_FDCWD, path, mode);
    return uco_await(sqe);
}
