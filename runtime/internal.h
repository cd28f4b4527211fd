/* Private declarations shared by the runtime's layers; never installed.
 * Layers, bottom up: arch switch, stack, coro, sched, reactor, ops. */
#ifndef UCO_INTERNAL_H
#define UCO_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uco.h"

#define UCO_HIDDEN __attribute__((visibility("hidden")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#if defined(__SANITIZE_ADDRESS__)
#define UCO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UCO_ASAN 1
#endif
#endif

/* ---- arch: the hand-written switch (runtime/arch/<arch>/switch.S) ---- */
void uco_arch_switch(void **save_sp, void *new_sp) UCO_HIDDEN;
void uco_arch_trampoline(void) UCO_HIDDEN;

/* ---- stack.c: mmap'd stacks with a guard below, pooled ---- */
#define STACK_GUARD ((size_t)16 * 1024) /* never committed, any access faults */

struct stack {
    char *base;     /* start of the mapping; the guard comes first */
    size_t len;     /* whole mapping, guard included */
    unsigned vg_id; /* valgrind's id for the registered stack */
};

struct stack_pool {
    struct stack *items;
    unsigned n, cap;
    size_t size;      /* usable size of pooled stacks (the default) */
    bool guard_advise; /* guards via MADV_GUARD_INSTALL, else mprotect */
};

int stack_pool_init(struct stack_pool *p, size_t size, unsigned cap) UCO_HIDDEN;
void stack_pool_fini(struct stack_pool *p) UCO_HIDDEN;
int stack_get(struct stack_pool *p, size_t size, struct stack *out) UCO_HIDDEN;
/* Pools s when there is room (safe while still running on it: nobody
 * reuses it before the caller switches away); else returns false. */
bool stack_pool_put(struct stack_pool *p, const struct stack *s) UCO_HIDDEN;
void stack_unmap(struct stack *s) UCO_HIDDEN;
size_t stack_round(size_t size) UCO_HIDDEN;

static inline char *stack_lo(const struct stack *s) { return s->base + STACK_GUARD; }
static inline size_t stack_usable(const struct stack *s) { return s->len - STACK_GUARD; }

/* ---- compat.c: kernel feature probes and fallbacks, all in one place ---- */
struct io_uring;
int compat_ring_init(struct io_uring *ring, unsigned entries, unsigned cfg_flags,
                     unsigned *setup_flags) UCO_HIDDEN;
bool compat_guard_probe(void) UCO_HIDDEN;
int compat_guard_install(void *addr, size_t len, bool advise) UCO_HIDDEN;

/* ---- coro.c: execution contexts on top of the switch ---- */
struct coro {
    void *sp;        /* saved stack pointer while suspended */
    void *stack_lo;  /* usable stack bounds, for the sanitizers */
    size_t stack_size;
    void *asan_fake; /* ASan's fake stack of this context while away */
};

void coro_init(struct coro *c, void *lo, size_t size, void (*entry)(void *), void *arg) UCO_HIDDEN;
void coro_init_thread(struct coro *c) UCO_HIDDEN;
void coro_started(void) UCO_HIDDEN;
void coro_switch(struct coro *from, struct coro *to) UCO_HIDDEN;
void coro_exit(struct coro *to) __attribute__((noreturn)) UCO_HIDDEN;
void coro_stack_reuse(void *lo, size_t size) UCO_HIDDEN;

/* ---- sched.c: tasks, run queue, uco_run ---- */
enum task_state { T_READY, T_RUNNING, T_PARKED_IO, T_PARKED_USER, T_PARKED_JOIN, T_DONE };

#define TF_DETACHED 1u
#define TF_JOINED 2u /* a joiner waits, or has taken the result */

struct uco_task {
    struct coro ctx;
    struct stack stack;
    struct uco_rt *rt;
    uco_fn fn;
    void *arg;
    intptr_t result;
    uint64_t id;
    enum task_state state;
    unsigned flags;
    int wake_value;
    uco_task *joiner;
    uco_task *next;               /* run queue */
    uco_task *all_prev, *all_next; /* every task not yet freed */
};

struct reactor;

struct uco_rt {
    struct coro sched_ctx; /* the thread's own stack: runs the loop */
    uco_task *current;     /* NULL while the loop itself runs */
    uco_task *runq_head, *runq_tail;
    unsigned runq_len;
    unsigned budget;       /* switches left in this pass before the loop polls */
    size_t live;           /* tasks not finished */
    uco_task *all;
    uint64_t next_id;
    struct stack_pool pool;
    struct stack dead;     /* a finished task's stack, unmapped off-stack */
    struct reactor *reactor;
    bool deadlock;
    /* overflow.c */
    struct sigaction old_segv;
    stack_t old_altstack;
    void *altstack;
    bool segv_installed;
};

extern __thread struct uco_rt *uco_rt_cur
    __attribute__((tls_model("initial-exec"))) UCO_HIDDEN;

/* The running task of this thread's runtime, or NULL. */
static inline uco_task *sched_current(void)
{
    struct uco_rt *rt = uco_rt_cur;
    return rt ? rt->current : NULL;
}

/* Parks the running task in state st until sched_wake(); does not check. */
void sched_park(struct uco_rt *rt, enum task_state st) UCO_HIDDEN;
/* Makes a parked task runnable (at the tail of the run queue). */
void sched_wake(struct uco_rt *rt, uco_task *t) UCO_HIDDEN;

/* ---- overflow.c: guard-page hits reported by name ---- */
int overflow_install(struct uco_rt *rt) UCO_HIDDEN;
void overflow_remove(struct uco_rt *rt) UCO_HIDDEN;

/* ---- reactor.c (or a ringless stand-in for the qemu tests) ---- */
int reactor_init(struct uco_rt *rt, const uco_config *cfg) UCO_HIDDEN;
void reactor_fini(struct uco_rt *rt) UCO_HIDDEN;
/* Submits queued SQEs and dispatches completions; blocks for at least one
 * completion when block is set.  Returns how many operations are still in
 * flight (0 means nothing can ever complete). */
unsigned reactor_poll(struct uco_rt *rt, bool block) UCO_HIDDEN;
unsigned reactor_inflight(struct uco_rt *rt) UCO_HIDDEN;

#endif
