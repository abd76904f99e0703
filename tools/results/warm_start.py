#!/usr/bin/env python3
"""Trains the SPEC 8 systems with a shared warm start, for run_results.py to evaluate.

usage: python3 tools/results/warm_start.py --fofa BUILD/tools/cli/fofa --dataset amazon-games
           --stage1-epochs 6 --epochs 3 [--sweep-epochs 3] [--work DIR] [--threads 2]

SPEC 4 zero-initialises the mapper heads "so training starts from the static model". This script
uses that literally, which is also what makes the table affordable on a 2-core machine:
  stage 1: static SASRec (6 blocks) trained --stage1-epochs from scratch -> DS-static-stage1.fofa
  stage 2: static, DUET-style and Forward-OFA each start from stage 1 (`fofa train --init`) and
           train --epochs more, so the three get the same total budget;
  static shallow SASRec (2 blocks) trains stage1 + epochs from scratch (it has no 6-block model
  to start from);
  --sweep-epochs: the Forward-OFA lambda sweep (run_results.LAMBDAS) from the same stage 1.
Models land in --work under the names run_results.py looks for (DS-SYSTEM.fofa,
sweep-lambda-L.fofa) with their training reports (MODEL.train.json, including the warm start);
afterwards run_results.py (same --work) evaluates them without retraining. Existing models are
kept, so an interrupted run continues where it stopped.
Data: $FOFA_DATA_DIR or ../shared/data beside the repository.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "tools" / "results" / "configs"
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from run_results import LAMBDAS  # noqa: E402  (one list of lambdas for both scripts)


def train(args, data, system, model, epochs, init=None, init_epochs=None, overrides=None):
    if model.exists():
        print(f"keep {model}", file=sys.stderr)
        return
    cfg = json.loads((pathlib.Path(args.configs) / f"{system}.json").read_text())
    cfg["train"].update({"progress": False, "threads": args.threads, "epochs": epochs, **(overrides or {})})
    cfg_path = model.with_suffix(".config.json")
    cfg_path.write_text(json.dumps(cfg, indent=2))
    cmd = [args.fofa, "train", str(data), "--config", str(cfg_path), "--out", str(model), "--quiet", "--json"]
    if init:
        cmd += ["--init", str(init)]
    print(f"train {model.name}: {epochs} epochs" + (f" from {init.name}" if init else ""), file=sys.stderr, flush=True)
    t = time.time()
    report = json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout)
    out = {"report": report, "seconds": time.time() - t, "epochs_cap": epochs,
           "init": init.name if init else None, "init_epochs": init_epochs}
    pathlib.Path(str(model) + ".train.json").write_text(json.dumps(out, indent=1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fofa", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--stage1-epochs", type=int, required=True)
    ap.add_argument("--epochs", type=int, required=True)
    ap.add_argument("--sweep-epochs", type=int, default=0)
    ap.add_argument("--no-systems", action="store_true", help="only the sweep")
    ap.add_argument("--work", default=str(ROOT / "build-results"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--configs", default=str(CONFIGS), help="directory of <system>.json (tests use tiny ones)")
    args = ap.parse_args()
    data_dir = pathlib.Path(os.environ.get("FOFA_DATA_DIR") or ROOT.parent / "shared" / "data")
    data = data_dir / f"{args.dataset}.txt"
    if not data.exists():
        sys.exit(f"missing data file {data}")
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    ds = args.dataset
    stage1 = work / f"{ds}-static-stage1.fofa"
    train(args, data, "static", stage1, args.stage1_epochs)
    if not args.no_systems:
        for system in ["static", "forward_ofa", "duet"]:
            train(args, data, system, work / f"{ds}-{system}.fofa", args.epochs, stage1, args.stage1_epochs)
        train(args, data, "shallow", work / f"{ds}-shallow.fofa", args.stage1_epochs + args.epochs)
    if args.sweep_epochs:
        for lam in LAMBDAS:
            train(args, data, "forward_ofa", work / f"sweep-lambda-{lam}.fofa", args.sweep_epochs, stage1,
                  args.stage1_epochs, {"lambda": lam})


if __name__ == "__main__":
    main()
