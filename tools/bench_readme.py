"""The README's results block, made from one `make bench` run.

bench_summary.py calls readme_block() with what it has already loaded and
write_readme() to replace the text between the README's markers, so the
README always shows the latest run and says where it was taken.
"""
import bench_report

START, END = "<!-- bench-results -->", "<!-- /bench-results -->"

def thousands(v):
    return f"{v:,.0f}" if v is not None else "–"


def ms_or_us(us):
    if us is None:
        return "–"
    if us >= 1000:
        return f"{us / 1000:.1f} ms"
    return f"{us:.0f} µs" if us >= 100 else f"{us:.1f} µs"


def micro_table(runs):
    out = ["| micro (time per item) | uco | threads / the floor | ratio |", "|---|---|---|---|"]
    for what, a, b, label, floor in bench_report.PAIRS:
        if a not in runs or b not in runs:
            continue
        ua, ub = runs[a][1], runs[b][1]
        ratio = f"{ua / ub:.2f}x the floor" if floor else f"{ub / ua:.0f}x cheaper"
        out.append(f"| {what} | {bench_report.fmt(ua)} | {label}: {bench_report.fmt(ub)} "
                   f"| {ratio} |")
    return out + [""]


def echo_table(macro, paired, conns=1000, size=64):
    rows = [e for e in macro.get("echo", [])
            if (e["connections"], e["size"]) == (conns, size) and e["runs"]]
    by = {e["server"]: e for e in rows}
    floor = by.get("uring")
    out = [f"| echo server, {conns} connections, {size} B | req/s | p99 | server CPU per request "
           "| CPU ÷ the floor's |", "|---|---|---|---|---|"]
    for e in rows:
        pr = paired(e, floor, "cpu_us_per_req") if floor else None
        out.append(f"| {e['label']} | {thousands(e['rps']['median'])} | "
                   f"{ms_or_us(e['p99_us']['median'])} | {e['cpu_us_per_req']['median']:.2f} µs | "
                   + (f"{pr['median']:.2f}x |" if pr else "– |"))
    return out + [""] if rows else []


def http_table(macro):
    by = {(h["server"], h["path"]): h for h in macro.get("http", []) if h["runs"]}
    if not by:
        return []
    conns = next(iter(by.values()))["connections"]
    out = [f"| file server, {conns} connections (wrk) | 1 KiB: req/s | CPU/req | 1 MiB: req/s "
           "| CPU/req |", "|---|---|---|---|---|"]
    for name, label in (("uco", "uco file_server"), ("nginx", "nginx, 1 worker")):
        cells = []
        for path in ("1k.bin", "1m.bin"):
            h = by.get((name, path))
            cells += ([thousands(h["rps"]["median"]), ms_or_us(h["cpu_us_per_req"]["median"])]
                      if h else ["–", "–"])
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out + [""]


def bullets(runs, counters, target_rows):
    def cv(name, key):
        v = counters.get((name, key))
        return v[1] if v else None

    out = []
    mu, mt = "memory/uco_100k_idle_tasks/iterations:1/real_time", \
        "memory/threads_10k_idle/iterations:1/real_time"
    cu = bench_report.find(counters, "memory/uco_capacity_4gib")
    ct = bench_report.find(counters, "memory/threads_capacity_4gib")
    if cv(mu, "bytes_per_task") and cv(mt, "bytes_per_task"):
        text = (f"- **Memory:** an idle task costs {thousands(cv(mu, 'bytes_per_task'))} B resident "
                f"against {thousands(cv(mt, 'bytes_per_task'))} B for a blocked thread")
        if ct and cv(ct, "kernel_stack_per_thread"):
            text += f" (plus its {cv(ct, 'kernel_stack_per_thread') / 1024:.0f} KiB kernel stack)"
        if cu and ct:
            if cv(cu, "stop") == -2:  # the time cap came before 4 GiB
                made = (f"{thousands(cv(cu, 'count'))} parked coroutines made within the "
                        f"{cv(cu, 'time_cap_s'):.0f} s time cap "
                        f"({bench_report.gib(cv(cu, 'rss_at_count'))}, short of 4 GiB)")
            else:
                made = f"{thousands(cv(cu, 'count'))} parked coroutines fit in 4 GiB"
            text += (f"; {made}, threads stopped at {thousands(cv(ct, 'count'))} "
                     f"({bench_report.stop_reason(lambda n, k: cv(n, k) or 0, ct, 'pthread_create')})")
        if cu and cv(cu, "rss_1m"):
            text += f"; a million parked coroutines take {bench_report.gib(cv(cu, 'rss_1m'))}"
        out.append(text + ".")
    t = "timers/uco_10k_sleeps/iterations:3/real_time"
    if cv(t, "late_p50_us") is not None:
        out.append(f"- **Timers:** 10,000 concurrent sleeps of random length wake "
                   f"{ms_or_us(cv(t, 'late_p50_us'))} late at p50, {ms_or_us(cv(t, 'late_p99_us'))} "
                   "at p99.")
    wins = []
    cpu_t, cpu_c = runs.get("cpu/threads_2_cores/real_time"), runs.get("cpu/coroutines_1_core/real_time")
    cpu_o = runs.get("cpu/uco_offload_2_threads/real_time")
    if cpu_t and cpu_c:
        w = (f"CPU-bound work (coroutines on one core take {cpu_c[1] / cpu_t[1]:.2f}x the time of "
             "threads on two")
        if cpu_o:
            w += f"; `uco_offload` takes {cpu_o[1] / cpu_t[1]:.2f}x"
        wins.append(w + ")")
    fu, ft = runs.get("file/uco_read/64/real_time"), runs.get("file/threads_pread/64/real_time")
    if fu and ft and ft[1] < fu[1]:
        wins.append(f"page-cache file reads (a `pread` pool on two cores does {fu[1] / ft[1]:.2f}x "
                    "the reads/s of 64 coroutines on one)")
    if wins:
        out.append("- **Where threads win:** " + ", and ".join(wins) + ".")
    missed = [f"{what} ({measured}; {status.replace('**', '')})"
              for what, measured, status, met in target_rows if not met]
    if missed:
        out.append("- **Targets not met in this run** (report.md's last table): "
                   + "; ".join(missed) + ".")
    elif target_rows:
        out.append("- **Targets:** every target in report.md's last table was met in this run.")
    return out + [""]


def readme_method(macro, steal_max):
    plan = macro.get("echo_plan")
    if not plan:
        return (f"servers: medians of {macro['repeats']} interleaved rounds of "
                f"{macro['duration_s']} s, and each ratio the median of the rounds' own ratios")
    return (f"echo servers all running at once and taking turns of {plan['slice']} s, "
            f"{plan['cycles']} cycles, uco's server between every two turns; each ratio the "
            "median over a server's turns of its ratio to uco's turns on either side, "
            f"leaving out the pairs with a turn of more than {steal_max:.0f}% steal "
            "(the file server: medians of "
            f"{macro['repeats']} interleaved runs of {macro['duration_s']} s)")


def readme_block(loaded, macro, target_rows, charts, paired, steal_max):
    ctx, runs, counters = loaded
    head = f"Latest run ({'`make bench FULL=1`' if macro.get('full') else '`make bench`'}): " \
        f"{macro.get('date', ctx.get('date', '?'))[:10]}"
    if macro:
        where = macro.get("machine") or f"{macro['cpus']} CPUs"
        head += (f" on host {macro['host']} ({where}, kernel {macro['kernel']}), "
                 f"commit {macro.get('commit', '?')}; {macro['placement']}; "
                 + readme_method(macro, steal_max))
    head += (". The whole report, with [min – max] for every figure: "
             "[bench/results/report.md](bench/results/report.md).")
    lines = [head, ""] + micro_table(runs)
    if macro:
        lines += echo_table(macro, paired) + http_table(macro)
    lines += bullets(runs, counters, target_rows)
    alt = {"micro_ratios.png": "uco vs threads", "echo_cpu.png": "echo CPU per request",
           "echo_rps.png": "echo requests/s", "echo_latency.png": "echo latency",
           "http_rps.png": "file server vs nginx"}
    lines += [f"![{alt.get(c, c)}](bench/results/charts/{c})" for c in charts]
    return lines


def write_readme(path, lines):
    """Replaces the text between the markers; the rest of the README stays."""
    with open(path) as f:
        text = f.read()
    if START not in text or END not in text:
        raise SystemExit(f"{path}: no {START} ... {END} block to fill")
    a, b = text.index(START) + len(START), text.index(END)
    with open(path, "w") as f:
        f.write(text[:a] + "\n" + "\n".join(lines).rstrip() + "\n" + text[b:])
