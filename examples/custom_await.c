/* The seed's custom awaitable (a class with __await__) in C: any io_uring
 * operation becomes awaitable by filling an SQE from uco_sqe() and passing
 * it to uco_await().  Here: an IORING_OP_TIMEOUT of one second.
 *     class Wait:
 *         def __await__(self): yield from asyncio.sleep(1).__await__()
 */
#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include <uco.h>

/* The awaitable: its state lives in the caller's frame. */
struct wait {
    struct __kernel_timespec ts;
};

static int wait_await(struct wait *w)
{
    struct io_uring_sqe *sqe = uco_sqe();
    if (!sqe)
        return -EPERM;
    io_uring_prep_timeout(sqe, &w->ts, 0, 0);
    int res = uco_await(sqe);
    return res == -ETIME ? 0 : res; /* a timeout "fails" with ETIME when it fires */
}

static intptr_t use_wait(void *arg)
{
    (void)arg;
    printf("Waiting...\n");
    fflush(stdout);
    struct wait w = {.ts = {.tv_sec = 1}};
    int ret = wait_await(&w);
    if (ret < 0)
        return ret;
    printf("Done\n");
    return 0;
}

int main(void)
{
    intptr_t ret = uco_run(use_wait, NULL, NULL);
    if (ret < 0) {
        fprintf(stderr, "custom_await: %s\n", strerror((int)-ret));
        return 1;
    }
    return 0;
}
