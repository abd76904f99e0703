#!/bin/sh
# Runs fofa-bench-kernels with repetitions and prints a markdown table of the medians:
# shape, impl, time, GFLOP/s, % of the FMA peak of the table in use, and the fofa row's
# speed-up over OpenBLAS / Eigen / scalar. For the README.
# Usage: bench/kernels/table.sh [path/to/fofa-bench-kernels] [repetitions]
#   FOFA_ISA=avx2 bench/kernels/table.sh ...   measures the AVX2 family (and its peak).
set -eu
bin=${1:-build/bench/kernels/fofa-bench-kernels}
reps=${2:-10}
json=$(mktemp)
trap 'rm -f "$json"' EXIT
"$bin" 2>/dev/null --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
  --benchmark_min_time=0.1 --benchmark_format=json --benchmark_out="$json" --benchmark_out_format=json >/dev/null
python3 - "$json" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
rows = {}
for b in data["benchmarks"]:
    if b.get("aggregate_name") != "median":
        continue
    name = b["run_name"].split("/iterations")[0]
    parts = name.split("/")
    if parts[0] == "BM_fma_peak":
        rows[(parts[0], "", parts[1])] = b
        continue
    op, impl, shape = parts[0], parts[1], parts[2]
    rows[(op, shape, impl)] = b
ctx = data.get("context", {})
print(f"<!-- {ctx.get('date', '')}, {ctx.get('num_cpus', '?')} cpus @ {ctx.get('mhz_per_cpu', '?')} MHz, medians -->")
peaks = [(k[2], v) for k, v in rows.items() if k[0] == "BM_fma_peak"]
if peaks:
    print("FMA peak (one core): " + ", ".join(f"{isa} {v['GFLOP/s']:.1f} GFLOP/s" for isa, v in sorted(peaks)))
    print()
print("| kernel | shape | impl | time | GFLOP/s | % peak | fofa vs this |")
print("|---|---|---|---:|---:|---:|---:|")
order = {"fofa": 0, "openblas": 1, "eigen": 2, "scalar": 3}
def fmt_time(ns):
    return f"{ns / 1000:.2f} us" if ns >= 1000 else f"{ns:.1f} ns"
for op in ("BM_gemm", "BM_gemv", "BM_attention"):
    shapes = []
    for (o, s, _i) in rows:
        if o == op and s not in shapes:
            shapes.append(s)
    for s in shapes:
        fofa = rows.get((op, s, "fofa"))
        for impl in sorted({i for (o, sh, i) in rows if o == op and sh == s}, key=lambda i: order.get(i, 9)):
            b = rows[(op, s, impl)]
            t = b["cpu_time"] * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
            ratio = "" if impl == "fofa" or not fofa else f"{b['cpu_time'] / fofa['cpu_time']:.2f}x"
            pct = f"{b['pct_peak']:.0f}%" if "pct_peak" in b else ""
            print(f"| {op[3:]} | {s} | {impl} | {fmt_time(t)} | {b['GFLOP/s']:.1f} | {pct} | {ratio} |")
PY
