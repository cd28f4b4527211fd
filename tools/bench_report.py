#!/usr/bin/env python3
"""Turns a Google Benchmark JSON file from `make bench` into report.md:
medians with min/max over the repetitions, and the uco/threads ratios."""
import errno
import json
import os
import statistics
import sys
from collections import defaultdict


def stats(values):
    return min(values), statistics.median(values), max(values)


# Fields of a Google Benchmark run that are not user counters.
NOT_COUNTERS = {"name", "run_name", "run_type", "family_index", "per_family_instance_index",
                "repetitions", "repetition_index", "iterations", "real_time",
                "cpu_time", "time_unit", "items_per_second", "bytes_per_second", "label",
                "error_occurred", "error_message", "aggregate_name", "aggregate_unit"}


def load(path):
    with open(path) as f:
        doc = json.load(f)
    runs = defaultdict(list)  # name -> [ns per item, ...]
    counters = defaultdict(list)  # (name, counter) -> [value, ...]
    for b in doc["benchmarks"]:
        if b.get("run_type") != "iteration" or b.get("error_occurred"):
            continue
        if "items_per_second" in b:
            runs[b["run_name"]].append(1e9 / b["items_per_second"])
        for c, v in b.items():
            if c not in NOT_COUNTERS and isinstance(v, (int, float)):
                counters[(b["run_name"], c)].append(v)
    return (doc["context"], {k: stats(v) for k, v in runs.items()},
            {k: stats(v) for k, v in counters.items()})


def span(t, unit=""):
    return f"{t[1]:.1f}{unit} [{t[0]:.1f} – {t[2]:.1f}]"


def fmt(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.1f} ns"


def find(runs, prefix):
    """The run name that starts with prefix (Google Benchmark appends
    /iterations:N, /repeats:N, /real_time as the case asks)."""
    names = sorted({k[0] if isinstance(k, tuple) else k for k in runs})
    return next((n for n in names if n == prefix or n.startswith(prefix + "/")), None)


def cell(t):
    """ns per item with [min – max], and the median rate."""
    rate = 1e9 / t[1]
    rate = f"{rate / 1e6:.2f} M/s" if rate >= 1e6 else f"{rate / 1e3:.0f} k/s"
    return f"{fmt(t[1])} [{fmt(t[0])} – {fmt(t[2])}], {rate}"


def file_section(r):
    rows = []
    for depth in (1, 2, 4, 8, 16, 32, 64):
        u, t = find(r, f"file/uco_read/{depth}"), find(r, f"file/threads_pread/{depth}")
        if not u and not t:
            continue
        ratio = f"{r[t][1] / r[u][1]:.2f}x" if u and t else "–"
        rows.append(f"| {depth} | {cell(r[u]) if u else 'skipped'} | "
                    f"{cell(r[t]) if t else 'skipped'} | {ratio} |")
    if not rows:
        return []
    return ["## File reads", "",
            "Random 4 KiB reads from a 64 MiB file in the page cache: at depth N, N coroutines "
            "each awaiting `uco_read` (up to N reads in flight on one ring, one thread) beside "
            "a pool of N threads each blocking in `pread`. Time per read, median [min – max], "
            "and reads per second.", "",
            "| depth | uco | threads | ratio (threads / uco) |", "|---|---|---|---|"] + rows + [
            "", "A ratio above 1 means uco is faster. The page cache answers every read "
            "inline, so this is the cost of one read through each path; the threads may use "
            "both cores, the coroutines use one.", ""]


def num(v):
    return f"{v:,.0f}"


def gib(v):
    return f"{v / 2**30:.2f} GiB" if v >= 2**30 else f"{v / 2**20:.0f} MiB"


def stop_reason(cv, name, call):
    code = int(cv(name, "stop"))
    sig = cv(name, "killed_by_signal")
    if sig:
        return f"the child was killed by signal {int(sig)}"
    if code == 0:
        return "4 GiB reached"
    if code == -2:
        return f"the time cap ({cv(name, 'time_cap_s'):.0f} s) before 4 GiB"
    if code > 0:
        return f"{call} failing with {errno.errorcode.get(code, code)} ({os.strerror(code)})"
    return "unknown"


def capacity_section(c):
    mu, mt = find(c, "memory/uco_capacity_4gib"), find(c, "memory/threads_capacity_4gib")
    if not mu and not mt:
        return []

    def cv(name, key, default=0):
        v = c.get((name, key))
        return v[1] if v else default

    lines = ["## Memory capacity: idle tasks within 4 GiB", "",
             "In a forked child: parked coroutines (default stacks) or blocked threads "
             "(default stacks) are created until the child's resident memory has grown by "
             "4 GiB or creation fails. Measured once per run.", ""]
    if mu:
        lines.append(f"- **uco**: {num(cv(mu, 'count'))} parked coroutines within 4 GiB "
                     f"({gib(cv(mu, 'rss_at_count'))} resident, {num(cv(mu, 'bytes_per_task'))} B each); "
                     f"stopped by: {stop_reason(cv, mu, 'uco_spawn_ex')}.")
    if mt:
        lines.append(f"- **threads**: {num(cv(mt, 'count'))} blocked threads "
                     f"({cv(mt, 'stack_size') / 2**20:.0f} MiB default stacks), "
                     f"{gib(cv(mt, 'rss_at_count'))} resident, {num(cv(mt, 'bytes_per_task'))} B each, "
                     f"plus {cv(mt, 'kernel_stack_per_thread') / 1024:.0f} KiB of kernel stack each that RSS "
                     f"does not show; stopped by: {stop_reason(cv, mt, 'pthread_create')}.")
        # Which limit was closest: used / limit for each (root ignores RLIMIT_NPROC).
        used = {"kernel.pid_max": (cv(mt, "sched_entities"), cv(mt, "pid_max")),
                "kernel.threads-max": (cv(mt, "sched_entities"), cv(mt, "threads_max")),
                "vm.max_map_count": (cv(mt, "maps_at_stop"), cv(mt, "max_map_count"))}
        near = max(used, key=lambda k: used[k][0] / used[k][1] if used[k][1] > 0 else 0)
        lines += [f"  At the stop: {num(cv(mt, 'sched_entities'))} threads on the machine, "
                  f"{num(cv(mt, 'maps_at_stop'))} mappings in the child; one more mmap "
                  f"{'still worked (so vm.max_map_count was not what failed)' if cv(mt, 'map_probe_ok') else 'failed'}. "
                  f"Closest to its limit: {near} ({num(used[near][0])} of {num(used[near][1])}).",
                  f"  Limits: vm.max_map_count {num(cv(mt, 'max_map_count'))}, kernel.threads-max "
                  f"{num(cv(mt, 'threads_max'))}, kernel.pid_max {num(cv(mt, 'pid_max'))}, "
                  f"RLIMIT_NPROC {'unlimited' if cv(mt, 'rlimit_nproc') < 0 else num(cv(mt, 'rlimit_nproc'))}"
                  f"{' (not enforced for root)' if cv(mt, 'root') else ''}."]
    if mu and cv(mu, "rss_1m"):
        mem = cv(mu, "mem_total")
        fits = f" of this machine's {gib(mem)}" if mem else ""
        lines.append(f"- **1,000,000 parked coroutines**: {gib(cv(mu, 'rss_1m'))} resident{fits} "
                     f"({num(cv(mu, 'rss_1m') / 1e6)} B each), "
                     f"{num(cv(mu, 'maps_1m'))} mappings in the whole process"
                     + (" (the guard regions do not split the stacks' mappings)." if cv(mu, "maps_1m") < 10000
                        else "."))
    elif mu:
        lines.append("- **1,000,000 parked coroutines**: not reached (see the stop above).")
    if mu and mt and cv(mt, "count"):
        lines.append(f"- uco fits {cv(mu, 'count') / cv(mt, 'count'):.1f}x as many idle tasks as the "
                     "threads reached.")
        per = cv(mt, "bytes_per_task") + cv(mt, "kernel_stack_per_thread")
        if cv(mt, "stop") != 0 and per > 0:
            lines.append(f"  The threads stopped at a kernel limit, not at 4 GiB: by memory alone "
                         f"(RSS plus kernel stack, {num(per)} B each) 4 GiB would hold about "
                         f"{num(2**32 / per)} of them, {cv(mu, 'count') * per / 2**32:.1f}x fewer "
                         f"than the coroutines.")
    return lines + [""]


# (what, uco case, other case, other's label, the other is a floor uco
# approaches rather than threads it beats); ratio = other / uco
PAIRS = [
    ("switch: hand-off", "switch/uco_yield", "switch/thread_futex_same_core/real_time", "futex, one core", False),
    ("switch: hand-off", "switch/uco_yield", "switch/thread_futex_cross_core/real_time", "futex, two cores", False),
    ("switch: park/wake", "switch/uco_park_wake", "switch/thread_futex_same_core/real_time", "futex, one core", False),
    ("switch: bare asm", "switch/asm_floor", "switch/boost_jump_fcontext", "Boost jump_fcontext", True),
    ("spawn + join", "spawn/uco", "spawn/pthread/real_time", "pthread_create + join", False),
    ("channel ping-pong", "chan/uco", "chan/thread_condvar/real_time", "mutex + condvar", False),
    ("pipe ping-pong", "pipe/uco/real_time", "pipe/threads/real_time", "two threads, blocking I/O", False),
    ("NOP await, 1 task", "await/uco_nop/1/real_time", "await/raw_liburing_nop/1/real_time", "raw liburing, batch 1", True),
    ("NOP await, 64 tasks", "await/uco_nop/64/real_time", "await/raw_liburing_nop/64/real_time", "raw liburing, batch 64", True),
]


def render(src, loaded):
    """The micro report as markdown; loaded is load(src)."""
    ctx, r, c = loaded
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
    for what, a, b, label, _ in PAIRS:
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
    lines += file_section(r)
    mu, mt = "memory/uco_100k_idle_tasks/iterations:1/real_time", "memory/threads_10k_idle/iterations:1/real_time"
    if (mu, "bytes_per_task") in c and (mt, "bytes_per_task") in c:
        u, th = c[(mu, "bytes_per_task")], c[(mt, "bytes_per_task")]
        lines += ["## Memory", "",
                  f"Resident bytes per idle task: uco {span(u, ' B')} (100,000 parked coroutines), "
                  f"threads {span(th, ' B')} (10,000 blocked threads, default stacks): "
                  f"{th[1] / u[1]:.2f}x.", ""]
    lines += capacity_section(c)
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
    return "\n".join(lines)


def main():
    src, out = sys.argv[1], sys.argv[2]
    with open(out, "w") as f:
        f.write(render(src, load(src)))


if __name__ == "__main__":
    main()
