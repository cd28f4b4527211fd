/* Test support for the qemu-aarch64 build: a reactor with no ring (qemu-user
 * has no io_uring).  Nothing is ever in flight, so the scheduler runs
 * tasks until they finish or all park, which it reports as a deadlock. */
#include <errno.h>

#include "internal.h"

int reactor_init(struct uco_rt *rt, const uco_config *cfg)
{
    (void)rt;
    (void)cfg;
    return 0;
}

void reactor_fini(struct uco_rt *rt) { (void)rt; }

unsigned reactor_poll(struct uco_rt *rt, bool block)
{
    (void)rt;
    (void)block;
    return 0;
}


/* No timers without a ring: a deadline wait just parks until woken. */
int reactor_timer_park(struct uco_rt *rt, uint64_t deadline)
{
    (void)deadline;
    sched_park(rt, T_PARKED_WAIT);
    return -ECANCELED;
}

void reactor_cancel(struct uco_rt *rt, struct uco_op *op)
{
    (void)rt;
    (void)op;
}

void offload_fini(struct uco_rt *rt) { (void)rt; }
