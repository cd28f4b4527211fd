#!/bin/sh
# The benchmark binary builds and runs: one quick case, JSON out, and the
# report script turns it into a table.  (Figures are for `make bench`.)
set -eu
B=${1:-build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$B/bench/bench_micro" --benchmark_filter='spawn/uco|switch/asm_floor' --benchmark_min_time=0.01 \
    --benchmark_out="$out/r.json" --benchmark_out_format=json >/dev/null 2>&1
python3 tools/bench_report.py "$out/r.json" "$out/report.md"
if grep -q '^| switch: bare asm | [0-9.]* ns' "$out/report.md" && grep -q 'items_per_second' "$out/r.json"; then
    echo "bench_smoke: 1 passed, 0 failed"
else
    echo "bench_smoke: report.md lacks the figures:"; cat "$out/report.md"; exit 1
fi
