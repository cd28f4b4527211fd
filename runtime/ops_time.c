/* Time: uco_sleep as an IORING_OP_TIMEOUT. */
#include <errno.h>
#include <liburing.h>
#include <time.h>

#include "internal.h"

int uco_sleep(uint64_t nsec)
{
    struct uco_rt *rt = uco_rt_cur;
    if (!rt || !rt->current)
        return -EPERM;
    if (nsec == 0)
        return uco_yield();
    /* An absolute deadline, taken now: tasks wake in the order of their
     * deadlines whatever the delay before the batch is submitted. */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t at = sched_slack(rt, (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec + nsec);
    struct __kernel_timespec ts = {.tv_sec = (long long)(at / 1000000000u),
                                   .tv_nsec = (long long)(at % 1000000000u)};
    struct io_uring_sqe *sqe = uco_sqe();
    io_uring_prep_timeout(sqe, &ts, 0, IORING_TIMEOUT_ABS);
    int ret = uco_await(sqe);
    return ret == -ETIME ? 0 : ret;
}
