/* Execution contexts on top of the assembly switch, and what the
 * sanitizers must be told about them.  No io_uring here: this layer runs
 * under qemu-user, which has no ring. */
#include <pthread.h>
#include <string.h>

#include "internal.h"

#ifdef UCO_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

/* Lays out a frame that uco_arch_switch "returns" into: the trampoline
 * starts entry(arg) with the default FP environment. */
void coro_init(struct coro *c, void *lo, size_t size, void (*entry)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
    c->stack_lo = lo;
    c->stack_size = size;
    c->asan_fake = NULL;
#if defined(__x86_64__)
    /* Nine slots, see switch.S; the last one sits at top - 8 so that the
     * trampoline is entered with rsp = 8 mod 16, as after a call. */
    uint64_t *f = (uint64_t *)top - 9;
    memset(f, 0, 9 * sizeof(*f));
    f[0] = 0x1f80ull | (0x037full << 32); /* MXCSR, x87 control word */
    f[3] = (uint64_t)(uintptr_t)entry;    /* r13 */
    f[4] = (uint64_t)(uintptr_t)arg;      /* r12 */
    f[7] = (uint64_t)(uintptr_t)uco_arch_trampoline;
    /* f[8]: zero "return address" above the trampoline ends the chain. */
#elif defined(__aarch64__)
    uint64_t *f = (uint64_t *)(top - 176);
    memset(f, 0, 176);
    f[0] = (uint64_t)(uintptr_t)arg;   /* x19 */
    f[1] = (uint64_t)(uintptr_t)entry; /* x20 */
    f[11] = (uint64_t)(uintptr_t)uco_arch_trampoline; /* x30 */
    /* FPCR 0: round to nearest, no traps. */
#else
#error "uco: unsupported architecture"
#endif
    c->sp = f;
}

/* The thread's own stack, where the scheduler loop runs. */
void coro_init_thread(struct coro *c)
{
    memset(c, 0, sizeof(*c));
#ifdef UCO_ASAN
    pthread_attr_t a;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &c->stack_lo, &c->stack_size);
        pthread_attr_destroy(&a);
    }
#endif
}

/* First thing a new context runs: completes the switch that started it. */
void coro_started(void)
{
#ifdef UCO_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
}

/* Leaves a finished context for good: its fake stack is dropped.  The
 * dying context's sp is written over to->sp, which the switch has already
 * loaded and which `to` rewrites when it next suspends: no slot on the
 * dying stack (ASan may have put locals on the fake stack just dropped)
 * and no slot in a task that may already be freed. */
void coro_exit(struct coro *to)
{
#ifdef UCO_ASAN
    __sanitizer_start_switch_fiber(NULL, to->stack_lo, to->stack_size);
#endif
    uco_arch_switch(&to->sp, to->sp);
    __builtin_unreachable();
}

/* A pooled stack still carries the shadow of its last owner's frames:
 * ASan's poison, and valgrind's view that what lay below that owner's
 * last stack pointer is gone (the new owner's first frame, at another
 * offset from the top, may lie there). */
void coro_stack_reuse(void *lo, size_t size)
{
#ifdef UCO_ASAN
    __asan_unpoison_memory_region(lo, size);
#endif
    vg_undefined(lo, size);
}
