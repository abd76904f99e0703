#!/usr/bin/env python3
"""End to end through both executables: fofa-convert a PyTorch checkpoint, then `fofa score --json`
each case of its expected-logits file; every logit must match PyTorch's within 1e-4. No torch needed.
Usage: convert_then_score.py FOFA_CONVERT FOFA PRESET CHECKPOINT EXPECTED.json WORK_DIR"""
import json
import os
import subprocess
import sys

convert, fofa, preset, checkpoint, expected, work = sys.argv[1:7]
os.makedirs(work, exist_ok=True)
model = os.path.join(work, os.path.basename(checkpoint) + ".fofa")
exp = json.load(open(expected))
subprocess.run([convert, "--preset", preset, "--heads", str(exp["heads"]), checkpoint, model], check=True)
worst = 0.0
for case in exp["cases"]:
    cmd = [fofa, "score", model, "--history", ",".join(map(str, case["history"])),
           "--candidates", ",".join(map(str, case["candidates"])), "--json"]
    if "budget" in case:
        cmd += ["--budget", str(case["budget"])]
    got = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    logits = [c["logit"] for c in got["candidates"]]
    assert len(logits) == len(case["logits"]), (logits, case["logits"])
    worst = max([worst] + [abs(a - b) for a, b in zip(logits, case["logits"])])
print(f"{os.path.basename(checkpoint)}: max |fofa score - torch| = {worst:.3g}")
os.remove(model)
sys.exit(0 if worst <= 1e-4 else 1)
