#!/usr/bin/env python3
"""Turns a Google Benchmark JSON file from `make bench` into report.md:
medians with min/max over the repetitions, and the uco/threads ratios."""
import json
import statistics
import sys
from collections import defaultdict


def load(path):
    with open(path) as f:
        doc = json.load(f)
    runs = defaultdict(list)  # name -> [ns per item, ...]
    for b in doc["benchmarks"]:
        if b.get("run_type") != "iteration" or "items_per_second" not in b:
            continue
        runs[b["run_name"]].append(1e9 / b["items_per_second"])
    return doc["context"], {k: (min(v), statistics.median(v), max(v)) for k, v in runs.items()}


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
    ctx, r = load(src)
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
    with open(out, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
