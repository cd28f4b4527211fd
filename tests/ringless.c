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

/* Never waits: the scheduler sleeps until its next timer by itself when
 * nothing is in flight. */
unsigned reactor_poll(struct uco_rt *rt, bool block)
{
    (void)rt;
    (void)block;
    return 0;
}


void reactor_cancel(struct uco_rt *rt, struct uco_op *op)
{
    (void)rt;
    (void)op;
}

void offload_fini(struct uco_rt *rt) { (void)rt; }
