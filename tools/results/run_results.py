#!/usr/bin/env python3
"""Regenerates docs/results.json: the SPEC 8 comparison per data set and the lambda sweep.

usage: python3 tools/results/run_results.py --fofa BUILD/tools/cli/fofa [--profile full|quick]
           [--datasets amazon-games,amazon-beauty,amazon-toys] [--work DIR] [--retrain] [--no-sweep]
           [--sweep-dataset amazon-games] [--configs DIR]
           [--epochs N] [--sweep-epochs N] [--latency-users N] [--systems static,finetune,...] [--merge]

For every data set and system (tools/results/configs/*.json) it runs `fofa train` (skipped when the
model already exists in --work, unless --retrain) and `fofa eval --json` at budget 1.0 (and 0.5 for
Forward-OFA), then the Forward-OFA lambda sweep (on amazon-games unless --sweep-dataset). Profile "quick" caps training
(2 epochs of 30 steps, 1000 validation users) to check the pipeline; its numbers are NOT results
and are marked "profile": "quick" in the JSON. --epochs / --sweep-epochs cap the training epochs
(early stopping still applies); the cap is recorded per row ("epochs_cap") and the table says so.
Each trained model keeps its training report beside it (MODEL.train.json), so a later invocation
that finds the model (e.g. one that only adds a data set or re-evaluates) reports the same numbers. Afterwards run table.py (README table) and
plots.py (SVG plots), which read only docs/results.json.
System "finetune" (SPEC 8 on-device fine-tuning) trains nothing: it evaluates the data set's static model
(WORK/<ds>-static.fofa, trained first if missing) with `fofa eval --finetune-steps S --finetune-lr LR`, S and
LR from configs/finetune.json (chosen on the validation split, see its "sweep"). --systems runs a subset and
--merge keeps every other row of an existing --out file, e.g. to add the finetune rows to a finished run:
  run_results.py --fofa F --systems finetune --no-sweep --merge
Models already in --work are evaluated, not retrained: tools/results/warm_start.py trains them with a
shared warm start (the protocol of the README's table) before this script assembles the JSON.
Data: $FOFA_DATA_DIR or ../shared/data beside the repository. Needs only the python3 standard library.
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
SYSTEMS = ["static", "shallow", "finetune", "duet", "forward_ofa"]
SYSTEM_NAMES = {"static": "static SASRec (6 blocks)", "shallow": "static shallow SASRec (2 blocks)",
                "finetune": "on-device fine-tuning (static + S SGD steps)",
                "duet": "DUET-style (mapper, all blocks)", "forward_ofa": "Forward-OFA (controller + mapper)",
                "sasrec_paper": "SASRec paper setting (d 50, 2 blocks)"}
LAMBDAS = [0.0, 0.01, 0.03, 0.1, 0.3]


def run_json(cmd):
    t = time.time()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out), time.time() - t


def training_fields(train_report, work):
    """The training facts a result row carries: epochs run, best (kept) epoch and cap; for a warm
    start (warm_start.py) the stage-1 model and the epoch its kept weights come from."""
    report = train_report.get("report")
    fields = {"epochs_run": report["epochs_run"] if report else None,
              "best_epoch": report["best_epoch"] if report else None,
              "epochs_cap": train_report.get("epochs_cap"),
              "init": train_report.get("init"), "init_epochs": train_report.get("init_epochs")}
    init_report = work / f"{fields['init']}.train.json" if fields["init"] else None
    if init_report and init_report.exists():
        r = json.loads(init_report.read_text()).get("report") or {}
        fields["init_best_epoch"], fields["init_epochs_run"] = r.get("best_epoch"), r.get("epochs_run")
    return fields


def train_and_eval(fofa, data, config, model, args, budgets=(1.0,), overrides=None):
    cfg = json.loads(config.read_text())
    if args.profile == "quick":
        cfg["train"].update({"epochs": 2, "steps_per_epoch": 30, "eval_users": 1000})
    cfg["train"]["progress"] = False
    cfg["train"]["threads"] = args.threads
    if overrides:
        cfg["train"].update(overrides)
    epochs_cap = cfg["train"].get("epochs")
    cfg_path = model.with_suffix(".config.json")
    cfg_path.write_text(json.dumps(cfg, indent=2))
    report_path = pathlib.Path(str(model) + ".train.json")
    if args.retrain or not model.exists():
        train_report, train_seconds = run_json([fofa, "train", str(data), "--config", str(cfg_path), "--out",
                                                str(model), "--quiet", "--json"])
        train_report = {"report": train_report, "seconds": train_seconds, "epochs_cap": epochs_cap}
        report_path.write_text(json.dumps(train_report, indent=1))
    else:
        train_report = json.loads(report_path.read_text()) if report_path.exists() else \
            {"report": None, "seconds": None, "epochs_cap": None}
    rows = []
    for b in budgets:
        ev, eval_seconds = run_json([fofa, "eval", str(model), str(data), "--json", "--budget", str(b),
                                     "--threads", str(args.threads)] + ([] if args.full_ranking else ["--no-full"]))
        ev["train_seconds"] = train_report["seconds"]
        ev["eval_seconds"] = eval_seconds
        ev.update(training_fields(train_report, model.parent))
        ev["device_latency_us"] = None
        if args.latency_users:  # one thread; run the final (assembling) invocation on an idle machine
            lat, _ = run_json([fofa, "device-latency", str(model), str(data), "--json", "--budget", str(b),
                               "--users", str(args.latency_users)])
            ev["device_latency_us"] = lat["request_us_mean"]
            ev["device_latency"] = lat
        rows.append(ev)
    return rows


def finetune_eval(fofa, data, config, static_model, static_config, args):
    """SPEC 8 on-device fine-tuning: the static model evaluated with S SGD steps per user (no training)."""
    ft = json.loads(config.read_text())["finetune"]
    if args.retrain or not static_model.exists():  # normally the "static" system just produced it
        train_and_eval(fofa, data, static_config, static_model, args, (1.0,),
                       {"epochs": args.epochs} if args.epochs else None)
    report_path = pathlib.Path(str(static_model) + ".train.json")
    train_report = json.loads(report_path.read_text()) if report_path.exists() else {"report": None, "epochs_cap": None}
    ev, eval_seconds = run_json([fofa, "eval", str(static_model), str(data), "--json", "--budget", "1.0",
                                 "--threads", str(args.threads), "--finetune-steps", str(ft["steps"]),
                                 "--finetune-lr", str(ft["lr"]), "--finetune-negatives", str(ft.get("negatives", 1))]
                                + ([] if args.full_ranking else ["--no-full"]))
    ev["base_model"] = "static"
    ev["train_seconds"] = 0.0  # no training of its own: the static model's training is in the static row
    ev["eval_seconds"] = eval_seconds
    ev.update(training_fields(train_report, static_model.parent))
    ev["device_latency_us"] = None  # device-latency measures inference only; fine-tuning cost is in FLOPs
    return [ev]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fofa", required=True)
    ap.add_argument("--profile", choices=["full", "quick"], default="full")
    ap.add_argument("--datasets", default="amazon-games,amazon-beauty,amazon-toys")
    ap.add_argument("--work", default=str(ROOT / "build-results"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--sweep-dataset", default="amazon-games", help="data set of the lambda sweep")
    ap.add_argument("--latency-users", type=int, default=0,
                    help="measure device request latency (fofa device-latency) on this many test users per row")
    ap.add_argument("--epochs", type=int, help="cap on training epochs of the SPEC 8 systems")
    ap.add_argument("--sweep-epochs", type=int, help="cap on training epochs of the lambda sweep")
    ap.add_argument("--full-ranking", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results.json"))
    ap.add_argument("--configs", default=str(CONFIGS), help="directory of <system>.json (tests use tiny ones)")
    ap.add_argument("--systems", default=",".join(SYSTEMS + ["sasrec_paper"]),
                    help="comma-separated subset of the systems to run (default: all)")
    ap.add_argument("--merge", action="store_true",
                    help="start from the existing --out file and replace only the rows this run computes")
    args = ap.parse_args()
    chosen = args.systems.split(",")
    unknown = [x for x in chosen if x not in SYSTEM_NAMES]
    if unknown:
        sys.exit(f"unknown system(s) {unknown}; known: {list(SYSTEM_NAMES)}")
    data_dir = pathlib.Path(os.environ.get("FOFA_DATA_DIR") or ROOT.parent / "shared" / "data")
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = {"profile": args.profile, "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "protocol": "SPEC 7: leave-one-out test item + 100 sampled negatives, ties against the positive",
               "systems": SYSTEM_NAMES, "datasets": {}, "lambda_sweep": []}
    if args.merge and pathlib.Path(args.out).exists():
        old = json.loads(pathlib.Path(args.out).read_text())
        if old.get("profile") != args.profile:
            sys.exit(f"--merge: {args.out} has profile {old.get('profile')}, this run is {args.profile}")
        results["datasets"] = old.get("datasets", {})
        results["lambda_sweep"] = old.get("lambda_sweep", [])
    for ds in args.datasets.split(","):
        data = data_dir / f"{ds}.txt"
        if not data.exists():
            sys.exit(f"missing data file {data}")
        entry = results["datasets"].get(ds, {})
        for system in SYSTEMS + (["sasrec_paper"] if ds == "amazon-games" else []):
            if system not in chosen:
                continue
            if system == "finetune":
                print(f"[{ds}] {system} ...", file=sys.stderr, flush=True)
                ft_config = pathlib.Path(args.configs) / "finetune.json"
                entry[system] = finetune_eval(args.fofa, data, ft_config if ft_config.exists() else CONFIGS / "finetune.json",
                                              work / f"{ds}-static.fofa", pathlib.Path(args.configs) / "static.json", args)
                continue
            budgets = (1.0, 0.5) if system == "forward_ofa" else (1.0,)
            print(f"[{ds}] {system} ...", file=sys.stderr, flush=True)
            entry[system] = train_and_eval(args.fofa, data, pathlib.Path(args.configs) / f"{system}.json", work / f"{ds}-{system}.fofa",
                                           args, budgets, {"epochs": args.epochs} if args.epochs else None)
        # Keep the SPEC 8 order of systems whatever order the rows were computed in.
        order = SYSTEMS + ["sasrec_paper"]
        results["datasets"][ds] = dict(sorted(entry.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))
    if not args.no_sweep:
        results["lambda_sweep"] = []
        data = data_dir / f"{args.sweep_dataset}.txt"
        results["lambda_sweep_dataset"] = args.sweep_dataset
        for lam in LAMBDAS:
            print(f"[sweep] lambda {lam} ...", file=sys.stderr, flush=True)
            rows = train_and_eval(args.fofa, data, pathlib.Path(args.configs) / "forward_ofa.json", work / f"sweep-lambda-{lam}.fofa",
                                  args, (1.0,), {"lambda": lam, **({"epochs": args.sweep_epochs} if args.sweep_epochs else {})})
            results["lambda_sweep"].append({"lambda": lam, **rows[0]})
    out = pathlib.Path(args.out)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, out)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
