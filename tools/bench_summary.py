#!/usr/bin/env python3
"""The last step of `make bench`: one JSON with every figure, report.md with
the tables and the targets, and gnuplot charts.

    bench_summary.py GBENCH.json MACRO.json OUT.json REPORT.md CHARTDIR [README.md]

GBENCH.json is Google Benchmark's own output (kept as it is, so its compare
tools work on it); MACRO.json comes from bench_macro.py.  The micro tables
are bench_report.py's; this script adds the macro tables, the targets and the
charts, and writes OUT.json with min/median/max of every figure.  Given a
README, it rewrites the results block between its markers (bench_readme.py).
"""
import json
import os
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_readme  # noqa: E402  (the README's results block)
import bench_report  # noqa: E402  (the micro tables)

CONFIG_LABEL = {(50, 64): "50 conns, 64 B", (1000, 64): "1000 conns, 64 B",
                (50, 4096): "50 conns, 4 KiB", (1000, 4096): "1000 conns, 4 KiB",
                (10000, 64): "10k conns, 64 B", (10000, 4096): "10k conns, 4 KiB"}


def med(s):
    return s["median"] if s else None


def span(s, fmt="{:.0f}"):
    if not s:
        return "–"
    return f"{fmt.format(s['median'])} [{fmt.format(s['min'])} – {fmt.format(s['max'])}]"


def rfmt(x):
    return f"{x:.2f}x" if x else "–"


# A turn during which the hypervisor took more than this share of the
# machine's CPU time (steal, /proc/stat) measured the host, not the server:
# it takes CPU from the server that uses the most of both cores, so it
# squeezes every ratio towards 1.  Such turns, and the pairs they are
# part of, are left out of the ratios (and counted in the report), unless
# every pair has one: then all are kept and the report says so.
STEAL_MAX = 10.0


def stolen(r):
    return (r.get("steal_pct") or 0) > STEAL_MAX


def bracketed(a, b, field):
    """Turns of an interleaved run with a reference ("seq": the order the
    turns ran in): each turn of the one with fewer turns, over (or under)
    the mean of the other's turns just before and just after it, each as
    (ratio, whether one of the three turns was stolen from)."""
    def by_seq(e):
        return {r["seq"]: r for r in e["runs"] if "seq" in r and r.get(field)}
    aq, bq = by_seq(a), by_seq(b)
    if not aq or not bq:
        return []
    few, many, flip = (aq, bq, False) if len(aq) <= len(bq) else (bq, aq, True)
    pairs = []
    for s, r in few.items():
        around = [many[k] for k in (s - 1, s + 1) if k in many]
        if around:
            m = statistics.mean(x[field] for x in around)
            pairs.append((m / r[field] if flip else r[field] / m,
                          any(stolen(t) for t in [r] + around)))
    return pairs


def paired(a, b, field):
    """a's figure over b's, run by run: the runs of one round ran back to
    back, so drift of the machine (large on this VM: a whole round can run
    30% slower than the one before) cancels.  Where one of them is the
    reference of an interleaved run, each turn of the other is paired with
    the reference's turns on either side of it instead, leaving out the
    pairs with a stolen turn (all kept when every pair has one).  None when
    no round has both."""
    def by_round(e):  # older results have no "round": runs in order then
        return {r.get("round", i): r[field] for i, r in enumerate(e["runs"]) if r.get(field)}
    pairs, unit = bracketed(a, b, field), "turns"
    every = [x for x, _ in pairs]
    rs = [x for x, bad in pairs if not bad] or every
    if not rs:
        ar, br = by_round(a), by_round(b)
        rs, unit = [ar[k] / br[k] for k in ar if k in br], "rounds"
    if not rs:
        return None
    return {"min": min(rs), "median": statistics.median(rs), "max": max(rs), "n": len(rs),
            "rounds": rs, "unit": unit, "stolen": len(every) - len(rs) if every else 0,
            "all_stolen": bool(pairs) and all(bad for _, bad in pairs),
            "all_median": statistics.median(every) if every else None}


# ---- micro: every case as min/median/max ------------------------------------

def micro_figures(loaded):
    ctx, runs, counters = loaded
    figs = {name: {"unit": "ns per item", "min": t[0], "median": t[1], "max": t[2]}
            for name, t in runs.items()}
    for (name, counter), t in counters.items():
        figs[f"{name}:{counter}"] = {"unit": counter, "min": t[0], "median": t[1], "max": t[2]}
    return figs


# ---- macro tables -------------------------------------------------------------

def echo_tables(echo):
    lines = []
    configs = sorted({(e["connections"], e["size"]) for e in echo},
                     key=lambda c: (c[1], c[0]))
    for cfg in configs:
        rows = [e for e in echo if (e["connections"], e["size"]) == cfg]
        by = {e["server"]: e for e in rows}
        uco = by.get("uco")
        lines += [f"### Echo, {CONFIG_LABEL.get(cfg, cfg)}", "",
                  "| server | req/s | p50 µs | p99 µs | p99.9 µs | server CPU µs/req | "
                  "uco req/s ÷ that | that CPU ÷ uco CPU | errors |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for e in rows:
            if not e["runs"]:
                lines.append(f"| {e['label']} | failed: {'; '.join(e['failures'])[:200]} "
                             "| | | | | | | |")
                continue
            rr = med(paired(uco, e, "rps")) if uco and uco["runs"] else None
            cr = med(paired(e, uco, "cpu_us_per_req")) if uco and uco["runs"] else None
            lines.append(
                f"| {e['label']} | {span(e['rps'])} | {span(e['p50_us'])} | {span(e['p99_us'])} | "
                f"{span(e['p999_us'])} | {span(e['cpu_us_per_req'], '{:.2f}')} | {rfmt(rr)} | "
                f"{rfmt(cr)} | {e['errors']} |")
        lines.append("")
    return lines


def http_tables(http):
    lines = []
    for path, conns in sorted({(h["path"], h["connections"]) for h in http}):
        rows = [h for h in http if (h["path"], h["connections"]) == (path, conns)]
        by = {h["server"]: h for h in rows}
        uco = by.get("uco")
        lines += [f"### File server, GET /{path} ({'1 KiB' if path.startswith('1k') else '1 MiB'}),"
                  f" {conns} connections (wrk)", "",
                  "| server | req/s | p50 µs | p99 µs | server CPU µs/req | uco req/s ÷ that | errors |",
                  "|---|---|---|---|---|---|---|"]
        for h in rows:
            label = "uco file_server" if h["server"] == "uco" else "nginx (1 worker)"
            if not h["runs"]:
                lines.append(f"| {label} | failed: {'; '.join(h['failures'])[:200]} | | | | | |")
                continue
            rr = med(paired(uco, h, "rps")) if uco and uco["runs"] else None
            lines.append(f"| {label} | {span(h['rps'])} | {span(h['p50_us'])} | "
                         f"{span(h['p99_us'])} | {span(h['cpu_us_per_req'], '{:.2f}')} | "
                         f"{rfmt(rr)} | {h['errors']} |")
        lines.append("")
    return lines


def method_text(macro):
    """How the cells and the ratios of the server tables were taken."""
    seq = (f"{macro['repeats']} interleaved runs of {macro['duration_s']} s (after a "
           f"{macro['warmup_s']} s warm-up that is not counted), a fresh process each")
    plan = macro.get("echo_plan")
    if not plan:  # results from before the interleaved turns
        return (f"Each cell: median of {seq}, [min – max]. A round runs every server once, "
                "back to back; each ratio is the median over the rounds of that round's "
                "ratio, so the machine's drift from round to round cancels.")
    return (f"Echo up to {macro['interleave_max_conns']:,} connections: every server runs at "
            "once, each with its own connections from one uco-load, and they take turns of "
            f"{plan['slice']} s (counted after {plan['settle']} s to settle, every request "
            f"answered before the next turn): {plan['cycles']} cycles, each giving every "
            "server one turn and uco's server one more before each of theirs (every other "
            "cycle backwards). Each cell: median over a server's turns, [min – max]. Each "
            "ratio to uco: the median, over that server's turns, of the turn's ratio to the "
            "mean of uco's turns just before and just after it, a fraction of a second away, "
            "so the machine's drift cancels." + steal_text(macro) + " More connections "
            f"than that, and the file server: medians of {seq}; ratios the median of the "
            "rounds' own ratios.")


def steal_text(macro):
    """What the hypervisor took during the echo turns, and what that did."""
    st = [r["steal_pct"] for e in macro.get("echo", []) for r in e["runs"]
          if r.get("steal_pct") is not None and r["steal_pct"] >= 0]
    if not st:
        return ""
    over = sum(x > STEAL_MAX for x in st)
    return (f" A turn in which the hypervisor took more than {STEAL_MAX:.0f}% of the "
            "machine's CPU time (steal in /proc/stat) measured the host rather than the "
            "server, so the ratios leave out every pair with such a turn, and say how many "
            f"and what all of them give. In this run: steal per turn median {statistics.median(st):.1f}%, "
            f"max {max(st):.1f}%; {over} of {len(st)} turns over {STEAL_MAX:.0f}%.")


# ---- targets: where we stand ---------------------------------------------------

def verdict(ok):
    if isinstance(ok, tuple):  # (met, rounds that met it, rounds, "rounds" or "turns")
        met, k, n, unit = ok
        return "met" if met else f"**not met** ({k} of {n} {unit} met it)"
    return "met" if ok else "**not met**"


def pfmt(pr):
    # Three decimals: a median of 0.996 against a target of 1 must not read "1.00x".
    if not pr:
        return "–"
    left = (f", {pr['stolen']} left out for steal; all {pr['n'] + pr['stolen']}: "
            f"{pr['all_median']:.3f}x" if pr.get("stolen") else
            ", every turn had steal: all kept" if pr.get("all_stolen") else "")
    return (f"{pr['median']:.3f}x (median of {pr['n']} {pr.get('unit', 'rounds')}{left}; "
            f"{pr['min']:.2f}–{pr['max']:.2f})")


def judge(pr, ok):
    """A paired ratio judged by its median, with how many rounds met ok."""
    return (ok(pr["median"]), sum(ok(x) for x in pr["rounds"]), pr["n"],
            pr.get("unit", "rounds"))


def floor_note(u_over_x, u_over_floor, ok):
    """What the raw liburing floor (no runtime at all) gets against the same
    server in the same run: uco's ratio to it over uco's ratio to the floor.
    Where the floor falls short of the target too, the target is past what
    io_uring gives on this machine that day, not a cost of the runtime."""
    if not (u_over_x and u_over_floor):
        return ""
    f = u_over_x["median"] / u_over_floor["median"]
    return f"; raw liburing floor ÷ that {f:.3f}x" + ("" if ok(f) else ", short of it too")


def targets(runs, counters, macro):
    def m(name):
        t = runs.get(name)
        return t[1] if t else None

    out = ["## Targets (issue #5): where we stand", "",
           "| target | measured | |", "|---|---|---|"]

    rows = []  # (what, measured, verdict, met) for the README

    def row(what, measured, ok):
        text = verdict(ok) if ok is not None else "not measured"
        out.append(f"| {what} | {measured} | {text} |")
        rows.append((what, measured, text, ok[0] if isinstance(ok, tuple) else bool(ok)))

    asm, boost = m("switch/asm_floor"), m("switch/boost_jump_fcontext")
    if asm and boost:
        row("bare switch within 1.1x of Boost jump_fcontext", f"{asm:.1f} ns vs {boost:.1f} ns "
            f"({asm / boost:.2f}x)", asm <= 1.1 * boost)
    y, fut = m("switch/uco_yield"), m("switch/thread_futex_same_core/real_time")
    if y and fut:
        row("hand-off hundreds of times cheaper than a futex hand-off",
            f"{y:.1f} ns vs {fut / 1000:.2f} µs ({fut / y:.0f}x)", fut / y >= 100)
    for n, lim in ((64, 1.3), (1, 1.1)):
        u, raw = m(f"await/uco_nop/{n}/real_time"), m(f"await/raw_liburing_nop/{n}/real_time")
        # Judged by the side-by-side case when there is one: its two halves
        # run a millisecond apart, where the separate cases run seconds apart.
        pr = counters.get((f"await/paired_nop/{n}/real_time", "uco_over_raw"))
        if pr:
            pu = counters[(f"await/paired_nop/{n}/real_time", "uco_ns_per_nop")][1]
            pw = counters[(f"await/paired_nop/{n}/real_time", "raw_ns_per_nop")][1]
            row(f"NOP await, {n} task(s), within {lim}x of raw liburing batch {n}",
                f"side by side: {pu:.1f} ns vs {pw:.1f} ns, {pr[1]:.3f}x (median of the "
                f"repetitions; {pr[0]:.2f}–{pr[2]:.2f})", pr[1] <= lim)
        elif u and raw:
            row(f"NOP await, {n} task(s), within {lim}x of raw liburing batch {n}",
                f"{u:.1f} ns vs {raw:.1f} ns ({u / raw:.2f}x)", u <= lim * raw)
    sp = m("spawn/uco")
    if sp:
        row("spawn + join under 150 ns", f"{sp:.1f} ns", sp < 150)
    for (name, c), t in counters.items():
        if c == "bytes_per_task" and "uco" in name:
            row("idle task under 8 KiB resident", f"{t[1]:.0f} B", t[1] < 8192)
            break
    cap = bench_report.find(counters, "memory/uco_capacity_4gib")
    if cap:
        r1m = counters.get((cap, "rss_1m"), (0, 0, 0))[1]
        mem = counters.get((cap, "mem_total"), (0, 0, 0))[1]
        measured = (f"{bench_report.gib(r1m)} resident" + (f" of {bench_report.gib(mem)}" if mem else "")
                    if r1m else "1,000,000 not reached (see the capacity section)")
        row("one million suspended coroutines fit in this machine's memory", measured,
            bool(r1m and mem) and r1m < mem)
    echo = macro.get("echo", [])
    for conns in (50, 1000):
        for size in (64, 4096):
            by = {e["server"]: e for e in echo
                  if (e["connections"], e["size"]) == (conns, size) and e["runs"]}
            u = by.get("uco")
            if not u:
                continue
            label = CONFIG_LABEL[(conns, size)]
            if "uring" in by:
                pr = paired(u, by["uring"], "cpu_us_per_req")
                if pr:
                    row(f"echo {label}: CPU per request within 1.1x of raw liburing",
                        pfmt(pr), judge(pr, lambda x: x <= 1.1))
            floor = paired(u, by["uring"], "rps") if "uring" in by else None
            prs = {k: paired(u, by[k], "rps") for k in by if k not in ("uco", "uring", "threads")}
            prs = {k: v for k, v in prs.items() if v}
            if prs:
                worst = min(prs, key=lambda k: prs[k]["median"])
                pr = prs[worst]
                met = all(v["median"] >= 1.0 for v in prs.values())
                row(f"echo {label}: req/s at least epoll and every peer",
                    f"uco ÷ {by[worst]['label']} (the closest): {pfmt(pr)}"
                    f"{floor_note(pr, floor, lambda x: x >= 1.0)}",
                    (met, sum(x >= 1.0 for x in pr["rounds"]), pr["n"], pr["unit"]))
            if "threads" in by:
                pr = paired(u, by["threads"], "rps")
                pp = paired(by["threads"], u, "p99_us")
                if pr and pp:
                    ok = lambda x: x >= 1.5  # noqa: E731
                    row(f"echo {label}: at least 1.5x thread-per-connection req/s, lower p99",
                        f"req/s {pfmt(pr)}{floor_note(pr, floor, ok)}; "
                        f"threads' p99 ÷ uco's {pp['median']:.2f}x",
                        (ok(pr["median"]) and pp["median"] > 1,
                         sum(ok(x) for x in pr["rounds"]), pr["n"], pr["unit"]))
    http = {(h["server"], h["path"], h["connections"]): h
            for h in macro.get("http", []) if h["runs"]}
    for conns in sorted({c for (_, p, c) in http if p == "1k.bin"}):
        u, n = http.get(("uco", "1k.bin", conns)), http.get(("nginx", "1k.bin", conns))
        pr = paired(u, n, "rps") if u and n else None
        if pr:
            row(f"file server, {conns} conns: at least nginx's req/s on 1 KiB files", pfmt(pr),
                judge(pr, lambda x: x >= 1.0))
    out.append("")
    return out, rows



# ---- charts ----------------------------------------------------------------------

def gnuplot(script, chartdir):
    if not shutil.which("gnuplot"):
        return False
    p = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True, cwd=chartdir)
    if p.returncode != 0:
        sys.stderr.write(f"gnuplot failed: {p.stderr}\n")
        return False
    return True


HEAD = ("set terminal pngcairo size 1100,560 font 'DejaVu Sans,10' noenhanced\n"
        "set style data histograms\nset style histogram errorbars gap 2 lw 1\n"
        "set style fill solid 0.85 border -1\nset boxwidth 0.9\nset grid ytics\n"
        "set key outside right top\nset xtics nomirror\n" +
        "".join(f"set linetype {i + 1} lc rgb '{c}'\n" for i, c in enumerate(
            ["#7b2cbf", "#2a9d8f", "#56b4e9", "#e69f00", "#f0e442", "#0072b2", "#d55e00",
             "#333333", "#cc79a7", "#8c564b"])))


def echo_chart(echo, chartdir, field, fname, title, ylabel, logscale=False):
    configs = sorted({(e["connections"], e["size"]) for e in echo}, key=lambda c: (c[1], c[0]))
    servers = []
    for e in echo:
        if e["label"] not in servers and e["runs"]:
            servers.append(e["label"])
    if not configs or not servers:
        return None
    by = {(e["label"], e["connections"], e["size"]): e for e in echo}
    with open(os.path.join(chartdir, fname + ".dat"), "w") as f:
        for c in configs:
            cells = [f'"{CONFIG_LABEL.get(c, str(c))}"']
            for s in servers:
                e = by.get((s, c[0], c[1]))
                st = e[field] if e and e["runs"] else None
                cells += [f"{st['median']:.4g}", f"{st['min']:.4g}", f"{st['max']:.4g}"] if st \
                    else ["NaN", "NaN", "NaN"]
            f.write(" ".join(cells) + "\n")
    plots = ", ".join(
        f"'{fname}.dat' using {2 + 3 * i}:{3 + 3 * i}:{4 + 3 * i}:xtic(1) title '{s}'"
        for i, s in enumerate(servers))
    ok = gnuplot(HEAD + (f"set logscale y\n" if logscale else "set yrange [0:*]\n") +
                 f"set output '{fname}.png'\nset title '{title}'\nset ylabel '{ylabel}'\n"
                 f"plot {plots}\n", chartdir)
    return fname + ".png" if ok else None


def latency_chart(echo, chartdir, conns, size, fname):
    rows = [e for e in echo if (e["connections"], e["size"]) == (conns, size) and e["runs"]]
    if not rows:
        return None
    with open(os.path.join(chartdir, fname + ".dat"), "w") as f:
        for e in rows:
            cells = [f'"{e["label"]}"']
            for k in ("p50_us", "p99_us", "p999_us"):
                cells += [f"{e[k]['median']:.4g}", f"{e[k]['min']:.4g}", f"{e[k]['max']:.4g}"]
            f.write(" ".join(cells) + "\n")
    ok = gnuplot(HEAD + "set logscale y\nset xtics rotate by -25\n"
                 f"set output '{fname}.png'\n"
                 f"set title 'Echo latency percentiles, {CONFIG_LABEL[(conns, size)]} "
                 "(median of runs, bars: min-max)'\nset ylabel 'microseconds (log)'\n"
                 f"plot '{fname}.dat' using 2:3:4:xtic(1) title 'p50', "
                 f"'' using 5:6:7 title 'p99', '' using 8:9:10 title 'p99.9'\n", chartdir)
    return fname + ".png" if ok else None


def micro_chart(runs, chartdir, fname):
    rows = []
    for what, u, other, label, floor in bench_report.PAIRS:
        if u in runs and other in runs and not floor:
            t, o = runs[u], runs[other]
            rows.append((f"{what} vs {label}", o[1] / t[1], o[0] / t[2], o[2] / t[0]))
    if not rows:
        return None
    with open(os.path.join(chartdir, fname + ".dat"), "w") as f:
        for i, (lab, r, lo, hi) in enumerate(rows):
            f.write(f"{i} \"{lab}\" {r:.4g} {lo:.4g} {hi:.4g}\n")
    ok = gnuplot(
        "set terminal pngcairo size 1100,520 font 'DejaVu Sans,10' noenhanced\n"
        f"set output '{fname}.png'\nset title 'How many times cheaper uco is than threads "
        "(thread time / uco time, log scale)'\nset logscale x\nset grid xtics\n"
        "set style fill solid 0.85 border -1\nset yrange [-0.7:%d]\nset ytics nomirror\n"
        "set xlabel 'ratio (1 = equal)'\nunset key\n"
        f"plot '{fname}.dat' using 3:1:(1):3:($1-0.35):($1+0.35):ytic(2) with boxxyerror, "
        f"'' using 3:1:4:5 with xerrorbars lc rgb 'black' pt 0\n" % len(rows), chartdir)
    return fname + ".png" if ok else None


def http_chart(http, chartdir, fname):
    rows = [h for h in http if h["runs"]]
    if not rows:
        return None
    paths = sorted({h["path"] for h in rows})
    with open(os.path.join(chartdir, fname + ".dat"), "w") as f:
        for p in paths:
            cells = [p]
            for s in ("uco", "nginx"):
                h = next((h for h in rows if h["server"] == s and h["path"] == p
                          and h["connections"] == 50), None)
                cells += ([f"{h['rps']['median']:.4g}", f"{h['rps']['min']:.4g}",
                           f"{h['rps']['max']:.4g}"] if h else ["NaN"] * 3)
            f.write(" ".join(cells) + "\n")
    ok = gnuplot(HEAD + "set logscale y\n" + f"set output '{fname}.png'\n"
                 "set title 'File server vs nginx, 50 connections (wrk): requests/s (log)'\n"
                 f"plot '{fname}.dat' using 2:3:4:xtic(1) title 'uco file_server', "
                 "'' using 5:6:7 title 'nginx, 1 worker'\n", chartdir)
    return fname + ".png" if ok else None


# ---- main ----------------------------------------------------------------------------

def main():
    gbench, macro_path, out_json, report, chartdir = sys.argv[1:6]
    readme = sys.argv[6] if len(sys.argv) > 6 else None
    os.makedirs(chartdir, exist_ok=True)
    loaded = bench_report.load(gbench)
    ctx, runs, counters = loaded
    figs = micro_figures(loaded)
    macro = {}
    if os.path.exists(macro_path):
        with open(macro_path) as f:
            macro = json.load(f)
    micro_text = bench_report.render(gbench, loaded)

    charts = [
        micro_chart(runs, chartdir, "micro_ratios"),
        echo_chart(macro.get("echo", []), chartdir, "rps", "echo_rps",
                   "Echo requests/s (median of runs, bars: min-max)", "requests per second"),
        echo_chart(macro.get("echo", []), chartdir, "cpu_us_per_req", "echo_cpu",
                   "Server CPU time per echo request (lower is better)", "microseconds"),
        latency_chart(macro.get("echo", []), chartdir, 1000, 64, "echo_latency"),
        http_chart(macro.get("http", []), chartdir, "http_rps"),
    ]
    charts = [c for c in charts if c]
    rel = os.path.relpath(chartdir, os.path.dirname(os.path.abspath(report)))

    lines = [micro_text.rstrip(), ""]
    if macro:
        lines += ["# Servers under load", "",
                  f"Run {macro['date']} on {macro['host']} at commit {macro.get('commit', '?')} "
                  f"({macro['cpus']} CPUs, kernel "
                  f"{macro['kernel']}); {macro['placement']}. {method_text(macro)} "
                  "Echo load: uco-load (one connection = one request in flight); server CPU "
                  "from the process's CPU clock (ns, all threads) over the counted window only. "
                  "On this 2-core machine the load generator saturates first, so CPU per "
                  "request is the figure that separates efficient servers.", ""]
        lines += echo_tables(macro.get("echo", []))
        lines += http_tables(macro.get("http", []))
        if macro.get("skipped"):
            lines += ["Skipped (never faked):", ""]
            lines += [f"- {k}: {v}" for k, v in sorted(macro["skipped"].items())]
            lines.append("")
    target_lines, target_rows = targets(runs, counters, macro)
    lines += target_lines
    if charts:
        lines += ["## Charts", ""] + [f"![{c}]({rel}/{c})" for c in charts] + [""]
    with open(report, "w") as f:
        f.write("\n".join(lines))

    if readme:
        bench_readme.write_readme(readme, bench_readme.readme_block(loaded, macro, target_rows,
                                                                    charts, paired, STEAL_MAX))
    with open(out_json, "w") as f:
        json.dump({"context": ctx, "micro": figs, "macro": macro,
                   "sources": {"gbench": os.path.basename(gbench),
                               "macro": os.path.basename(macro_path)},
                   "charts": charts}, f, indent=1)


if __name__ == "__main__":
    main()
