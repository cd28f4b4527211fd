/*
 * uco: io_uring coroutines for C.
 *
 * A coroutine (a "task") is a C function running on its own small stack.
 * Every await fills an io_uring SQE and parks the task; the runtime's
 * completion reactor resumes it with the CQE's result.  One runtime runs
 * per thread, started by uco_run().
 *
 * Conventions (as in liburing): functions that can fail return >= 0 on
 * success and -errno on failure; errno is never used to report errors.
 * Calls that may suspend say so.  Calls that await return -EPERM when made
 * outside a coroutine (Python's "await outside async def").
 */
#ifndef UCO_H
#define UCO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct io_uring_sqe;

/* A task: opaque, owned by the runtime until joined or detached. */
typedef struct uco_task uco_task;

/* A task's entry function; its return value is what uco_join() reports. */
typedef intptr_t (*uco_fn)(void *arg);

/* Default stack size of a task: 256 KiB of address space, committed lazily
 * (an idle task touches one or two pages).  A guard page sits below. */
#define UCO_STACK_DEFAULT ((size_t)256 * 1024)
/* Smallest stack accepted by uco_spawn_ex(). */
#define UCO_STACK_MIN ((size_t)16 * 1024)

#define UCO_NSEC(n) ((uint64_t)(n))
#define UCO_USEC(n) ((uint64_t)(n) * 1000u)
#define UCO_MSEC(n) ((uint64_t)(n) * 1000000u)
#define UCO_SEC(n) ((uint64_t)(n) * 1000000000u)

/* Runtime settings for uco_run(); zero fields take the defaults. */
typedef struct uco_config {
    size_t stack_size;     /* default task stack; 0 = UCO_STACK_DEFAULT */
    unsigned ring_entries; /* SQ size (CQ is 4x); 0 = 256 */
    unsigned stack_pool;   /* freed stacks kept for reuse; 0 = 256 */
    unsigned flags;        /* UCO_CFG_* */
} uco_config;

/* Do not ask the kernel for IORING_SETUP_DEFER_TASKRUN / SINGLE_ISSUER
 * (the runtime also falls back by itself when the kernel refuses them). */
#define UCO_CFG_NO_DEFER_TASKRUN 1u

/*
 * asyncio.run(): starts a runtime on the calling thread, runs fn(arg) as the
 * main task and returns its result once main and every task it spawned
 * (directly or not, joined or not) have finished.  Tasks still running when
 * main returns keep running; uco_run waits for them and frees those never
 * joined.  cfg may be NULL.
 * Returns main's result, or -EBUSY when called inside a runtime (never nest
 * uco_run), -EINVAL for a bad cfg, -ENOMEM, a ring setup error, or
 * -EDEADLK when every task is parked with nothing in flight that could
 * wake one (the parked tasks are discarded).  Main should return >= 0 to
 * keep its result apart from these errors.
 */
intptr_t uco_run(uco_fn fn, void *arg, const uco_config *cfg);

/* asyncio.create_task(): spawns fn(arg) as a new task, runnable at once
 * (it first runs when the caller next awaits or yields).  Returns NULL
 * outside a runtime or when out of memory.  Does not suspend. */
uco_task *uco_spawn(uco_fn fn, void *arg);

/* uco_spawn() with a stack of stack_size bytes (0 = the runtime default,
 * rounded up to whole pages).  Stores the task in *out.  Returns 0,
 * -EPERM outside a runtime, -EINVAL for a stack under UCO_STACK_MIN,
 * -ENOMEM. */
int uco_spawn_ex(uco_task **out, uco_fn fn, void *arg, size_t stack_size);

/* Awaits task t and frees it; its result goes to *result (may be NULL).
 * Each task is joined at most once.  May suspend.  Returns 0, -EPERM
 * outside a coroutine, -EDEADLK when t is the caller, -EINVAL when t is
 * NULL, detached, or already has a joiner. */
int uco_join(uco_task *t, intptr_t *result);

/* asyncio.gather(): joins the n tasks in order, results[i] for tasks[i]
 * (results may be NULL).  Always joins every task; returns 0 or the first
 * error from uco_join().  May suspend. */
int uco_gather(uco_task *const *tasks, size_t n, intptr_t *results);

/* Lets t run without a joiner: its memory is freed when it finishes.
 * Returns 0, or -EINVAL when t is NULL, already detached or joined. */
int uco_detach(uco_task *t);

/* Lets every other runnable task run once, then resumes.  Returns 0, or
 * -EPERM outside a coroutine. */
int uco_yield(void);

/* The running task, or NULL outside a coroutine. */
uco_task *uco_self(void);

/* asyncio.sleep(): suspends the caller for nsec nanoseconds (an
 * IORING_OP_TIMEOUT on CLOCK_MONOTONIC); 0 yields.  Returns 0, or -EPERM
 * outside a coroutine. */
int uco_sleep(uint64_t nsec);

/*
 * Custom awaitables (Python's __await__), built from any io_uring operation:
 *     struct io_uring_sqe *sqe = uco_sqe();
 *     io_uring_prep_xxx(sqe, ...);
 *     int res = uco_await(sqe);
 * uco_sqe() returns a cleared SQE of the running runtime's ring (the full
 * queue is submitted first when needed; NULL outside a coroutine).  The
 * caller preps it, leaves user_data alone, and awaits it before any other
 * await.  uco_await() submits it with the next batch, parks the caller and
 * returns the CQE's res (>= 0 or -errno).  Memory the SQE points to must
 * stay valid until uco_await returns.  -EPERM outside a coroutine, -EINVAL
 * for a NULL sqe.
 */
struct io_uring_sqe *uco_sqe(void);
int uco_await(struct io_uring_sqe *sqe);

/* Same, also storing the CQE's flags (IORING_CQE_F_*) in *cqe_flags. */
int uco_await_flags(struct io_uring_sqe *sqe, unsigned *cqe_flags);

/*
 * Park / wake, for awaitables that are not io_uring operations.
 * uco_park() suspends the caller until another task of the same runtime
 * calls uco_wake(t, value); it then returns value.  -EPERM outside a
 * coroutine.  uco_wake() makes a parked task runnable and does not
 * suspend; it returns 0, -EINVAL when t is not parked in uco_park(), or
 * -EPERM outside the runtime that owns t.
 */
int uco_park(void);
int uco_wake(uco_task *t, int value);

#ifdef __cplusplus
}
#endif
#endif /* UCO_H */
