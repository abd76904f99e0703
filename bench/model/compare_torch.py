#!/usr/bin/env python3
"""fofa vs PyTorch on the same model and weights, in the same run, one core.

Runs fofa-bench-model (which writes model.fofa + session.json with --dump), then times the same
device request in PyTorch 1.13 (tools/convert/fofa_torch.py PlannedForward: the kept blocks with
the materialised FFNs, eager and torch.jit.trace, torch.set_num_threads(1)), checks that both give
the same logits, and prints latencies and ratios. PyTorch has no K/V cache in this model, so its
"push" is the recomputation over the window of 50 that fofa's push() avoids.

Usage: /usr/bin/python3 bench/model/compare_torch.py BUILD_DIR/bench/model/fofa-bench-model [--cpu N] [--json OUT]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "convert"))

# One thread means one: Debian's torch calls OpenBLAS (pthread build), whose pool ignores
# torch.set_num_threads and is created when torch loads, before the pinning below reaches it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch  # noqa: E402

import fofa_torch  # noqa: E402

BUDGETS = [("100", 1.0), ("50", 0.5), ("20", 0.2)]


def time_us(fn, min_seconds=0.5, repeats=5):
    """Median over `repeats` of the mean time per call of `fn`, each repeat >= min_seconds/repeats."""
    fn()
    fn()
    per = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            el = time.perf_counter() - start
            if el >= min_seconds / repeats:
                break
        per.append(el / n * 1e6)
    return statistics.median(per)


def run_fofa(bench, dump_dir, cpu):
    cmd = [bench, f"--dump={dump_dir}", "--benchmark_format=json", "--benchmark_min_time=0.5",
           "--benchmark_repetitions=3", "--benchmark_report_aggregates_only=true"]
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu)] + cmd
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    res = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        name = b["run_name"]
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3}[b["time_unit"]]
        # Manual-time benchmarks report wall time of the measured region; others CPU time.
        res[name] = (b["real_time"] if "manual_time" in name else b["cpu_time"]) * scale
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bench", help="path to fofa-bench-model")
    ap.add_argument("--cpu", type=int, default=None, help="pin both runs to this core (taskset / sched_setaffinity)")
    ap.add_argument("--json", default=None, help="also write the results as JSON here")
    args = ap.parse_args()

    torch.set_num_threads(1)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    work = tempfile.mkdtemp(prefix="fofa-bench-")
    try:
        fofa = run_fofa(args.bench, work, args.cpu)
        with open(os.path.join(work, "session.json")) as f:
            session = json.load(f)
        model = fofa_torch.load_fofa(os.path.join(work, "model.fofa"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    model.eval()
    history, cands = session["history"], session["candidates"]
    window = torch.tensor(history[-model.cfg["max_len"]:], dtype=torch.long)
    cand_t = torch.tensor(cands, dtype=torch.long)

    rows = []
    with torch.no_grad():
        for key, budget in BUDGETS:
            planned = fofa_torch.PlannedForward(model, history, budget)
            kept = [k for k, m in enumerate(planned.mask) if m]
            want = session["budgets"][key]
            assert kept == want["kept"], f"budget {budget}: PyTorch keeps {kept}, fofa {want['kept']}"
            logits = planned(window, cand_t)
            diff = float((logits - torch.tensor(want["logits"])).abs().max())
            traced = torch.jit.trace(planned, (window, cand_t), check_trace=False)
            eager_us = time_us(lambda: planned(window, cand_t))
            jit_us = time_us(lambda: traced(window, cand_t))
            adapt_us = time_us(lambda: model.adapt(history, budget))
            rows.append({"what": f"request b={budget} ({len(kept)} blocks)", "fofa_us": fofa[f"device_request/{key}"],
                         "eager_us": eager_us, "jit_us": jit_us, "max_abs_logit_diff": diff,
                         "device_file_bytes": want["device_file_bytes"], "session_bytes": want["session_bytes"]})
            rows.append({"what": f"adapt b={budget}", "fofa_us": fofa[f"cloud_adapt/{key}"], "eager_us": adapt_us,
                         "jit_us": None})
        # push: fofa appends one row to a window of 49 using cached K/V; PyTorch recomputes 50 rows.
        planned = fofa_torch.PlannedForward(model, history, 1.0)
        traced = torch.jit.trace(planned, (window, cand_t), check_trace=False)
        rows.append({"what": "push + rerank (t=49->50, 6 blocks)",
                     "fofa_us": fofa["device_push/push_rerank/49/100/manual_time"],
                     "eager_us": time_us(lambda: planned(window, cand_t)),
                     "jit_us": time_us(lambda: traced(window, cand_t))})
        for key, budget in BUDGETS:
            rows.append({"what": f"push only (t=49->50) b={budget}",
                         "fofa_us": fofa[f"device_push/push/49/{key}/manual_time"], "eager_us": None, "jit_us": None})

    print(f"fofa kernels: {session['kernels']}; torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"OPENBLAS_NUM_THREADS {os.environ['OPENBLAS_NUM_THREADS']}"
          + (f", pinned to cpu {args.cpu}" if args.cpu is not None else ""))
    print(f"{'':38s} {'fofa us':>9s} {'eager us':>9s} {'jit us':>9s} {'eager/fofa':>10s} {'jit/fofa':>9s}")
    for r in rows:
        def cell(v):
            return f"{v:9.1f}" if v is not None else f"{'-':>9s}"

        def ratio(v):
            return f"{v / r['fofa_us']:9.1f}x" if v is not None else f"{'-':>10s}"
        print(f"{r['what']:38s} {cell(r['fofa_us'])} {cell(r['eager_us'])} {cell(r['jit_us'])} "
              f"{ratio(r['eager_us'])} {ratio(r['jit_us'])}")
    for r in rows:
        if "max_abs_logit_diff" in r:
            print(f"{r['what']}: max |logit fofa - torch| = {r['max_abs_logit_diff']:.2e}, device file "
                  f"{r['device_file_bytes'] / 1e6:.3f} MB, session memory {r['session_bytes'] / 1024:.0f} KB")
    full = rows[0]
    peak = session.get("fma_peak_gflops", 0.0)
    if peak:
        # Work the full request executes (SPEC default, 6 blocks, t = n = 50): causal attention (row i
        # reads i + 1 keys) and, in the last block, K/V for every row but Q, attention, out projection
        # and FFN for the newest row only (model/device_model.hpp). LayerNorm, softmax, GELU and the
        # candidate dot products are not counted.
        n, d, f, blocks = 50, 64, 256, 6
        attn = 2 * 2 * d * n * (n + 1) // 2
        block = 8 * n * d * d + 4 * n * d * f + attn
        last = 4 * n * d * d + 4 * d * d + 4 * n * d + 4 * d * f
        work = (blocks - 1) * block + last
        rate = work / full["fofa_us"] / 1e3
        print(f"full request: {work / 1e6:.1f} MFLOP executed in {full['fofa_us']:.1f} us = {rate:.1f} GFLOP/s, "
              f"{100 * rate / peak:.0f}% of this core's FMA peak ({peak:.1f} GFLOP/s); 250 us would need "
              f"{100 * work / 250e-6 / 1e9 / peak:.0f}%")
    print("targets: full request <= 250 us: {:.1f} us [{}]; >= 6x faster than eager: {:.1f}x [{}]; "
          "push (6 blocks) <= 20 us: {:.1f} us [{}]".format(
              full["fofa_us"], "ok" if full["fofa_us"] <= 250 else "MISSED",
              full["eager_us"] / full["fofa_us"], "ok" if full["eager_us"] / full["fofa_us"] >= 6 else "MISSED",
              rows[-3]["fofa_us"], "ok" if rows[-3]["fofa_us"] <= 20 else "MISSED"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "fofa": fofa}, f, indent=1)
    worst = max(r["max_abs_logit_diff"] for r in rows if "max_abs_logit_diff" in r)
    if worst > 1e-3:
        print(f"ERROR: fofa and PyTorch disagree (max logit difference {worst:.2e})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
