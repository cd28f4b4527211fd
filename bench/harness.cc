// The C harness over Google Benchmark (see harness.h).  bench_state is
// the benchmark::State itself; bench_def the benchmark::internal::Benchmark.
#include "harness.h"

#include <benchmark/benchmark.h>

static benchmark::State &S(bench_state *s) { return *reinterpret_cast<benchmark::State *>(s); }
static benchmark::internal::Benchmark *B(bench_def *b)
{
    return reinterpret_cast<benchmark::internal::Benchmark *>(b);
}
static bench_def *D(benchmark::internal::Benchmark *b) { return reinterpret_cast<bench_def *>(b); }

extern "C" {

bool bench_keep_running(bench_state *s) { return S(s).KeepRunning(); }
int64_t bench_range(bench_state *s, int i) { return S(s).range(i); }
int64_t bench_iterations(bench_state *s) { return static_cast<int64_t>(S(s).iterations()); }
void bench_set_items(bench_state *s, int64_t items) { S(s).SetItemsProcessed(items); }
void bench_set_bytes(bench_state *s, int64_t bytes) { S(s).SetBytesProcessed(bytes); }
void bench_counter(bench_state *s, const char *name, double value)
{
    S(s).counters[name] = benchmark::Counter(value);
}
void bench_counter_avg(bench_state *s, const char *name, double value)
{
    S(s).counters[name] = benchmark::Counter(value, benchmark::Counter::kAvgIterations);
}
void bench_pause(bench_state *s) { S(s).PauseTiming(); }
void bench_resume(bench_state *s) { S(s).ResumeTiming(); }
void bench_skip(bench_state *s, const char *why) { S(s).SkipWithError(why); }

bench_def *bench_register(const char *name, bench_fn fn)
{
    return D(benchmark::RegisterBenchmark(name, [fn](benchmark::State &st) {
        fn(reinterpret_cast<bench_state *>(&st));
    }));
}
bench_def *bench_arg(bench_def *b, int64_t v) { return D(B(b)->Arg(v)); }
bench_def *bench_real_time(bench_def *b) { return D(B(b)->UseRealTime()); }
bench_def *bench_unit_ns(bench_def *b) { return D(B(b)->Unit(benchmark::kNanosecond)); }
bench_def *bench_unit_us(bench_def *b) { return D(B(b)->Unit(benchmark::kMicrosecond)); }
bench_def *bench_min_time(bench_def *b, double seconds) { return D(B(b)->MinTime(seconds)); }
bench_def *bench_fixed_iterations(bench_def *b, int64_t n)
{
    return D(B(b)->Iterations(static_cast<benchmark::IterationCount>(n)));
}
bench_def *bench_repetitions(bench_def *b, int n) { return D(B(b)->Repetitions(n)); }

int bench_main(int argc, char **argv)
{
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 2;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

}  // extern "C"
