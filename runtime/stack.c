/* Task stacks: mmap'd, lazily committed, a guard region below the usable
 * part, and a bounded pool of default-size stacks for reuse. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UCO_VALGRIND 1
#endif
#endif

size_t stack_round(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (size + page - 1) & ~(page - 1);
}

static int stack_map(size_t size, bool advise, struct stack *out)
{
    size_t len = size + STACK_GUARD;
    /* NORESERVE + no populate: pages are committed only when touched, so an
     * idle task costs the one or two pages it has used. */
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    int ret = compat_guard_install(p, STACK_GUARD, advise);
    if (ret < 0) {
        munmap(p, len);
        return ret;
    }
    out->base = p;
    out->len = len;
#ifdef UCO_VALGRIND
    out->vg_id = VALGRIND_STACK_REGISTER(p + STACK_GUARD, p + len);
#else
    out->vg_id = 0;
#endif
    return 0;
}

void stack_unmap(struct stack *s)
{
    if (!s->base)
        return;
#ifdef UCO_VALGRIND
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
    munmap(s->base, s->len);
    s->base = NULL;
}

int stack_pool_init(struct stack_pool *p, size_t size, unsigned cap)
{
    p->items = calloc(cap ? cap : 1, sizeof(*p->items));
    /* Mapped directly: committed only as far as a burst fills it, and
     * given back whole at the end (malloc would keep it in its heap). */
    p->spare_cap = cap * 32;
    p->spare_bytes = stack_round((p->spare_cap ? p->spare_cap : 1) * sizeof(*p->spare));
    p->spare = mmap(NULL, p->spare_bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (!p->items || p->spare == MAP_FAILED) {
        free(p->items);
        if (p->spare != MAP_FAILED)
            munmap(p->spare, p->spare_bytes);
        p->items = p->spare = NULL;
        return -ENOMEM;
    }
    p->n = p->nspare = 0;
    p->cap = cap;
    p->size = size;
    p->guard_advise = compat_guard_probe();
    return 0;
}

void stack_pool_trim(struct stack_pool *p, unsigned max)
{
    while (p->nspare && max--)
        stack_unmap(&p->spare[--p->nspare]);
}

void stack_pool_fini(struct stack_pool *p)
{
    stack_pool_trim(p, UINT_MAX);
    while (p->n)
        stack_unmap(&p->items[--p->n]);
    free(p->items);
    if (p->spare)
        munmap(p->spare, p->spare_bytes);
    p->items = p->spare = NULL;
}

int stack_get(struct stack_pool *p, size_t size, struct stack *out)
{
    if (size == p->size && (p->n || p->nspare)) {
        *out = p->n ? p->items[--p->n] : p->spare[--p->nspare];
        coro_stack_reuse(stack_lo(out), stack_usable(out));
        return 0;
    }
    return stack_map(size, p->guard_advise, out);
}

bool stack_pool_put(struct stack_pool *p, const struct stack *s)
{
    if (stack_usable(s) != p->size)
        return false;
    if (p->n < p->cap)
        p->items[p->n++] = *s;
    else if (p->nspare < p->spare_cap)
        p->spare[p->nspare++] = *s;
    else
        return false;
    return true;
}
