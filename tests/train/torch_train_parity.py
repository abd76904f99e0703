"""Training parity with PyTorch 1.13: the same weights and batch give the same gradients in fofa
(relative error <= 1e-3 per tensor) and 10 Adam steps give losses within 1e-3.

usage: /usr/bin/python3 tests/train/torch_train_parity.py PATH/TO/fofa-train-parity WORKDIR
The model and batch are made here (seeded), written as .fofa + JSON, run through the C++ driver,
and compared with FofaModel.training_loss from tools/convert/fofa_torch.py. Checks every system:
Forward-OFA (low-rank and full mapper), DUET-style, static.
"""
import json
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools", "convert"))
import fofa_torch  # noqa: E402

CONFIG = {"items": 60, "d": 16, "heads": 2, "blocks": 3, "max_len": 10, "ffn": 32, "eps": 1e-8,
          "controller": {"enabled": True, "extractor": "mean", "width": 12, "min_blocks": 1},
          "mapper": {"mode": "lowrank", "rank": 3, "code_width": 8, "structure_width": 4}}
VARIANTS = {
    "forward_ofa": {},
    "forward_ofa_full": {"mapper": {"mode": "full", "rank": 3, "code_width": 8, "structure_width": 4}},
    "duet": {"controller": {"enabled": False, "extractor": "mean", "width": 12, "min_blocks": 1}},
    "static": {"controller": {"enabled": False, "extractor": "mean", "width": 12, "min_blocks": 1},
               "mapper": {"mode": "off", "rank": 3, "code_width": 8, "structure_width": 4}},
}
LAMBDA, MU, TAU, LR, STEPS = 0.05, 1.0, 0.7, 1e-3, 10


def make_batch(cfg, gen):
    samples = []
    L, V = cfg["blocks"], cfg["items"]
    for _ in range(6):
        t = 9  # every sample has t - t0 = 5 loss rows, so the row-weighted mean is the mean of samples
        t0 = 4
        seq = torch.randint(1, V + 1, (t,), generator=gen).tolist()
        neg = torch.randint(1, V + 1, (t - t0, 2), generator=gen).tolist()
        noise = (torch.rand(L, generator=gen, dtype=torch.float64) * 0.98 + 0.01)
        noise = torch.log(noise) - torch.log1p(-noise)
        samples.append({"seq": seq, "t0": t0, "budget": float(torch.rand(1, generator=gen) * 0.8 + 0.2),
                        "negatives": neg, "noise": noise.tolist()})
    return samples


def torch_run(model, samples):
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    losses, grads = [], None
    for step in range(STEPS + 1):
        opt.zero_grad()
        loss = sum(model.training_loss(s["seq"], s["t0"], s["budget"], s["negatives"],
                                       torch.tensor(s["noise"], dtype=torch.float32), tau=TAU, lam=LAMBDA,
                                       mu=MU)[0] for s in samples) / len(samples)
        loss.backward()
        losses.append(loss.item())
        if step == 0:
            grads = {n: p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
                     for n, p in model.named_parameters()}
        if step < STEPS:
            opt.step()
    return losses, grads


def main():
    driver, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    failures = []
    for name, edit in VARIANTS.items():
        cfg = json.loads(json.dumps(CONFIG))
        cfg.update(edit)
        torch.manual_seed(0)
        model = fofa_torch.FofaModel(cfg)
        model.init_weights(3, mapper_scale=0.05, ln_noise=0.1, bias_scale=0.05, head_bias=0.0)
        path = os.path.join(work, f"{name}.fofa")
        fofa_torch.save_fofa(model, path)
        samples = make_batch(model.cfg, torch.Generator().manual_seed(11))
        batch_path = os.path.join(work, f"{name}.json")
        with open(batch_path, "w") as f:
            json.dump({"samples": samples, "tau": TAU, "lambda": LAMBDA, "mu": MU, "lr": LR, "steps": STEPS}, f)
        out = json.loads(subprocess.run([driver, path, batch_path], check=True, capture_output=True,
                                        text=True).stdout)
        t_losses, t_grads = torch_run(model, samples)
        if not model.cfg["controller"]["enabled"]:
            # Without a controller fofa_torch still adds lam * 1 + mu * relu(1 - b) (pi = 1), a constant
            # with no gradient; fofa has no sparsity term then (SPEC 6), so compare without it.
            const = sum(LAMBDA + MU * max(0.0, 1.0 - s["budget"]) for s in samples) / len(samples)
            t_losses = [x - const for x in t_losses]
        worst = 0.0
        for pname, g in t_grads.items():
            ours = torch.tensor(out["grads"][pname], dtype=torch.float64).reshape(g.shape)
            ref = g.double()
            scale = max(ref.norm().item(), 1e-6)
            err = (ours - ref).norm().item() / scale if ref.norm().item() > 1e-7 else (ours - ref).norm().item()
            worst = max(worst, err)
            if err > 1e-3:
                failures.append(f"{name}: gradient of {pname} differs: relative error {err:.2e}")
        loss_err = max(abs(a - b) for a, b in zip(out["losses"], t_losses))
        if loss_err > 1e-3:
            failures.append(f"{name}: Adam losses differ by {loss_err:.2e}: fofa {out['losses']} torch {t_losses}")
        print(f"{name}: max gradient relative error {worst:.2e}, max loss difference over {STEPS} Adam steps "
              f"{loss_err:.2e} (loss {t_losses[0]:.5f} -> {t_losses[-1]:.5f})")
    if failures:
        print("\n".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
