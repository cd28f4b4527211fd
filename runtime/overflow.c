/* Stack overflow: a task that runs into its guard region faults; this
 * handler, on an alternate signal stack (the task's own stack is the
 * problem), names the task and aborts instead of letting memory be
 * corrupted.  Faults elsewhere go to the handler that was there before. */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define ALTSTACK_SIZE ((size_t)64 * 1024)

static void put(const char *s)
{
    ssize_t r = write(STDERR_FILENO, s, strlen(s));
    (void)r;
}

static void put_num(uint64_t v, int base)
{
    char buf[24], *p = buf + sizeof(buf) - 1;
    *p = '\0';
    do {
        *--p = "0123456789abcdef"[v % (unsigned)base];
        v /= (unsigned)base;
    } while (v);
    if (base == 16)
        put("0x");
    put(p);
}

static void report(const uco_task *t)
{
    Dl_info info;
    put("uco: stack overflow in task ");
    put_num(t->id, 10);
    put(" (entry ");
    if (dladdr((void *)(uintptr_t)t->fn, &info) && info.dli_sname)
        put(info.dli_sname);
    else
        put_num((uintptr_t)t->fn, 16);
    put(", stack of ");
    put_num(stack_usable(&t->stack), 10);
    put(" bytes): it ran into its guard page; give it a larger stack "
        "(uco_spawn_ex, uco_config.stack_size)\n");
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    struct uco_rt *rt = uco_rt_cur;
    const uco_task *t = rt ? rt->current : NULL;
    char *addr = si->si_addr;
    if (t && t->stack.base && addr >= t->stack.base && addr < stack_lo(&t->stack)) {
        report(t);
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    /* Not ours: put the previous disposition back and let the fault happen
     * again on return, so it is handled (or kills us) as before. */
    if (rt)
        sigaction(sig, &rt->old_segv, NULL);
    else
        signal(sig, SIG_DFL);
}

int overflow_install(struct uco_rt *rt)
{
    rt->altstack = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (rt->altstack == MAP_FAILED) {
        rt->altstack = NULL;
        return -ENOMEM;
    }
    stack_t ss = {.ss_sp = rt->altstack, .ss_size = ALTSTACK_SIZE};
    if (sigaltstack(&ss, &rt->old_altstack) < 0)
        return -errno;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &rt->old_segv) < 0)
        return -errno;
    rt->segv_installed = true;
    return 0;
}

void overflow_remove(struct uco_rt *rt)
{
    if (rt->segv_installed) {
        /* Another runtime of this process may have installed it first;
         * then its saved disposition is ours, and it restores the rest. */
        if (rt->old_segv.sa_sigaction != on_segv)
            sigaction(SIGSEGV, &rt->old_segv, NULL);
        rt->segv_installed = false;
    }
    if (rt->altstack) {
        sigaltstack(&rt->old_altstack, NULL);
        munmap(rt->altstack, ALTSTACK_SIZE);
        rt->altstack = NULL;
    }
}
