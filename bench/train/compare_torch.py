"""Training throughput, fofa vs PyTorch 1.13 on CPU, same run, 1 and 2 threads.

usage: /usr/bin/python3 bench/train/compare_torch.py BUILD/bench/train/fofa-bench-train [--steps N] [--rounds R]
       [--blas-threads T] [--json OUT] [--check]
PyTorch runs a BATCHED Forward-OFA training step (the fair baseline: [B, n, d] tensors, per-user
low-rank FFN corrections with bmm, straight-through Gumbel mask, BCE + sparsity + hinge, Adam)
for the SPEC default model at batch 128 with full 50-row windows and a random session start t0,
the same work as fofa-bench-train. Reports sequences per second, and model GFLOP/s (fofa-bench-train's FLOP count) as a percentage of
the FMA peak fofa-bench-train measured. --rounds R (default 3): R rounds of fofa then PyTorch back
to back; every figure is the median over the rounds and each ratio is taken within a round, because
a shared host's speed drifts between runs (the ratios' range is printed too). PyTorch runs in child
processes whose BLAS (OpenBLAS) uses --blas-threads T threads (default 1; see torch_throughput).
--check: exit 1 if PyTorch's 1-thread runs kept more than 1.2 cores busy (the ctest smoke run).
"""
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

V, D, H, L, N, FF, R, DZ, DS, DC = 23715, 64, 2, 6, 50, 256, 8, 64, 16, 64
B = 128


class Batched(nn.Module):
    def __init__(self, adaptive=True):
        super().__init__()
        self.adaptive = adaptive
        self.item_emb = nn.Embedding(V + 1, D)
        self.pos_emb = nn.Embedding(N, D)
        self.ln1 = nn.ModuleList(nn.LayerNorm(D, eps=1e-8) for _ in range(L))
        self.ln2 = nn.ModuleList(nn.LayerNorm(D, eps=1e-8) for _ in range(L))
        self.qkv = nn.ModuleList(nn.Linear(D, 3 * D) for _ in range(L))
        self.out = nn.ModuleList(nn.Linear(D, D) for _ in range(L))
        self.w1 = nn.ModuleList(nn.Linear(D, FF) for _ in range(L))
        self.w2 = nn.ModuleList(nn.Linear(FF, D) for _ in range(L))
        self.final_ln = nn.LayerNorm(D, eps=1e-8)
        if adaptive:
            self.c_ext = nn.Linear(D, DC)
            self.c_head = nn.Linear(DC + 1, L)
            self.m_ext = nn.Linear(D, DZ)
            self.m_mlp = nn.Linear(DZ, DZ)
            self.m_struct = nn.Linear(L, DS)
            self.a1 = nn.ModuleList(nn.Linear(DZ + DS, D * R) for _ in range(L))
            self.a2 = nn.ModuleList(nn.Linear(DZ + DS, FF * R) for _ in range(L))
            self.v1 = nn.ParameterList(nn.Parameter(torch.randn(R, FF) * 0.02) for _ in range(L))
            self.v2 = nn.ParameterList(nn.Parameter(torch.randn(R, D) * 0.02) for _ in range(L))
            self.g = nn.ModuleList(nn.Linear(DZ + DS, D, bias=False) for _ in range(L))
        self.register_buffer("causal", torch.triu(torch.ones(N, N, dtype=torch.bool), 1))

    def forward(self, seq, pos, neg, t0, budget, noise, tau=1.0, p=0.2):
        x0 = self.item_emb(seq) * math.sqrt(D) + self.pos_emb.weight[None]
        rows = torch.arange(N)[None, :]
        if self.adaptive:
            pm = (rows < t0[:, None]).float()
            mean = (x0 * pm[..., None]).sum(1) / t0[:, None].float()
            alpha = self.c_head(torch.cat([torch.tanh(self.c_ext(mean)), budget[:, None]], 1))
            pi = torch.sigmoid(alpha)
            soft = torch.sigmoid((alpha + noise) / tau)
            m = (soft > 0.5).float() + soft - soft.detach()
            q = torch.cat([torch.tanh(self.m_mlp(torch.tanh(self.m_ext(mean)))), torch.tanh(self.m_struct(m))], 1)
            loss_rows = (rows >= (t0[:, None] - 1)).float()
        else:
            loss_rows = torch.ones(B, N)
        x = F.dropout(x0, p, True)
        for k in range(L):
            h = self.ln1[k](x)
            qq, kk, vv = self.qkv[k](h).view(B, N, 3, H, D // H).permute(2, 0, 3, 1, 4)
            s = (qq @ kk.transpose(-1, -2)) / math.sqrt(D // H)
            a = torch.softmax(s.masked_fill(self.causal, float("-inf")), -1) @ vv
            a = x + F.dropout(self.out[k](a.transpose(1, 2).reshape(B, N, D)), p, True)
            h = self.ln2[k](a)
            f = self.w1[k](h)
            if self.adaptive:
                f = f + torch.bmm(torch.bmm(h, self.a1[k](q).view(B, D, R)), self.v1[k].expand(B, R, FF))
            f = F.dropout(F.gelu(f), p, True)
            y = self.w2[k](f)
            if self.adaptive:
                y = y + torch.bmm(torch.bmm(f, self.a2[k](q).view(B, FF, R)), self.v2[k].expand(B, R, D))
                y = y * (1 + torch.tanh(self.g[k](q)))[:, None, :]
            y = a + F.dropout(y, p, True)
            x = m[:, k, None, None] * y + (1 - m[:, k, None, None]) * x if self.adaptive else y
        u = self.final_ln(x)
        yp = (u * self.item_emb(pos)).sum(-1)
        yn = (u * self.item_emb(neg)).sum(-1)
        w = loss_rows / loss_rows.sum()
        loss = (F.binary_cross_entropy_with_logits(yp, torch.ones_like(yp), reduction="none") * w).sum() + \
            (F.binary_cross_entropy_with_logits(yn, torch.zeros_like(yn), reduction="none") * w).sum()
        if self.adaptive:
            frac = pi.mean(1)
            loss = loss + 0.01 * frac.mean() + torch.relu(frac - budget).mean()
        return loss


def torch_throughput(threads, steps, adaptive, blas_threads):
    """(sequences per second, cores busy = CPU time / wall time) of PyTorch at `threads` intra-op
    threads, measured in a child process.

    Debian's torch calls the system BLAS (OpenBLAS, pthread build), whose own thread pool ignores
    torch.set_num_threads. Its threads and torch's OpenMP threads then share the 2 cores: at 2 threads
    that halved torch's speed. The child's environment fixes the BLAS pool before torch loads it:
    one thread by default (--blas-threads), so "1 thread" is one thread and 2 threads are torch's own.
    """
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas_threads), OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, __file__, "--torch-child", str(threads), str(steps), str(int(adaptive))],
                         check=True, capture_output=True, text=True, env=env).stdout
    return tuple(float(v) for v in out.split())


def torch_child(threads, steps, adaptive):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Batched(adaptive)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def batch():
        u = torch.rand(B, L).clamp(1e-6, 1 - 1e-6)
        return (torch.randint(1, V + 1, (B, N)), torch.randint(1, V + 1, (B, N)), torch.randint(1, V + 1, (B, N)),
                torch.randint(1, N + 1, (B,)), torch.rand(B) * 0.8 + 0.2, torch.log(u) - torch.log1p(-u))

    def step(b):
        opt.zero_grad()
        model(*b).backward()
        opt.step()

    step(batch())
    total = cpu = 0.0
    for _ in range(steps):
        b = batch()
        t, c = time.perf_counter(), time.process_time()
        step(b)
        cpu += time.process_time() - c
        total += time.perf_counter() - t
    return B * steps / total, cpu / total


def main():
    if sys.argv[1] == "--torch-child":
        print(*torch_child(int(sys.argv[2]), int(sys.argv[3]), bool(int(sys.argv[4]))))
        return
    exe = sys.argv[1]
    blas = int(sys.argv[sys.argv.index("--blas-threads") + 1]) if "--blas-threads" in sys.argv else 1
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 5
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 3
    results = {}
    for system, adaptive in (("forward_ofa", True), ("static", False)):
        # Rounds of fofa then PyTorch, back to back: a shared host's speed drifts over minutes, so
        # each ratio comes from one round and the table shows medians (and the ratios' range).
        per = []
        for _ in range(rounds):
            ours = json.loads(subprocess.run([exe, "--steps", str(steps), "--system", system], check=True,
                                             capture_output=True, text=True).stdout)
            (t1, c1), (t2, c2) = (torch_throughput(n, steps, adaptive, blas) for n in (1, 2))
            per.append({"fofa_1": ours["fofa_threads_1"], "fofa_2": ours["fofa_threads_2"], "torch_1": t1,
                        "torch_2": t2, "cores_torch_1": c1, "cores_torch_2": c2,
                        **{f"cores_fofa_{n}": ours[f"cpu_seconds_per_step_threads_{n}"] * ours[f"fofa_threads_{n}"] / B
                           for n in (1, 2)}})
        for p in per:
            p["speedup_1"], p["speedup_2"] = p["fofa_1"] / p["torch_1"], p["fofa_2"] / p["torch_2"]
            p["fofa_scaling"] = p["fofa_2"] / p["fofa_1"]
        row = {k: statistics.median(p[k] for p in per) for k in per[0]}
        row["rounds"] = per
        ratio_range = {k: (min(p[k] for p in per), max(p[k] for p in per)) for k in ("speedup_1", "fofa_scaling")}
        # Model FLOPs per sequence (fofa-bench-train's count, the same model and shapes in both).
        flop_per_seq = ours["model_gflop_per_step"] / B
        peak = ours["fma_peak_gflops"]
        for k in ("fofa_1", "fofa_2", "torch_1", "torch_2"):
            row["gflops_" + k] = row[k] * flop_per_seq
        row["model_gflop_per_step"], row["fma_peak_gflops"] = ours["model_gflop_per_step"], peak
        results[system] = row
        print(f"{system:12s} seq/s  fofa 1T {row['fofa_1']:7.1f}  2T {row['fofa_2']:7.1f}  | torch 1T "
              f"{row['torch_1']:7.1f}  2T {row['torch_2']:7.1f}  | speedup 1T {row['speedup_1']:.2f}x "
              f"2T {row['speedup_2']:.2f}x  fofa 2T/1T {row['fofa_scaling']:.2f}x")
        lo1, hi1 = ratio_range["speedup_1"]
        lo2, hi2 = ratio_range["fofa_scaling"]
        print(f"{'':12s} {rounds} rounds: speedup 1T {lo1:.2f}x-{hi1:.2f}x, fofa 2T/1T {lo2:.2f}x-{hi2:.2f}x")

        def pct(k, cores):
            return f"{row['gflops_' + k]:5.1f} ({100 * row['gflops_' + k] / (cores * peak):3.0f}%)" if peak else \
                f"{row['gflops_' + k]:5.1f}"
        print(f"{'':12s} GFLOP/s fofa 1T {pct('fofa_1', 1)} 2T {pct('fofa_2', 2)} | torch 1T {pct('torch_1', 1)} "
              f"2T {pct('torch_2', 2)}")
        print(f"{'':12s} cores busy fofa 1T {row['cores_fofa_1']:.2f} 2T {row['cores_fofa_2']:.2f} | torch 1T "
              f"{row['cores_torch_1']:.2f} 2T {row['cores_torch_2']:.2f}")
    peak = next(iter(results.values()))["fma_peak_gflops"]
    for system, row in results.items():
        need = 3 * row["gflops_torch_1"]
        if peak:
            print(f"{system}: 3x PyTorch at 1 thread would need {need:.1f} GFLOP/s, {100 * need / peak:.0f}% of the FMA peak "
                  f"over the whole step (fofa: {100 * row['gflops_fofa_1'] / peak:.0f}%)")
    print(f"GFLOP/s: model FLOPs ({next(iter(results.values()))['model_gflop_per_step']:.2f} GFLOP per Forward-OFA step, "
          f"3x the forward) per second; (%): of the FMA peak measured in the same run, {peak:.1f} GFLOP/s per core")
    print(f"cores busy: CPU time / wall time of the timed steps; torch 1T/2T: torch.set_num_threads(1/2) in a child "
          f"process with OPENBLAS_NUM_THREADS={blas} (OpenBLAS's own pool ignores set_num_threads)")
    if "--check" in sys.argv:
        # The smoke test's assertion (not a timing): the thread set-up holds, 1 thread is 1 core.
        busy = {system: row["cores_torch_1"] for system, row in results.items()}
        if any(not (0 < c <= 1.2) for c in busy.values()):
            sys.exit(f"PyTorch at 1 thread kept {busy} cores busy; expected at most 1.2")
    if "--json" in sys.argv:
        with open(sys.argv[sys.argv.index("--json") + 1], "w") as f:
            json.dump({"batch": B, "rows": N, "torch": torch.__version__, "blas_threads": blas, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
