#!/usr/bin/env python3
"""Turns a Google Benchmark JSON file from `make bench` into report.md:
medians with min/max over the repetitions, and the uco/threads ratios."""
import json
import statistics
import sys
from collections import defaultdict


def stats(values):
    return min(values), statistics.median(values), max(values)


def load(path):
    with open(path) as f:
        doc = json.load(f)
    runs = defaultdict(list)  # name -> [ns per item, ...]
    counters = defaultdict(list)  # (name, counter) -> [value, ...]
    for b in doc["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        if "items_per_second" in b:
            runs[b["run_name"]].append(1e9 / b["items_per_second"])
        for c in ("late_p50_us", "late_p99_us", "bytes_per_task", "threads"):
            if c in b:
                counters[(b["run_name"], c)].append(b[c])
    return (doc["context"], {k: stats(v) for k, v in runs.items()},
            {k: stats(v) for k, v in counters.items()})


def span(t, unit=""):
    return f"{t[1]:.1f}{unit} [{t[0]:.1f} – {t[2]:.1f}]"


def fmt(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.1f} ns"


# (what, uco case, other case, other's label); ratio = other / uco
PAIRS = [
    ("switch: hand-off", "switch/uco_yield", "switch/thread_futex_same_core/real_time", "futex, one core"),
    ("switch: hand-off", "switch/uco_yield", "switch/thread_futex_cross_core/real_time", "futex, two cores"),
    ("switch: park/wake", "switch/uco_park_wake", "switch/thread_futex_same_core/real_time", "futex, one core"),
    ("switch: bare asm", "switch/asm_floor", "switch/boost_jump_fcontext", "Boost jump_fcontext"),
    ("spawn + join", "spawn/uco", "spawn/pthread/real_time", "pthread_create + join"),
    ("channel ping-pong", "chan/uco", "chan/thread_condvar/real_time", "mutex + condvar"),
    ("pipe ping-pong", "pipe/uco/real_time", "pipe/threads/real_time", "two threads, blocking I/O"),
    ("NOP await, 1 task", "await/uco_nop/1/real_time", "await/raw_liburing_nop/1/real_time", "raw liburing, batch 1"),
    ("NOP await, 64 tasks", "await/uco_nop/64/real_time", "await/raw_liburing_nop/64/real_time", "raw liburing, batch 64"),
]


def main():
    src, out = sys.argv[1], sys.argv[2]
    ctx, r, c = load(src)
    lines = [
        "# uco microbenchmarks",
        "",
        f"Machine: {ctx.get('host_name', '?')}, {ctx.get('num_cpus', '?')} CPUs at "
        f"{ctx.get('mhz_per_cpu', '?')} MHz; run {ctx.get('date', '?')}; source `{src}`.",
        "Each figure: time per item (one switch, one spawn, one round trip, one NOP), "
        "median of the repetitions with [min – max].",
        "",
        "| what | uco | compared with | that | ratio (that / uco) |",
        "|---|---|---|---|---|",
    ]
    for what, a, b, label in PAIRS:
        if a not in r or b not in r:
            lines.append(f"| {what} | {'skipped' if a not in r else fmt(r[a][1])} | {label} | "
                         f"{'skipped' if b not in r else fmt(r[b][1])} | – |")
            continue
        (amin, amed, amax), (bmin, bmed, bmax) = r[a], r[b]
        lines.append(f"| {what} | {fmt(amed)} [{fmt(amin)} – {fmt(amax)}] | {label} | "
                     f"{fmt(bmed)} [{fmt(bmin)} – {fmt(bmax)}] | {bmed / amed:.2f}x |")
    lines += ["", "A ratio above 1 means uco is faster; below 1, the other side is "
              "(for the bare switch and the raw liburing floor, below 1 is the runtime's cost).", ""]
    t = "timers/uco_10k_sleeps/iterations:3/real_time"
    if (t, "late_p50_us") in c:
        lines += ["## Timers", "",
                  f"10,000 concurrent sleeps of 1-51 ms: wake-up lateness p50 "
                  f"{span(c[(t, 'late_p50_us')], ' µs')}, p99 {span(c[(t, 'late_p99_us')], ' µs')}.", ""]
    mu, mt = "memory/uco_100k_idle_tasks/iterations:1/real_time", "memory/threads_10k_idle/iterations:1/real_time"
    if (mu, "bytes_per_task") in c and (mt, "bytes_per_task") in c:
        u, th = c[(mu, "bytes_per_task")], c[(mt, "bytes_per_task")]
        lines += ["## Memory", "",
                  f"Resident bytes per idle task: uco {span(u, ' B')} (100,000 parked coroutines), "
                  f"threads {span(th, ' B')} (10,000 blocked threads, default stacks): "
                  f"{th[1] / u[1]:.2f}x.", ""]
    cpu = [("threads on 2 cores", "cpu/threads_2_cores/real_time"),
           ("coroutines on 1 core", "cpu/coroutines_1_core/real_time"),
           ("uco_offload, 2 threads", "cpu/uco_offload_2_threads/real_time")]
    if all(k in r for _, k in cpu):
        base = r[cpu[0][1]][1]
        lines += ["## CPU-bound work (threads should win)", "",
                  "| how | time per work unit | vs threads |", "|---|---|---|"]
        for label, k in cpu:
            lines.append(f"| {label} | {fmt(r[k][1])} [{fmt(r[k][0])} – {fmt(r[k][2])}] | "
                         f"{r[k][1] / base:.2f}x the time |")
        lines += ["", "Coroutines share one core: for CPU-bound work use threads, or "
                  "`uco_offload` to keep the loop free while the pool uses both cores.", ""]
    with open(out, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
