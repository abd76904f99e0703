"""fofa_torch.py: the Forward-OFA model of docs/DESIGN.md in PyTorch 1.13, the reference fofa is
tested against.

The module tree mirrors the fofa tensor names, so ``FofaModel.state_dict()`` keys are exactly the
.fofa / safetensors names (``item_emb.weight``, ``blocks.0.attn.q.weight``, ``mapper.heads.0.v1``...).

Inference (one user, exactly the C++ ForwardOfa):
    model = FofaModel(config_dict)          # config: the "config" object of a .fofa header
    out = model.infer(history, candidates, budget)   # {"logits", "pi", "mask"}
Pieces: window(), embed(), controller_pi(), select_blocks(), mapper_code(), materialise(),
backbone_state(), score().

Training pieces (SPEC section 6), for the training engineer's gradient comparisons:
    gumbel_mask(alpha, tau, noise) straight-through hard mask; training_loss(...) BCE + sparsity
    + budget hinge for one sample with the given negatives and logistic noise (no randomness inside).

Plans as plain modules: PlannedForward(model, history, budget) freezes adapt()'s decision and
runs (history ids tensor, candidate ids tensor) -> logits with tensors only (torch.jit.trace-able),
the PyTorch counterpart of a fofa device request.

Weights I/O without extra packages: load_fofa()/save_fofa() (.fofa v1 of docs/DESIGN.md, model
kind, f32), save_safetensors()/load_safetensors() (F32 only), save_raw()/load_raw() (the tests/data
fixture format: JSON index + raw little-endian f32); load_config()/save_config() for config JSON.
Run as /usr/bin/python3 (Debian's python3-torch); nothing here downloads anything.
"""
import json
import math
import os
import struct
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULT_CONFIG = {
    "items": 100, "d": 64, "heads": 2, "blocks": 6, "max_len": 50, "ffn": 256,
    "activation": "gelu", "norm": "pre", "eps": 1e-8, "positions": "start", "emb_scale": "sqrt_d",
    "input_ln": False, "final_ln": True, "padding": "none",
    "controller": {"enabled": True, "extractor": "mean", "width": 64, "min_blocks": 1},
    "mapper": {"mode": "lowrank", "rank": 8, "code_width": 64, "structure_width": 16},
}


def full_config(cfg):
    """DEFAULT_CONFIG overridden by cfg (nested dicts merged), with the same checks as ModelConfig."""
    out = json.loads(json.dumps(DEFAULT_CONFIG))
    for k, v in cfg.items():
        if isinstance(v, dict):
            out[k].update(v)
        else:
            out[k] = v
    assert out["d"] % out["heads"] == 0, "d must be divisible by heads"
    assert out["norm"] in ("pre", "post", "query_only")
    assert out["activation"] in ("gelu", "relu")
    assert out["positions"] in ("start", "end")
    assert out["padding"] in ("none", "left_window")
    assert out["mapper"]["mode"] in ("lowrank", "full", "off")
    assert out["controller"]["extractor"] in ("mean", "gru")
    return out


def block_flops(cfg):
    """c_k of docs/DESIGN.md at n = max_len."""
    n, d, f = cfg["max_len"], cfg["d"], cfg["ffn"]
    return 8 * n * d * d + 4 * n * n * d + 4 * n * d * f


class Attention(nn.Module):
    """Causal multi-head attention; head h uses columns h*dh..(h+1)*dh-1 of Q, K, V."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(d, d) for _ in range(4))

    def forward(self, xq, xkv, q_offset=0):
        # xq: [..., Rq, d] query rows at absolute positions q_offset..; xkv: [..., R, d] all keys.
        rq, r, d = xq.shape[-2], xkv.shape[-2], xq.shape[-1]
        dh = d // self.heads
        q = self.q(xq).unflatten(-1, (self.heads, dh)).transpose(-3, -2)
        k = self.k(xkv).unflatten(-1, (self.heads, dh)).transpose(-3, -2)
        v = self.v(xkv).unflatten(-1, (self.heads, dh)).transpose(-3, -2)
        s = q @ k.transpose(-1, -2) / math.sqrt(dh)
        qpos = torch.arange(rq).unsqueeze(1) + q_offset
        kpos = torch.arange(r).unsqueeze(0)
        s = s.masked_fill(kpos > qpos, float("-inf"))
        o = torch.softmax(s, dim=-1) @ v
        return self.out(o.transpose(-3, -2).flatten(-2))


class FeedForward(nn.Module):
    def __init__(self, d, f):
        super().__init__()
        self.w1 = nn.Linear(d, f)
        self.w2 = nn.Linear(f, d)


def ffn_apply(x, w1, b1, w2, b2, act, gate=None):
    """gate * (W2 act(W1 x + b1) + b2); w1 [f, d], w2 [d, f] (nn.Linear layout)."""
    h = F.linear(x, w1, b1)
    h = F.gelu(h) if act == "gelu" else F.relu(h)
    y = F.linear(h, w2, b2)
    return y if gate is None else y * gate


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["d"]
        self.norm, self.act = cfg["norm"], cfg["activation"]
        self.ln1 = nn.LayerNorm(d, eps=cfg["eps"])
        self.attn = Attention(d, cfg["heads"])
        self.ln2 = nn.LayerNorm(d, eps=cfg["eps"])
        self.ffn = FeedForward(d, cfg["ffn"])

    def forward(self, x, ffn=None):
        """x [..., R, d]; ffn = (w1, b1, w2, b2, gate) of this user, or None for the static FFN."""
        if ffn is None:
            ffn = (self.ffn.w1.weight, self.ffn.w1.bias, self.ffn.w2.weight, self.ffn.w2.bias, None)

        def f(z):
            return ffn_apply(z, *ffn[:4], self.act, ffn[4])

        if self.norm == "pre":
            n = self.ln1(x)
            a = x + self.attn(n, n)
            return a + f(self.ln2(a))
        if self.norm == "query_only":
            q = self.ln1(x)
            a = q + self.attn(q, x)
            b = self.ln2(a)
            return b + f(b)
        a = self.ln1(x + self.attn(x, x))  # post
        return self.ln2(a + f(a))


class GRUExtractor(nn.Module):
    """torch.nn.GRU (1 layer, h0 = 0) with fofa's flat parameter names; returns h_T."""

    def __init__(self, d, h):
        super().__init__()
        self.weight_ih = nn.Parameter(torch.empty(3 * h, d))
        self.weight_hh = nn.Parameter(torch.empty(3 * h, h))
        self.bias_ih = nn.Parameter(torch.empty(3 * h))
        self.bias_hh = nn.Parameter(torch.empty(3 * h))
        self.h = h

    def forward(self, x):  # x [T, d] -> [h]
        h = x.new_zeros(self.h)
        gi_all = F.linear(x, self.weight_ih, self.bias_ih)
        for t in range(x.shape[0]):
            gi = gi_all[t]
            gh = F.linear(h, self.weight_hh, self.bias_hh)
            r = torch.sigmoid(gi[: self.h] + gh[: self.h])
            z = torch.sigmoid(gi[self.h: 2 * self.h] + gh[self.h: 2 * self.h])
            n = torch.tanh(gi[2 * self.h:] + r * gh[2 * self.h:])
            h = (1 - z) * n + z * h
        return h


class Controller(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, c, L = cfg["d"], cfg["controller"]["width"], cfg["blocks"]
        self.kind = cfg["controller"]["extractor"]
        if self.kind == "mean":
            self.extractor = nn.Linear(d, c)
        else:
            self.gru = GRUExtractor(d, c)
        self.head = nn.Linear(c + 1, L)

    def alpha(self, x0, budget):
        """alpha [L] from the prefix x0 [t0, d] and the budget (a float)."""
        g = torch.tanh(self.extractor(x0.mean(0))) if self.kind == "mean" else self.gru(x0)
        b = torch.tensor([budget], dtype=x0.dtype)
        return self.head(torch.cat([g, b]))


class MapperHead(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, f = cfg["d"], cfg["ffn"]
        m = cfg["mapper"]
        qw = m["code_width"] + m["structure_width"]
        if m["mode"] == "lowrank":
            r = m["rank"]
            self.a1 = nn.Linear(qw, d * r)
            self.v1 = nn.Parameter(torch.empty(r, f))
            self.a2 = nn.Linear(qw, f * r)
            self.v2 = nn.Parameter(torch.empty(r, d))
        else:
            self.a1 = nn.Linear(qw, f * d)
            self.a2 = nn.Linear(qw, d * f)
        self.g = nn.Linear(qw, d, bias=False)


class Mapper(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, L = cfg["d"], cfg["blocks"]
        m = cfg["mapper"]
        self.extractor = nn.Linear(d, m["code_width"])
        self.mlp = nn.Linear(m["code_width"], m["code_width"])
        self.structure = nn.Linear(L, m["structure_width"])
        self.heads = nn.ModuleList(MapperHead(cfg) for _ in range(L))


class FofaModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        cfg = full_config(cfg)
        self.cfg = cfg
        V, d, n = cfg["items"], cfg["d"], cfg["max_len"]
        self.item_emb = nn.Embedding(V + 1, d)
        self.pos_emb = nn.Embedding(n, d)
        if cfg["input_ln"]:
            self.input_ln = nn.LayerNorm(d, eps=cfg["eps"])
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg["blocks"]))
        if cfg["final_ln"]:
            self.final_ln = nn.LayerNorm(d, eps=cfg["eps"])
        if cfg["controller"]["enabled"]:
            self.controller = Controller(cfg)
        if cfg["mapper"]["mode"] != "off":
            self.mapper = Mapper(cfg)
        self.init_weights(0)

    # ---- initialisation ------------------------------------------------------------------
    def init_weights(self, seed, mapper_scale=0.0, ln_noise=0.0, bias_scale=0.0, head_bias=2.0):
        """docs/DESIGN.md init (as fofa/model/init.hpp, different random stream). Tests pass
        mapper_scale/ln_noise/bias_scale > 0 so every tensor influences the output."""
        g = torch.Generator().manual_seed(seed)
        d = self.cfg["d"]
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name in ("item_emb.weight", "pos_emb.weight"):
                    p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(d))
                elif name.endswith("v1") or name.endswith("v2"):
                    p.copy_(torch.randn(p.shape, generator=g) * 0.02)
                elif name.startswith("mapper.heads."):
                    p.copy_(torch.randn(p.shape, generator=g) * mapper_scale)
                elif ("ln" in name.split(".")[-2] if "." in name else False):
                    base = 1.0 if name.endswith("weight") else 0.0
                    p.copy_(base + torch.randn(p.shape, generator=g) * ln_noise)
                elif name == "controller.head.bias":
                    p.copy_(head_bias + torch.randn(p.shape, generator=g) * bias_scale)
                elif p.dim() == 1:
                    p.copy_(torch.randn(p.shape, generator=g) * bias_scale)
                else:
                    std = math.sqrt(2.0 / (p.shape[0] + p.shape[1]))
                    p.copy_(torch.randn(p.shape, generator=g) * std)
            self.item_emb.weight[0].zero_()
            if self.cfg["mapper"]["mode"] == "full":
                for k, h in enumerate(self.mapper.heads):
                    h.a1.bias.add_(self.blocks[k].ffn.w1.weight.flatten())
                    h.a2.bias.add_(self.blocks[k].ffn.w2.weight.flatten())

    # ---- inference pieces (one user) -----------------------------------------------------
    def window(self, history):
        """Newest max_len ids; errors as fofa: empty history, ids outside [1, V]."""
        if len(history) == 0:
            raise ValueError("empty history")
        for i in history:
            if not 1 <= i <= self.cfg["items"]:
                raise ValueError(f"history item id {i} is outside [1, {self.cfg['items']}]")
        return list(history)[-self.cfg["max_len"]:]

    def embed(self, window):
        """x0 [t, d]: E[s] * scale + P[pos] (then input_ln), the real rows."""
        cfg = self.cfg
        t, n = len(window), cfg["max_len"]
        scale = math.sqrt(cfg["d"]) if cfg["emb_scale"] == "sqrt_d" else 1.0
        first = 0 if cfg["positions"] == "start" else n - t
        x = self.item_emb(torch.tensor(window)) * scale + self.pos_emb.weight[first: first + t]
        if cfg["input_ln"]:
            x = self.input_ln(x)
        return x

    def controller_pi(self, x0, budget):
        if not self.cfg["controller"]["enabled"]:
            return torch.ones(self.cfg["blocks"])
        return torch.sigmoid(self.controller.alpha(x0, budget))

    def select_blocks(self, pi, budget):
        """Inference mask (docs/DESIGN.md); budget compared in double as fofa does."""
        cfg = self.cfg
        L = cfg["blocks"]
        if not cfg["controller"]["enabled"]:
            return [1] * L
        p = [float(v) for v in pi]
        c = [float(block_flops(cfg))] * L
        m = [1 if v > 0.5 else 0 for v in p]
        total = sum(c)
        kept = sum(ci for ci, mi in zip(c, m) if mi)
        b = float(np.float32(budget))
        while kept > b * total:
            cand = [k for k in range(L) if m[k]]
            drop = min(cand, key=lambda k: (p[k], -k))  # lowest pi, ties: higher index
            m[drop] = 0
            kept -= c[drop]
        if cfg["controller"]["min_blocks"] >= 1 and not any(m):
            m[max(range(L), key=lambda k: (p[k], -k))] = 1  # argmax, ties: lowest index
        return m

    def mapper_code(self, x0, mask):
        """q = [z ; e] with z = tanh(mlp(tanh(extractor(mean x0)))), e = tanh(W_s m + b_s)."""
        mp = self.mapper
        z = torch.tanh(mp.mlp(torch.tanh(mp.extractor(x0.mean(0)))))
        e = torch.tanh(mp.structure(torch.as_tensor(mask, dtype=x0.dtype)))
        return torch.cat([z, e])

    def materialise(self, k, q):
        """(w1, b1, w2, b2, gate) of block k for code q."""
        cfg = self.cfg
        d, f = cfg["d"], cfg["ffn"]
        blk = self.blocks[k].ffn
        h = self.mapper.heads[k]
        gate = 1 + torch.tanh(h.g(q))
        if cfg["mapper"]["mode"] == "full":
            w1 = h.a1(q).reshape(f, d)
            w2 = h.a2(q).reshape(d, f)
        else:
            r = cfg["mapper"]["rank"]
            u1 = h.a1(q).reshape(d, r)
            u2 = h.a2(q).reshape(f, r)
            w1 = blk.w1.weight + (u1 @ h.v1).t()
            w2 = blk.w2.weight + (u2 @ h.v2).t()
        return (w1, blk.w1.bias, w2, blk.w2.bias, gate)

    def backbone_state(self, window, mask, ffns):
        """u [d]: the backbone over the window running block k iff mask[k] with ffns[k]."""
        cfg = self.cfg
        t, n, d = len(window), cfg["max_len"], cfg["d"]
        x0 = self.embed(window)
        pad = 0
        if cfg["padding"] == "left_window":
            pad = n - t
            x0 = torch.cat([x0.new_zeros(pad, d), x0])
        x = x0
        for k, blk in enumerate(self.blocks):
            if mask[k]:
                x = blk(x, ffns[k])
                if pad:
                    x = torch.cat([x.new_zeros(pad, d), x[pad:]])  # padded rows stay zero
        u = x[-1]
        return self.final_ln(u) if cfg["final_ln"] else u

    def score(self, u, candidates):
        for c in candidates:
            if not 1 <= c <= self.cfg["items"]:
                raise ValueError(f"candidate item id {c} is outside [1, {self.cfg['items']}]")
        return self.item_emb(torch.tensor(list(candidates), dtype=torch.long)) @ u

    def adapt(self, history, budget):
        """(pi, mask, ffns): the DevicePlan of fofa (ffns[k] None for a skipped block)."""
        if not (isinstance(budget, (int, float)) and 0.0 < budget <= 1.0):
            raise ValueError(f"budget must be in (0, 1], got {budget}")
        w = self.window(history)
        x0 = self.embed(w)
        pi = self.controller_pi(x0, float(np.float32(budget)))
        mask = self.select_blocks(pi, budget)
        ffns = [None] * self.cfg["blocks"]
        if self.cfg["mapper"]["mode"] != "off":
            q = self.mapper_code(x0, mask)
            ffns = [self.materialise(k, q) if mask[k] else None for k in range(self.cfg["blocks"])]
        return pi, mask, ffns

    def forward(self, history, candidates, budget=1.0):
        """Differentiable logits of candidates (lists of ids) after adapt(history, budget)."""
        _pi, mask, ffns = self.adapt(history, budget)
        return self.score(self.backbone_state(self.window(history), mask, ffns), candidates)

    @torch.no_grad()
    def infer(self, history, candidates, budget=1.0):
        pi, mask, ffns = self.adapt(history, budget)
        u = self.backbone_state(self.window(history), mask, ffns)
        logits = self.score(u, candidates) if len(candidates) else torch.zeros(0)
        return {"logits": logits, "pi": pi, "mask": mask}

    # ---- training pieces (SPEC section 6) ------------------------------------------------
    def sequence_states(self, x0_full, mask, ffns):
        """Training backbone on a whole prefix with a (possibly soft / straight-through) mask:
        X <- m_k Block_k(X) + (1 - m_k) X, so a hard 0/1 mask equals running / skipping k."""
        x = x0_full
        for k, blk in enumerate(self.blocks):
            y = blk(x, ffns[k] if ffns is not None else None)
            x = mask[k] * y + (1 - mask[k]) * x
        return self.final_ln(x) if self.cfg["final_ln"] else x

    def training_loss(self, seq, t0, budget, negatives, noise, tau=1.0, lam=1e-2, mu=1.0):
        """Loss of one training sample (padding "none", start positions, no dropout).

        seq: ids s_1..s_t (t <= max_len); t0 in [1, t-1]: controller/mapper read s_1..s_t0;
        rows i = t0-1 .. t-2 (0-based) predict s_{i+2}; negatives [t-t0, k] ids; noise [L]
        logistic noise l_k. Returns (loss, parts dict)."""
        cfg = self.cfg
        x0 = self.embed(list(seq))
        prefix = x0[:t0]
        L = cfg["blocks"]
        if cfg["controller"]["enabled"]:
            alpha = self.controller.alpha(prefix, float(budget))
            pi = torch.sigmoid(alpha)
            m = gumbel_mask(alpha, tau, noise)
        else:
            pi = torch.ones(L)
            m = torch.ones(L)
        ffns = None
        if cfg["mapper"]["mode"] != "off":
            q = self.mapper_code(prefix, m)
            ffns = [self.materialise(k, q) for k in range(L)]
        h = self.sequence_states(x0, m, ffns)
        rows = h[t0 - 1: len(seq) - 1]
        pos = torch.tensor(list(seq[t0:]))
        neg = torch.as_tensor(negatives)
        y_pos = (rows * self.item_emb(pos)).sum(-1)
        y_neg = (rows.unsqueeze(1) * self.item_emb(neg)).sum(-1)
        bce = F.binary_cross_entropy_with_logits(y_pos, torch.ones_like(y_pos)) + \
            F.binary_cross_entropy_with_logits(y_neg, torch.zeros_like(y_neg))
        frac = pi.mean()  # sum c_k pi_k / sum c_k with equal c_k
        sparsity = lam * frac
        hinge = mu * torch.relu(frac - budget)
        loss = bce + sparsity + hinge
        return loss, {"bce": bce, "sparsity": sparsity, "hinge": hinge, "pi": pi, "mask": m}


class PlannedForward(nn.Module):
    """A device request in PyTorch: the blocks and FFNs adapt(history, budget) chose, frozen.
    forward(window_ids [t] long, candidate_ids [c] long) -> logits [c], tensors only."""

    def __init__(self, model, history, budget):
        super().__init__()
        self.model = model
        with torch.no_grad():
            _pi, self.mask, ffns = model.adapt(history, budget)
        self.ffns = [tuple(x.detach() if x is not None else None for x in f) if f is not None else None for f in ffns]

    def forward(self, window, candidates):
        m, cfg = self.model, self.model.cfg
        t, n, d = window.shape[0], cfg["max_len"], cfg["d"]
        scale = math.sqrt(d) if cfg["emb_scale"] == "sqrt_d" else 1.0
        first = 0 if cfg["positions"] == "start" else n - t
        x = m.item_emb(window) * scale + m.pos_emb.weight[first: first + t]
        if cfg["input_ln"]:
            x = m.input_ln(x)
        pad = n - t if cfg["padding"] == "left_window" else 0
        if pad:
            x = torch.cat([x.new_zeros(pad, d), x])
        for k, blk in enumerate(m.blocks):
            if self.mask[k]:
                x = blk(x, self.ffns[k])
                if pad:
                    x = torch.cat([x.new_zeros(pad, d), x[pad:]])
        u = m.final_ln(x[-1]) if cfg["final_ln"] else x[-1]
        return m.item_emb(candidates) @ u


def gumbel_mask(alpha, tau, noise):
    """Hard m = 1[sigmoid((alpha + l)/tau) > 0.5] with the straight-through gradient of the soft one."""
    soft = torch.sigmoid((alpha + noise) / tau)
    hard = (soft > 0.5).to(alpha.dtype)
    return hard + soft - soft.detach()


# ---- weights I/O ---------------------------------------------------------------------------
def save_raw(model, json_path, bin_path, extra=None):
    """Fixture format: JSON {"config", "tensors": {name: {"shape", "offset"(floats)}}, ...extra}
    and a raw little-endian f32 file holding the tensors back to back."""
    index, off, chunks = {}, 0, []
    for name, t in model.state_dict().items():
        a = t.detach().cpu().numpy().astype("<f4")
        index[name] = {"shape": list(a.shape), "offset": off}
        off += a.size
        chunks.append(a.tobytes())
    with open(bin_path, "wb") as f:
        f.write(b"".join(chunks))
    doc = {"config": model.cfg, "tensors": index}
    doc.update(extra or {})
    with open(json_path, "w") as f:
        json.dump(doc, f, indent=1)


def load_raw(json_path, bin_path):
    with open(json_path) as f:
        doc = json.load(f)
    data = np.fromfile(bin_path, dtype="<f4")
    model = FofaModel(doc["config"])
    state = {n: torch.from_numpy(data[e["offset"]: e["offset"] + int(np.prod(e["shape"]))].reshape(e["shape"]).copy())
             for n, e in doc["tensors"].items()}
    model.load_state_dict(state)
    return model, doc


def save_safetensors(model, path):
    """F32 safetensors (the public format: u64 header length, JSON header, raw data)."""
    header, off, chunks = {}, 0, []
    for name, t in model.state_dict().items():
        b = t.detach().cpu().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        chunks.append(b)
    header["__metadata__"] = {"fofa_config": json.dumps(model.cfg)}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))


def load_safetensors(path, cfg=None):
    with open(path, "rb") as f:
        raw = f.read()
    (hl,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8: 8 + hl])
    meta = header.pop("__metadata__", {})
    model = FofaModel(cfg if cfg is not None else json.loads(meta["fofa_config"]))
    base = 8 + hl
    state = {}
    for name, e in header.items():
        assert e["dtype"] == "F32", f"{name}: only F32 is supported here"
        a, b = e["data_offsets"]
        state[name] = torch.from_numpy(np.frombuffer(raw[base + a: base + b], dtype="<f4").reshape(e["shape"]).copy())
    model.load_state_dict(state)
    return model


def load_config(path):
    with open(path) as f:
        return full_config(json.load(f))


def save_config(cfg, path):
    with open(path, "w") as f:
        json.dump(full_config(cfg), f, indent=1)


FOFA_MAGIC = b"FOFA\x00\x01\r\n"


def save_fofa(model, path, meta=None):
    """A .fofa v1 model file (docs/DESIGN.md): temp file, fsync, rename."""
    tensors, blobs, off = {}, [], 0
    for name, t in model.state_dict().items():
        b = t.detach().cpu().numpy().astype("<f4").tobytes()
        tensors[name] = {"dtype": "f32", "shape": list(t.shape), "offset": off}
        pad = (-len(b)) % 64
        blobs.append(b + b"\0" * pad)
        off += len(b) + pad
    data = b"".join(blobs)
    header = json.dumps({"kind": "model", "config": model.cfg, "tensors": tensors, "meta": meta or {}}).encode()
    header += b" " * ((-(40 + len(header))) % 64)
    crc = zlib.crc32(header + data) & 0xFFFFFFFF
    pre = FOFA_MAGIC + struct.pack("<IIQQII", 1, 0, len(header), len(data), crc, 0)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(pre + header + data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_fofa(path):
    """FofaModel from a .fofa v1 model file, validating magic, version, lengths and CRC."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 40 or raw[:8] != FOFA_MAGIC:
        raise ValueError(f"{path}: not a .fofa file (bad magic)")
    version, _flags, hl, dl, crc, _ = struct.unpack("<IIQQII", raw[8:40])
    if version != 1:
        raise ValueError(f"{path}: unsupported .fofa version {version}")
    if 40 + hl + dl != len(raw):
        raise ValueError(f"{path}: lengths {hl} + {dl} do not match the file size {len(raw)}")
    if zlib.crc32(raw[40:]) & 0xFFFFFFFF != crc:
        raise ValueError(f"{path}: CRC mismatch")
    header = json.loads(raw[40: 40 + hl])
    if header.get("kind") != "model":
        raise ValueError(f"{path}: kind {header.get('kind')!r}, expected 'model'")
    model = FofaModel(header["config"])
    base = 40 + hl
    state = {}
    for name, e in header["tensors"].items():
        if e["dtype"] != "f32":
            raise ValueError(f"{path}: tensor {name} has dtype {e['dtype']}, only f32 is read here")
        count = int(np.prod(e["shape"])) if e["shape"] else 1
        a = np.frombuffer(raw, dtype="<f4", count=count, offset=base + e["offset"])
        state[name] = torch.from_numpy(a.reshape(e["shape"]).copy())
    model.load_state_dict(state)
    return model
