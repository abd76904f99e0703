#!/usr/bin/env python3
"""Markdown tables (one per data set) from docs/results.json, for tools/update-readme.py:
   tools/update-readme.py results -- python3 tools/results/table.py"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def epochs(e):
    """best / run / cap: the epoch whose weights were kept (best validation NDCG@10), epochs run, cap.
    A warm start (warm_start.py) is prefixed by the best epoch of the stage-1 model it started from."""
    def show(x):
        return "?" if x is None else str(x)
    text = " / ".join(show(e.get(k)) for k in ("best_epoch", "epochs_run", "epochs_cap"))
    init = e.get("init_best_epoch") or e.get("init_epochs")
    return f"{init} + {text}" if init else text


def main():
    path = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "results.json"
    r = json.loads(path.read_text())
    if r.get("profile") != "full":
        print(f"_Profile \"{r.get('profile')}\" (pipeline check, not results), generated {r.get('generated')}._\n")
    for ds, systems in r["datasets"].items():
        print(f"**{ds}** ({r['protocol']})\n")
        print("| system | budget | HR@10 | NDCG@10 | blocks kept | MFLOPs / request | device params | bytes to device | device latency | epochs: [stage 1 best +] best / run / cap |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for key, rows in systems.items():
            for e in rows:
                lat = "n/a" if e.get("device_latency_us") is None else f"{e['device_latency_us']:.0f} us"
                name, mflops = r['systems'].get(key, key), f"{e['flops_per_request'] / 1e6:.1f}"
                ft = e.get("finetune") or {}
                if ft.get("steps"):  # on-device fine-tuning: its settings and its device training cost
                    name = name.replace("S SGD steps", f"{ft['steps']} SGD steps, lr {ft['lr']:g}")
                    mflops += f" + {e.get('finetune_flops_per_request', 0) / 1e6:.0f} fine-tuning"
                print(f"| {name} | {e['budget']:.1f} | {e['sampled']['hr10']:.4f} | "
                      f"{e['sampled']['ndcg10']:.4f} | {e['blocks_kept']:.2f} | {mflops} | "
                      f"{e['device_parameters'] / 1e3:.0f} k | {e['device_bytes'] / 1024:.0f} KiB | {lat} | {epochs(e)} |")
        print()
    if r.get("lambda_sweep"):
        print(f"**Forward-OFA lambda sweep ({r.get('lambda_sweep_dataset', 'amazon-games')}, budget 1.0)**\n")
        print("| lambda | HR@10 | NDCG@10 | blocks kept | MFLOPs / request | epochs: [stage 1 best +] best / run / cap |")
        print("|---|---|---|---|---|---|")
        for e in r["lambda_sweep"]:
            print(f"| {e['lambda']} | {e['sampled']['hr10']:.4f} | {e['sampled']['ndcg10']:.4f} | "
                  f"{e['blocks_kept']:.2f} | {e['flops_per_request'] / 1e6:.1f} | {epochs(e)} |")


if __name__ == "__main__":
    main()
