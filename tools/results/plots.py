#!/usr/bin/env python3
"""SVG plots from docs/results.json (standard library only; no matplotlib on the machine):
  docs/plots/lambda_metrics.svg   HR@10 and NDCG@10 against lambda (Forward-OFA; amazon-games unless run_results.py --sweep-dataset)
  docs/plots/lambda_cost.svg      MFLOPs per request and device parameters against lambda
  docs/plots/<ds>_block_choice.svg  how often each block is kept (Forward-OFA, budget 1.0 and 0.5)
  docs/plots/<ds>_blocks_kept.svg   distribution of blocks kept per user
  docs/plots/<ds>_systems.svg       HR@10 and NDCG@10 of every SPEC 8 system (budget 1.0)
  docs/plots/<ds>_systems_cost.svg  device MFLOPs per request: inference and on-device fine-tuning
usage: python3 tools/results/plots.py [docs/results.json] [OUT_DIR]"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
W, H, M = 560, 320, 56
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def svg(title, body, xlabel, ylabel):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">'
            f'<rect width="{W}" height="{H}" fill="white"/>'
            f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>'
            f'<line x1="{M}" y1="{H - M}" x2="{W - 20}" y2="{H - M}" stroke="black"/>'
            f'<line x1="{M}" y1="{H - M}" x2="{M}" y2="36" stroke="black"/>'
            f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle">{xlabel}</text>'
            f'<text x="14" y="{H / 2}" text-anchor="middle" transform="rotate(-90 14 {H / 2})">{ylabel}</text>'
            f'{body}</svg>\n')


def scale(v, lo, hi, a, b):
    return a + (b - a) * ((v - lo) / (hi - lo) if hi > lo else 0.5)


def line_chart(title, xs, series, xlabel, ylabel):
    """series: [(name, [y...])]; xs are placed evenly (lambda values are not linear)."""
    ys = [y for _, s in series for y in s]
    lo, hi = min(ys + [0.0]), max(ys) * 1.1 if ys else 1.0
    body = ""
    px = [scale(i, 0, max(len(xs) - 1, 1), M + 20, W - 40) for i in range(len(xs))]
    for i, x in enumerate(xs):
        body += f'<text x="{px[i]}" y="{H - M + 16}" text-anchor="middle">{x:g}</text>'
    for t in range(5):
        v = lo + (hi - lo) * t / 4
        y = scale(v, lo, hi, H - M, 40)
        body += f'<text x="{M - 4}" y="{y + 4}" text-anchor="end">{v:.3g}</text>'
        body += f'<line x1="{M}" y1="{y}" x2="{W - 20}" y2="{y}" stroke="#ddd"/>'
    for k, (name, s) in enumerate(series):
        c = COLORS[k % len(COLORS)]
        pts = " ".join(f"{px[i]},{scale(v, lo, hi, H - M, 40)}" for i, v in enumerate(s))
        body += f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2"/>'
        for i, v in enumerate(s):
            body += f'<circle cx="{px[i]}" cy="{scale(v, lo, hi, H - M, 40)}" r="3" fill="{c}"/>'
        body += f'<text x="{W - 150}" y="{44 + 16 * k}" fill="{c}">{name}</text>'
    return svg(title, body, xlabel, ylabel)


def bar_chart(title, labels, groups, xlabel, ylabel):
    """groups: [(name, [value per label])]."""
    hi = max([v for _, g in groups for v in g] + [1e-9]) * 1.1
    body = ""
    n, per = len(labels), len(groups)
    slot = (W - 20 - M - 20) / max(n, 1)
    bw = slot * 0.8 / max(per, 1)
    for t in range(5):
        v = hi * t / 4
        y = scale(v, 0, hi, H - M, 40)
        body += f'<text x="{M - 4}" y="{y + 4}" text-anchor="end">{v:.2g}</text>'
        body += f'<line x1="{M}" y1="{y}" x2="{W - 20}" y2="{y}" stroke="#ddd"/>'
    for i, lab in enumerate(labels):
        x0 = M + 10 + slot * i
        body += f'<text x="{x0 + slot * 0.4}" y="{H - M + 16}" text-anchor="middle">{lab}</text>'
        for k, (_, g) in enumerate(groups):
            y = scale(g[i], 0, hi, H - M, 40)
            body += f'<rect x="{x0 + bw * k}" y="{y}" width="{bw * 0.95}" height="{H - M - y}" fill="{COLORS[k % 4]}"/>'
    for k, (name, _) in enumerate(groups):
        body += f'<text x="{W - 150}" y="{44 + 16 * k}" fill="{COLORS[k % 4]}">{name}</text>'
    return svg(title, body, xlabel, ylabel)


def main():
    src = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "results.json"
    out = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "plots"
    out.mkdir(parents=True, exist_ok=True)
    r = json.loads(src.read_text())
    tag = "" if r.get("profile") == "full" else f" [{r.get('profile')} profile]"
    sweep = r.get("lambda_sweep", [])
    if sweep:
        xs = [e["lambda"] for e in sweep]
        sweep_ds = r.get("lambda_sweep_dataset", "amazon-games")
        (out / "lambda_metrics.svg").write_text(line_chart(
            f"Forward-OFA on {sweep_ds}: accuracy vs lambda" + tag, xs,
            [("HR@10", [e["sampled"]["hr10"] for e in sweep]), ("NDCG@10", [e["sampled"]["ndcg10"] for e in sweep])],
            "lambda (sparsity coefficient)", "metric"))
        (out / "lambda_cost.svg").write_text(line_chart(
            f"Forward-OFA on {sweep_ds}: cost vs lambda" + tag, xs,
            [("MFLOPs / request", [e["flops_per_request"] / 1e6 for e in sweep]),
             ("device params (10k)", [e["device_parameters"] / 1e4 for e in sweep])],
            "lambda (sparsity coefficient)", "cost"))
    short = {"static": "static", "shallow": "shallow", "finetune": "fine-tune", "duet": "DUET",
             "forward_ofa": "FOFA", "sasrec_paper": "paper"}
    for ds, systems in r["datasets"].items():
        full = {k: next((e for e in rows if abs(e["budget"] - 1.0) < 1e-9), None) for k, rows in systems.items()}
        full = {k: e for k, e in full.items() if e is not None}
        if full:
            labels = [short.get(k, k) for k in full]
            (out / f"{ds}_systems.svg").write_text(bar_chart(
                f"{ds}: accuracy per system (budget 1.0)" + tag, labels,
                [("HR@10", [e["sampled"]["hr10"] for e in full.values()]),
                 ("NDCG@10", [e["sampled"]["ndcg10"] for e in full.values()])], "system", "metric"))
            (out / f"{ds}_systems_cost.svg").write_text(bar_chart(
                f"{ds}: device MFLOPs per request" + tag, labels,
                [("inference", [e["flops_per_request"] / 1e6 for e in full.values()]),
                 ("fine-tuning", [e.get("finetune_flops_per_request", 0) / 1e6 for e in full.values()])],
                "system", "MFLOPs"))
        rows = systems.get("forward_ofa", [])
        if not rows:
            continue
        L = len(rows[0]["block_chosen"])
        groups = [(f"budget {e['budget']:.1f}", [c / max(e["users"], 1) for c in e["block_chosen"]]) for e in rows]
        (out / f"{ds}_block_choice.svg").write_text(bar_chart(
            f"{ds}: how often each block is kept" + tag, [str(k) for k in range(L)], groups, "block", "fraction of users"))
        groups = [(f"budget {e['budget']:.1f}", [c / max(e["users"], 1) for c in e["kept_histogram"]]) for e in rows]
        (out / f"{ds}_blocks_kept.svg").write_text(bar_chart(
            f"{ds}: blocks kept per user" + tag, [str(k) for k in range(L + 1)], groups, "blocks kept", "fraction of users"))
    print(f"wrote plots to {out}")


if __name__ == "__main__":
    main()
