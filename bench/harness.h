/* A small C API over Google Benchmark: benchmarks are C functions that
 * loop on a state; Google Benchmark's console and JSON output are kept,
 * so its own compare tools work on our results.  Implemented in
 * harness.cc. */
#ifndef UCO_BENCH_HARNESS_H
#define UCO_BENCH_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bench_state bench_state; /* a benchmark::State */
typedef struct bench_def bench_def;     /* a registered benchmark */
typedef void (*bench_fn)(bench_state *s);

/* The loop: while (bench_keep_running(s)) { one iteration } */
bool bench_keep_running(bench_state *s);
int64_t bench_range(bench_state *s, int i);   /* the i-th argument */
int64_t bench_iterations(bench_state *s);
void bench_set_items(bench_state *s, int64_t items); /* items/s column */
void bench_set_bytes(bench_state *s, int64_t bytes); /* bytes/s column */
/* A named figure: rate = per second, avg = divided by iterations. */
void bench_counter(bench_state *s, const char *name, double value);
void bench_counter_avg(bench_state *s, const char *name, double value);
void bench_pause(bench_state *s);
void bench_resume(bench_state *s);
void bench_skip(bench_state *s, const char *why); /* reported as an error */

bench_def *bench_register(const char *name, bench_fn fn);
bench_def *bench_arg(bench_def *b, int64_t v);
bench_def *bench_real_time(bench_def *b);   /* wall clock, not CPU time */
bench_def *bench_unit_ns(bench_def *b);
bench_def *bench_unit_us(bench_def *b);
bench_def *bench_min_time(bench_def *b, double seconds);
bench_def *bench_fixed_iterations(bench_def *b, int64_t n);
/* Runs this case n times whatever --benchmark_repetitions says (for cases
 * too long to repeat in a quick run). */
bench_def *bench_repetitions(bench_def *b, int n);

/* Parses Google Benchmark's flags (--benchmark_filter, _format=json,
 * _out, _repetitions ...) and runs what is registered. */
int bench_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
