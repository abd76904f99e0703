#!/usr/bin/env python3
"""The results pipeline end to end on a tiny generated data set: warm_start.py (stage 1, the SPEC 8
systems, the lambda sweep) -> run_results.py (eval, device latency, JSON) -> table.py -> plots.py,
with tiny copies of tools/results/configs. Checks the JSON rows, the epochs column (stage-1 best +
best / run / cap, read back from the training reports) and that every plot is well-formed SVG.
usage: results_pipeline.py FOFA_CLI WORK_DIR"""
import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tools" / "results"
sys.path.insert(0, str(RESULTS))
from run_results import LAMBDAS, SYSTEMS  # noqa: E402

DS = "tiny"
STAGE1, EPOCHS, SWEEP = 3, 2, 1


def fail(msg):
    sys.exit(f"results pipeline: {msg}")


def tiny_configs(out):
    """The real configs with the model and the training shrunk; everything else (systems, mapper
    mode, controller, finetune settings) as shipped."""
    out.mkdir()
    for src in (RESULTS / "configs").glob("*.json"):
        cfg = json.loads(src.read_text())
        if "model" in cfg:
            m = cfg["model"]
            m.update({"d": 16, "heads": 1, "blocks": 3 if m.get("blocks", 6) > 2 else 2, "max_len": 10, "ffn": 16})
            m.pop("positions", None)
            if m.get("controller", {}).get("enabled"):
                m["controller"]["width"] = 8
            if m.get("mapper", {}).get("mode") == "lowrank":
                m["mapper"].update({"rank": 2, "code_width": 8, "structure_width": 4})
        if "train" in cfg:
            cfg["train"].update({"batch": 16, "steps_per_epoch": 4, "eval_users": 40, "patience": 10})
        if src.stem == "static":  # weights that do not move: validation never improves on epoch 1, so
            cfg["train"]["lr"] = 1e-12  # the stage-1 best epoch (1) differs from its epochs run (STAGE1)
        (out / src.name).write_text(json.dumps(cfg))


def run(*cmd, env):
    r = subprocess.run([str(c) for c in cmd], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        fail(f"{' '.join(map(str, cmd))} exited {r.returncode}:\n{r.stderr[-3000:]}")
    return r.stdout


def main():
    fofa, work = sys.argv[1], pathlib.Path(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    (work / "data").mkdir(parents=True)
    rng = random.Random(7)
    with open(work / "data" / f"{DS}.txt", "w") as f:  # 90 users, 6-14 items each, over 200 ids
        for u in range(1, 91):
            start, step = rng.randrange(1, 201), rng.choice([1, 3])
            f.write(" ".join(str(x) for x in [u] + [(start + i * step) % 200 + 1 for i in range(rng.randrange(6, 15))]) + "\n")
    tiny_configs(work / "configs")
    env = dict(os.environ, FOFA_DATA_DIR=str(work / "data"))
    common = ["--fofa", fofa, "--work", work / "models", "--threads", "1", "--configs", work / "configs"]
    py = sys.executable
    run(py, RESULTS / "warm_start.py", *common, "--dataset", DS, "--stage1-epochs", STAGE1, "--epochs", EPOCHS,
        "--sweep-epochs", SWEEP, env=env)
    systems = list(SYSTEMS)
    run(py, RESULTS / "run_results.py", *common, "--datasets", DS, "--sweep-dataset", DS, "--systems", ",".join(systems),
        "--latency-users", "5", "--out", work / "results.json", env=env)
    r = json.loads((work / "results.json").read_text())

    rows = r["datasets"][DS]
    if list(rows) != systems:
        fail(f"systems {list(rows)}, expected {systems}")
    stage1 = json.loads((work / "models" / f"{DS}-static-stage1.fofa.train.json").read_text())["report"]
    if (stage1["best_epoch"], stage1["epochs_run"]) != (1, STAGE1):
        fail(f"stage 1: best epoch {stage1['best_epoch']} of {stage1['epochs_run']}, expected 1 of {STAGE1}")
    for system, evs in rows.items():
        for e in evs:
            for k in ("hr10", "ndcg10"):
                if not 0.0 <= e["sampled"][k] <= 1.0:
                    fail(f"{system}: {k} = {e['sampled'][k]}")
            if not 1 <= e["best_epoch"] <= e["epochs_run"] <= e["epochs_cap"]:
                fail(f"{system}: best {e['best_epoch']} run {e['epochs_run']} cap {e['epochs_cap']}")
            warm = system in ("static", "forward_ofa", "duet", "finetune")
            if warm != (e.get("init") == f"{DS}-static-stage1.fofa"):
                fail(f"{system}: init {e.get('init')}")
            if warm and e.get("init_best_epoch") != stage1["best_epoch"]:
                fail(f"{system}: stage-1 best epoch {e.get('init_best_epoch')}, report says {stage1['best_epoch']}")
            if system != "finetune" and not e.get("device_latency_us", 0) > 0:
                fail(f"{system}: no device latency")
    if [e["lambda"] for e in r["lambda_sweep"]] != LAMBDAS or r.get("lambda_sweep_dataset") != DS:
        fail(f"lambda sweep {[e['lambda'] for e in r['lambda_sweep']]} on {r.get('lambda_sweep_dataset')}")

    table = run(py, RESULTS / "table.py", work / "results.json", env=env)
    fo = rows["forward_ofa"][0]
    cell = f"| {stage1['best_epoch']} + {fo['best_epoch']} / {fo['epochs_run']} / {EPOCHS} |"
    fo_lines = [line for line in table.splitlines() if line.startswith("| Forward-OFA")]
    if len(fo_lines) != 2 or not fo_lines[0].endswith(cell):
        fail(f"Forward-OFA rows {fo_lines}, expected the first to end with {cell}")
    if f"lambda sweep ({DS}, budget 1.0)" not in table or table.count("\n| 0.") < 1:
        fail(f"no lambda sweep table:\n{table}")

    run(py, RESULTS / "plots.py", work / "results.json", work / "plots", env=env)
    names = ["lambda_metrics", "lambda_cost"] + [f"{DS}_{p}" for p in ("block_choice", "blocks_kept", "systems",
                                                                      "systems_cost")]
    for name in names:
        svg = work / "plots" / f"{name}.svg"
        if not svg.exists():
            fail(f"missing plot {svg.name}")
        if not ET.parse(svg).getroot().tag.endswith("svg"):
            fail(f"{svg.name} is not an SVG")
    print(f"results pipeline OK: {len(rows)} systems, {len(r['lambda_sweep'])} sweep rows, {len(names)} plots")


if __name__ == "__main__":
    main()
