#!/bin/sh
# The macro harness runs end to end on a tiny load: two echo servers driven
# by uco-load, one JSON out, the summary turns it (with a micro JSON) into
# report.md tables, targets and charts.  (Figures are for `make bench`.)
set -eu
B=${1:-build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python3 tools/bench_macro.py --build "$B" --out "$out/macro.json" --only uco,epoll \
    --repeats 2 --duration 0.3 --cycles 2 --slice 0.05 >"$out/log" 2>&1 || { cat "$out/log"; exit 1; }
"$B/bench/bench_micro" --benchmark_filter='spawn/uco|switch/asm_floor|await/paired_nop/1/' --benchmark_min_time=0.01 \
    --benchmark_out="$out/g.json" --benchmark_out_format=json >/dev/null 2>&1
python3 tools/bench_summary.py "$out/g.json" "$out/macro.json" "$out/all.json" \
    "$out/report.md" "$out/charts" || exit 1
fail=0
check() {
    if eval "$2"; then :; else echo "bench_macro_smoke: $1"; fail=$((fail + 1)); fi
}
check "no echo table for uco" "grep -q '^| uco echo_server | [0-9]' '$out/report.md'"
check "no echo table for epoll" "grep -q '^| epoll, edge-triggered | [0-9]' '$out/report.md'"
check "errors in the echo runs" "python3 -c 'import json,sys; d=json.load(open(\"$out/macro.json\")); sys.exit(any(e[\"errors\"] or not e[\"runs\"] for e in d[\"echo\"]))'"
check "no CPU per request" "python3 -c 'import json,sys; d=json.load(open(\"$out/macro.json\")); sys.exit(not all(r[\"cpu_us_per_req\"] > 0 for e in d[\"echo\"] for r in e[\"runs\"]))'"
check "servers did not exit 0 on SIGTERM" "python3 -c 'import json,sys; d=json.load(open(\"$out/macro.json\")); sys.exit(any(r[\"exit_status\"] for e in d[\"echo\"] for r in e[\"runs\"]))'"
check "combined JSON lacks micro or macro" "python3 -c 'import json,sys; d=json.load(open(\"$out/all.json\")); sys.exit(not (d[\"micro\"] and d[\"macro\"][\"echo\"]))'"
check "no side-by-side await target" "grep -q 'NOP await, 1 task(s).*side by side: [0-9.]* ns vs [0-9.]* ns' '$out/report.md'"
check "no echo chart" "test -s '$out/charts/echo_rps.png'"
# Interleaved: epoll's turns are tagged with their cycle, and each has one of
# uco's (the reference) right before and right after it.
check "turns not tagged with their cycle" "python3 -c 'import json,sys; d=json.load(open(\"$out/macro.json\")); e=[x for x in d[\"echo\"] if x[\"server\"]==\"epoll\"][0]; sys.exit(sorted(r[\"round\"] for r in e[\"runs\"]) != [0, 1])'"
check "epoll's turns not bracketed by uco's" "python3 -c 'import json,sys; d=json.load(open(\"$out/macro.json\")); by={x[\"server\"]: x for x in d[\"echo\"] if (x[\"connections\"], x[\"size\"]) == (50, 64)}; u={r[\"seq\"] for r in by[\"uco\"][\"runs\"]}; sys.exit(not all(r[\"seq\"] - 1 in u and r[\"seq\"] + 1 in u for r in by[\"epoll\"][\"runs\"]))'"
check "no paired req/s ratio in the targets" "grep -q 'req/s at least epoll.*median of 2 turns' '$out/report.md'"
# Ratios pair runs by round, not by their order in the list.
check "paired() does not pair by round" "python3 -c 'import sys; sys.path.insert(0, \"tools\"); import bench_summary as s; p = s.paired({\"runs\": [{\"round\": 1, \"x\": 3}, {\"round\": 0, \"x\": 4}]}, {\"runs\": [{\"round\": 0, \"x\": 2}, {\"round\": 1, \"x\": 1}]}, \"x\"); sys.exit(p[\"median\"] != 2.5 or p[\"n\"] != 2)'"
# Against the reference a turn pairs with the mean of the turns either side.
check "paired() does not bracket by turn" "python3 -c 'import sys; sys.path.insert(0, \"tools\"); import bench_summary as s; p = s.paired({\"runs\": [{\"round\": 0, \"seq\": 0, \"x\": 10}, {\"round\": 0, \"seq\": 2, \"x\": 30}]}, {\"runs\": [{\"round\": 0, \"seq\": 1, \"x\": 10}]}, \"x\"); q = s.paired({\"runs\": [{\"round\": 0, \"seq\": 1, \"x\": 10}]}, {\"runs\": [{\"round\": 0, \"seq\": 0, \"x\": 10}, {\"round\": 0, \"seq\": 2, \"x\": 30}]}, \"x\"); sys.exit(p[\"median\"] != 2.0 or p[\"unit\"] != \"turns\" or q[\"median\"] != 0.5)'"
# Turns the hypervisor stole from (steal_pct > 10) leave the ratios, with
# every pair they are in; when every pair has one, all of them stay.
check "paired() keeps a pair with a stolen turn" "python3 -c 'import sys; sys.path.insert(0, \"tools\"); import bench_summary as s; R = lambda q, x, st=0: {\"round\": 0, \"seq\": q, \"x\": x, \"steal_pct\": st}; p = s.paired({\"runs\": [R(0, 10), R(2, 10), R(4, 10, 30)]}, {\"runs\": [R(1, 5), R(3, 10)]}, \"x\"); q = s.paired({\"runs\": [R(0, 10, 30), R(2, 10)]}, {\"runs\": [R(1, 5)]}, \"x\"); sys.exit(not (p[\"n\"] == 1 and p[\"median\"] == 2.0 and p[\"stolen\"] == 1 and p[\"all_median\"] == 1.5 and q[\"n\"] == 1 and q[\"all_stolen\"] and \"left out for steal\" in s.pfmt(p)))'"
check "turns carry no steal figure" "python3 -c 'import json,sys; d=json.load(open(\"$out/macro.json\")); sys.exit(not all(0 <= r[\"steal_pct\"] <= 100 for e in d[\"echo\"] for r in e[\"runs\"]))'"
# Beside a req/s target, what the raw liburing floor gets against the same
# server: uco's ratio to that server over uco's ratio to the floor.
check "floor_note() misreads the floor" "python3 -c 'import sys; sys.path.insert(0, \"tools\"); import bench_summary as s; ok = lambda x: x >= 1.5; a = s.floor_note({\"median\": 1.4}, {\"median\": 1.0}, ok); b = s.floor_note({\"median\": 1.4}, {\"median\": 0.875}, ok); sys.exit(not (\"floor ÷ that 1.400x, short of it too\" in a and \"1.600x\" in b and \"short\" not in b and s.floor_note(None, {\"median\": 1}, ok) == \"\"))'"
# The server's CPU comes from its process CPU clock, in ns: ours agrees with process_time.
check "process CPU clock disagrees with process_time" "python3 -c 'import sys, time, os; sys.path.insert(0, \"tools\"); import bench_macro as m; [sum(range(10**5)) for _ in range(20)]; a = m.process_cpu_ns(os.getpid()); b = time.process_time_ns(); sys.exit(not (b > 0 and abs(a - b) < 0.05 * b + 2e6))'"
# The million-coroutines target comes from the capacity case: met when the
# million's RSS is under the machine's memory, not met when the million was
# never reached; and a capacity run stopped by its time cap is not reported
# as what fits in 4 GiB.
check "the million target misread" "python3 -c 'import sys; sys.path.insert(0, \"tools\"); import bench_summary as s; n = \"memory/uco_capacity_4gib/iterations:1/repeats:1/real_time\"; c = lambda **k: {(n, a): (v, v, v) for a, v in k.items()}; t = lambda cs: [r for r in s.targets({}, cs, {})[1] if \"one million\" in r[0]]; a, b, z = t(c(rss_1m=4.4e9, mem_total=25e9)), t(c(rss_1m=0, mem_total=25e9)), t(c(rss_1m=30e9, mem_total=25e9)); sys.exit(not (a[0][3] and not b[0][3] and \"not reached\" in b[0][1] and not z[0][3]))'"
check "a time-capped capacity run said to fit 4 GiB" "python3 -c 'import sys; sys.path.insert(0, \"tools\"); import bench_readme as r; u = \"memory/uco_capacity_4gib/iterations:1/repeats:1/real_time\"; t = \"memory/threads_capacity_4gib/iterations:1/repeats:1/real_time\"; m = \"memory/uco_100k_idle_tasks/iterations:1/real_time\"; h = \"memory/threads_10k_idle/iterations:1/real_time\"; c = {(u, \"count\"): (5e5,) * 3, (u, \"stop\"): (-2,) * 3, (u, \"time_cap_s\"): (60,) * 3, (u, \"rss_at_count\"): (2e9,) * 3, (t, \"count\"): (3e4,) * 3, (t, \"stop\"): (11,) * 3, (m, \"bytes_per_task\"): (4100,) * 3, (h, \"bytes_per_task\"): (8200,) * 3}; x = \" \".join(r.bullets({}, c, [])); c[(u, \"stop\")] = (0,) * 3; y = \" \".join(r.bullets({}, c, [])); sys.exit(not (\"60 s time cap\" in x and \"fit in 4 GiB\" not in x and \"fit in 4 GiB\" in y))'"
# A CPU reading whose two reads did not bracket the counted window is
# dropped (None), never reported as a near-zero CPU time.
check "cpu_window() keeps a late reading" "python3 -c 'import sys; sys.path.insert(0, \"tools\"); import bench_macro as m; sys.exit(not (m.cpu_window(5, 1.0, 1.0) == 5 and m.cpu_window(5, 0.01, 1.0) is None and m.cpu_window(None, 1.0, 1.0) is None and m.cpu_text(None) == \"n/a\"))'"
if [ $fail = 0 ]; then
    echo "bench_macro_smoke: 20 passed, 0 failed"
else
    cat "$out/log"; echo "bench_macro_smoke: $((20 - fail)) passed, $fail failed"; exit 1
fi
