/* Time: uco_sleep, on the scheduler's timers (no SQE per sleep). */
#include <errno.h>

#include "internal.h"

int uco_sleep(uint64_t nsec)
{
    struct uco_rt *rt = uco_rt_cur;
    if (!rt || !rt->current)
        return -EPERM;
    if (nsec == 0)
        return uco_yield();
    /* An absolute deadline, taken now: tasks wake in the order of their
     * deadlines however long the pass that follows takes. */
    return sched_sleep(rt, uco_now() + nsec);
}
