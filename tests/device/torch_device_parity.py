#!/usr/bin/env python3
"""Live check (ctest label torch): a device file exported by `fofa export-device` scores exactly
what PyTorch (tools/convert/fofa_torch.py) computes for the same model, history and budget, for
several configurations, and the block choice agrees.

Usage: /usr/bin/python3 torch_device_parity.py FOFA_EXECUTABLE WORK_DIR
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "convert"))

import torch  # noqa: E402

import fofa_torch  # noqa: E402

CONFIGS = [
    {},
    {"norm": "query_only", "padding": "left_window", "positions": "end"},
    {"norm": "post", "input_ln": True, "activation": "relu", "mapper": {"mode": "full"}},
    {"controller": {"extractor": "gru"}, "final_ln": False},
]


def main():
    fofa, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(0)
    worst = 0.0
    for i, over in enumerate(CONFIGS):
        cfg = {"items": 80, "d": 16, "heads": 2, "blocks": 4, "max_len": 12, "ffn": 32,
               "controller": {"width": 8}, "mapper": {"rank": 2, "code_width": 8, "structure_width": 4}}
        for k, v in over.items():
            if isinstance(v, dict):
                cfg[k] = {**cfg.get(k, {}), **v}
            else:
                cfg[k] = v
        model = fofa_torch.FofaModel(cfg)
        model.init_weights(10 + i, mapper_scale=0.05, ln_noise=0.1, bias_scale=0.1, head_bias=3.0)
        path = os.path.join(work, f"model{i}.fofa")
        fofa_torch.save_fofa(model, path)
        history = [int(x) for x in torch.randint(1, 81, (15,))]
        cands = [int(x) for x in torch.randint(1, 81, (20,))]
        for budget in (1.0, 0.5, 0.25):
            dev = os.path.join(work, f"device{i}.fofa")
            subprocess.run([fofa, "export-device", path, "--history", ",".join(map(str, history)),
                            "--candidates", ",".join(map(str, cands)), "--budget", str(budget), dev],
                           check=True, capture_output=True)
            out = json.loads(subprocess.run([fofa, "score", dev, "--json"], check=True, capture_output=True,
                                            text=True).stdout)
            with torch.no_grad():
                ref = model.infer(history, cands, budget)
            assert out["mask"] == list(ref["mask"]), f"config {i} budget {budget}: mask {out['mask']} vs {ref['mask']}"
            got = torch.tensor([c["logit"] for c in out["candidates"]])
            diff = float((got - ref["logits"]).abs().max())
            worst = max(worst, diff)
            assert diff < 1e-4, f"config {i} budget {budget}: max logit difference {diff}"
    print(f"device files match PyTorch: {len(CONFIGS)} configs x 3 budgets, max |diff| {worst:.2e}")


if __name__ == "__main__":
    main()
