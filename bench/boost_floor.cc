// The best public switch to beat: Boost.Context's jump_fcontext, measured
// in the same binary as uco's switch (switch/boost_jump_fcontext).
#include <boost/context/detail/fcontext.hpp>
#include <sys/mman.h>

#include "harness.h"

namespace ctx = boost::context::detail;

static void bounce(ctx::transfer_t t)
{
    for (;;)
        t = ctx::jump_fcontext(t.fctx, nullptr); // straight back to the caller
}

static void boost_switch(bench_state *s)
{
    const size_t size = 64 * 1024;
    char *stack = static_cast<char *>(
        mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ctx::fcontext_t f = ctx::make_fcontext(stack + size, size, bounce);
    while (bench_keep_running(s))
        f = ctx::jump_fcontext(f, nullptr).fctx; // there and back
    bench_set_items(s, bench_iterations(s) * 2);
    munmap(stack, size);
}

extern "C" void bench_boost_register(void)
{
    bench_unit_ns(bench_register("switch/boost_jump_fcontext", boost_switch));
}
