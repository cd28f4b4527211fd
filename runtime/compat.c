/* Kernel feature probes and their fallbacks, kept in one file so that the
 * rest of the runtime can assume one behaviour. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#ifndef UCO_NO_RING
#include <liburing.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 */
#endif

#ifndef UCO_NO_RING
/*
 * Ring setup, asking for the most efficient mode first and dropping flags
 * the kernel refuses (-EINVAL):
 *  - DEFER_TASKRUN + SINGLE_ISSUER (6.1): completions are run only when we
 *    ask, in our thread: no IPIs, no interruption of running tasks;
 *  - COOP_TASKRUN (5.19): the same, weaker, where DEFER is missing;
 *  - SUBMIT_ALL (5.18): one bad SQE does not stop the rest of the batch;
 *  - CQSIZE (5.5): a CQ four times the SQ, so bursts rarely overflow.
 */
int compat_ring_init(struct io_uring *ring, unsigned entries, unsigned cfg_flags,
                     unsigned *setup_flags)
{
    static const unsigned tries[] = {
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER,
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
        IORING_SETUP_SUBMIT_ALL,
        0,
    };
    int ret = -EINVAL;
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        unsigned f = tries[i];
        if ((cfg_flags & UCO_CFG_NO_DEFER_TASKRUN) &&
            (f & (IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER)))
            continue;
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = f | IORING_SETUP_CQSIZE;
        p.cq_entries = entries * 4;
        ret = io_uring_queue_init_params(entries, ring, &p);
        if (ret == 0) {
            *setup_flags = p.flags;
            /* A registered ring fd (5.18) spares io_uring_enter the lookup
             * of the ring's file.  It is this thread's own, as the runtime
             * is; where refused, liburing keeps using the plain fd. */
            (void)io_uring_register_ring_fd(ring);
            return 0;
        }
        if (ret != -EINVAL)
            return ret;
    }
    return ret;
}
#endif

/*
 * Guard pages.  MADV_GUARD_INSTALL (6.13) makes a range fault without
 * splitting the mapping, so a million stacks stay a handful of VMAs
 * (vm.max_map_count is 65530 by default; mprotect costs one more VMA per
 * stack).  An emulator may accept the advice and do nothing, so the probe
 * checks that the kernel really refuses to read the page: write(2) from it
 * must fail with EFAULT.
 */
bool compat_guard_probe(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return false;
    bool ok = false;
    int fds[2];
    if (madvise(p, page, MADV_GUARD_INSTALL) == 0 && pipe2(fds, O_CLOEXEC) == 0) {
        ok = write(fds[1], p, 1) < 0 && errno == EFAULT;
        close(fds[0]);
        close(fds[1]);
    }
    munmap(p, page);
    return ok;
}

int compat_guard_install(void *addr, size_t len, bool advise)
{
    if (advise && madvise(addr, len, MADV_GUARD_INSTALL) == 0)
        return 0;
    return mprotect(addr, len, PROT_NONE) == 0 ? 0 : -errno;
}
