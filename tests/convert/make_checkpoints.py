#!/usr/bin/python3
"""Builds the converter's fixtures with PyTorch 1.13: checkpoints of public SASRec layouts with
random weights plus the logits the PyTorch modules compute, and crafted files for the reader
(storage sharing, offsets, strides, dtypes, big-endian byteorder record, ZIP64, a malicious
pickle, the legacy format).

Usage: /usr/bin/python3 tests/convert/make_checkpoints.py [OUT_DIR]   (default: tests/data)
Files: convert_<layout>.pt (+ .safetensors for some) and convert_<layout>.json (expected logits),
convert_tensors.pt/.json, convert_tensors_zip64.pt, convert_bigendian.pt/.json,
convert_malicious.pt, convert_legacy.pt.

The layouts are re-created from the public code (module names, position handling, masks and
normalisation as the originals do it), not imported:
  pmixer:   pmixer/SASRec.pytorch model.py: query-only LN, Conv1d(k=1) FFN with ReLU and its own
            residual, left-padded window, positions 0..n-1 over the window (pmixer_v2: n+1 rows,
            positions 1..n, row 0 = padding), padded rows zeroed after each block, eps 1e-8.
  recbole:  RecBole SASRec + TransformerEncoder: post-LN BERT blocks, LayerNorm on the input,
            GELU (erf), eps 1e-12, right-padded sequences, positions from the start.
  fofa:     tools/convert/fofa_torch.py (the model engineer's reference): controller + low-rank
            mapper, scored through adapt() at two budgets.
  s3rec:    S3Rec (CIKM 2020) SASRec fine-tuning model: the same BERT blocks under other names,
            left-padded to max_len with positions over the window (anchored at the end), padding
            keys masked with -10000.
"""
import json
import math
import os
import struct
import sys
import zlib

import torch
import torch.nn as nn

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(20250101)

ITEMS, D, HEADS, BLOCKS, MAXLEN = 20, 8, 2, 2, 6


def out(name):
    return os.path.join(OUT, name)


def randomise(module):
    """Every parameter ~ N(0, 0.5) so LayerNorm gains, biases and padding rows all matter."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)


# ---------------------------------------------------------------- pmixer/SASRec.pytorch
class PmixerFeedForward(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.conv1 = nn.Conv1d(d, d, kernel_size=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv1d(d, d, kernel_size=1)

    def forward(self, x):  # x [B, L, d]; Conv1d wants [B, C, L]
        y = self.conv2(self.relu(self.conv1(x.transpose(-1, -2)))).transpose(-1, -2)
        return y + x


class PmixerSASRec(nn.Module):
    def __init__(self, items, d, heads, blocks, maxlen, padding_row):
        super().__init__()
        self.maxlen, self.padding_row = maxlen, padding_row
        self.item_emb = nn.Embedding(items + 1, d, padding_idx=0)
        self.pos_emb = nn.Embedding(maxlen + 1, d, padding_idx=0) if padding_row else nn.Embedding(maxlen, d)
        self.attention_layernorms = nn.ModuleList()
        self.attention_layers = nn.ModuleList()
        self.forward_layernorms = nn.ModuleList()
        self.forward_layers = nn.ModuleList()
        for _ in range(blocks):
            self.attention_layernorms.append(nn.LayerNorm(d, eps=1e-8))
            self.attention_layers.append(nn.MultiheadAttention(d, heads, 0.0))
            self.forward_layernorms.append(nn.LayerNorm(d, eps=1e-8))
            self.forward_layers.append(PmixerFeedForward(d))
        self.last_layernorm = nn.LayerNorm(d, eps=1e-8)

    def fix_padding(self):
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
            if self.padding_row:
                self.pos_emb.weight[0].zero_()

    def log2feats(self, seqs_ids):  # [B, L] left-padded with 0
        B, L = seqs_ids.shape
        seqs = self.item_emb(seqs_ids) * (self.item_emb.embedding_dim ** 0.5)
        if self.padding_row:
            poss = torch.arange(1, L + 1).unsqueeze(0).expand(B, -1) * (seqs_ids != 0)
        else:
            poss = torch.arange(L).unsqueeze(0).expand(B, -1)
        seqs = seqs + self.pos_emb(poss)
        keep = (seqs_ids != 0).unsqueeze(-1)
        seqs = seqs * keep
        attn_mask = ~torch.tril(torch.ones((L, L), dtype=torch.bool))
        for i in range(len(self.attention_layers)):
            seqs = seqs.transpose(0, 1)
            q = self.attention_layernorms[i](seqs)
            mha, _ = self.attention_layers[i](q, seqs, seqs, attn_mask=attn_mask)
            seqs = (q + mha).transpose(0, 1)
            seqs = self.forward_layernorms[i](seqs)
            seqs = self.forward_layers[i](seqs)
            seqs = seqs * keep
        return self.last_layernorm(seqs)

    def logits(self, history, candidates):
        window = history[-self.maxlen:]
        ids = torch.tensor([[0] * (self.maxlen - len(window)) + window])
        u = self.log2feats(ids)[0, -1]
        return self.item_emb(torch.tensor(candidates)) @ u


# ---------------------------------------------------------------- BERT-style blocks (RecBole, S3Rec)
def gelu_erf(x):
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


class BertAttention(nn.Module):
    def __init__(self, d, heads, eps):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.dense = nn.Linear(d, d)
        self.LayerNorm = nn.LayerNorm(d, eps=eps)

    def forward(self, x, additive_mask):  # x [B, L, d], mask [B, 1, L, L]
        B, L, d = x.shape
        dh = d // self.heads

        def split(t):
            return t.view(B, L, self.heads, dh).permute(0, 2, 1, 3)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh) + additive_mask
        ctx = (torch.softmax(scores, dim=-1) @ v).permute(0, 2, 1, 3).reshape(B, L, d)
        return self.LayerNorm(self.dense(ctx) + x)


class BertFeedForward(nn.Module):
    def __init__(self, d, inner, eps):
        super().__init__()
        self.dense_1, self.dense_2 = nn.Linear(d, inner), nn.Linear(inner, d)
        self.LayerNorm = nn.LayerNorm(d, eps=eps)

    def forward(self, x):
        return self.LayerNorm(self.dense_2(gelu_erf(self.dense_1(x))) + x)


def bert_mask(ids):
    """Padding keys masked and causal, additive -10000 as RecBole and S3Rec do it."""
    L = ids.shape[1]
    allowed = (ids > 0).unsqueeze(1).unsqueeze(2) & torch.tril(torch.ones((L, L), dtype=torch.bool))
    return torch.where(allowed, 0.0, -10000.0)


class RecBoleLayer(nn.Module):
    def __init__(self, d, heads, inner, eps):
        super().__init__()
        self.multi_head_attention = BertAttention(d, heads, eps)
        self.feed_forward = BertFeedForward(d, inner, eps)

    def forward(self, x, mask):
        return self.feed_forward(self.multi_head_attention(x, mask))


class RecBoleEncoder(nn.Module):
    def __init__(self, blocks, d, heads, inner, eps):
        super().__init__()
        self.layer = nn.ModuleList([RecBoleLayer(d, heads, inner, eps) for _ in range(blocks)])


class RecBoleSASRec(nn.Module):
    def __init__(self, items, d, heads, blocks, maxlen, inner):
        super().__init__()
        self.maxlen = maxlen
        self.item_embedding = nn.Embedding(items + 1, d, padding_idx=0)  # RecBole's n_items counts padding
        self.position_embedding = nn.Embedding(maxlen, d)
        self.trm_encoder = RecBoleEncoder(blocks, d, heads, inner, 1e-12)
        self.LayerNorm = nn.LayerNorm(d, eps=1e-12)

    def fix_padding(self):
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def logits(self, history, candidates):
        window = history[-self.maxlen:]
        ids = torch.tensor([window + [0] * (self.maxlen - len(window))])  # right-padded
        x = self.LayerNorm(self.item_embedding(ids) + self.position_embedding(torch.arange(self.maxlen)))
        mask = bert_mask(ids)
        for layer in self.trm_encoder.layer:
            x = layer(x, mask)
        u = x[0, len(window) - 1]
        return self.item_embedding.weight[torch.tensor(candidates)] @ u


class S3RecLayer(nn.Module):
    def __init__(self, d, heads, inner, eps):
        super().__init__()
        self.attention = BertAttention(d, heads, eps)
        self.intermediate = BertFeedForward(d, inner, eps)

    def forward(self, x, mask):
        return self.intermediate(self.attention(x, mask))


class S3RecEncoder(nn.Module):
    def __init__(self, blocks, d, heads, inner, eps):
        super().__init__()
        self.layer = nn.ModuleList([S3RecLayer(d, heads, inner, eps) for _ in range(blocks)])


class S3RecSASRec(nn.Module):
    def __init__(self, items, d, heads, blocks, maxlen):
        super().__init__()
        self.maxlen = maxlen
        self.item_embeddings = nn.Embedding(items + 1, d, padding_idx=0)
        self.position_embeddings = nn.Embedding(maxlen, d)
        self.item_encoder = S3RecEncoder(blocks, d, heads, 4 * d, 1e-12)
        self.LayerNorm = nn.LayerNorm(d, eps=1e-12)
        # Pre-training heads S3Rec keeps in its state dict; the converter reports them as leftovers.
        self.aap_norm = nn.Linear(d, d)
        self.mip_norm = nn.Linear(d, d)

    def fix_padding(self):
        with torch.no_grad():
            self.item_embeddings.weight[0].zero_()

    def logits(self, history, candidates):
        window = history[-self.maxlen:]
        ids = torch.tensor([[0] * (self.maxlen - len(window)) + window])  # left-padded
        x = self.LayerNorm(self.item_embeddings(ids) + self.position_embeddings(torch.arange(self.maxlen)))
        mask = bert_mask(ids)
        for layer in self.item_encoder.layer:
            x = layer(x, mask)
        u = x[0, -1]
        return self.item_embeddings.weight[torch.tensor(candidates)] @ u


# ---------------------------------------------------------------- files
def write_safetensors(path, state):
    header, blobs, offset = {}, [], 0
    for name, t in state.items():
        b = t.detach().contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def cases(model):
    rng = torch.Generator().manual_seed(7)
    out_cases = []
    for length in (1, 3, MAXLEN, MAXLEN + 3):
        history = torch.randint(1, ITEMS + 1, (length,), generator=rng).tolist()
        candidates = torch.randint(1, ITEMS + 1, (7,), generator=rng).tolist()
        with torch.no_grad():
            logits = model.logits(history, candidates)
        out_cases.append({"history": history, "candidates": candidates, "logits": logits.tolist()})
    return out_cases


def save_layout(name, model, safetensors=False):
    randomise(model)
    model.fix_padding()
    model.eval()
    state = model.state_dict()
    torch.save(state, out(f"convert_{name}.pt"))
    if safetensors:
        write_safetensors(out(f"convert_{name}.safetensors"), state)
    with open(out(f"convert_{name}.json"), "w") as f:
        json.dump({"heads": HEADS, "max_len": MAXLEN, "items": ITEMS, "d": D, "blocks": BLOCKS,
                   "cases": cases(model)}, f)


def write_zip(path, entries, zip64=False):
    """A stored zip with data descriptors (as torch writes) and optionally ZIP64 everywhere."""
    body, central = bytearray(), bytearray()
    for name, data in entries:
        name_b, crc, offset = name.encode(), zlib.crc32(data), len(body)
        local_extra = struct.pack("<HHQQ", 1, 16, 0, 0) if zip64 else b""
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0x0808, 0, 0, 0x21, 0, 0, 0, len(name_b), len(local_extra))
        body += name_b + local_extra + data
        if zip64:
            body += struct.pack("<IIQQ", 0x08074B50, crc, len(data), len(data))
            extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
            sizes = (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
        else:
            body += struct.pack("<IIII", 0x08074B50, crc, len(data), len(data))
            extra, sizes = b"", (len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0x0808, 0, 0, 0x21, crc, sizes[0], sizes[1],
                               len(name_b), len(extra), 0, 0, 0, 0, sizes[2])
        central += name_b + extra
    cd_offset, n = len(body), len(entries)
    tail = bytearray(central)
    if zip64:
        end64 = cd_offset + len(central)
        tail += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(central), cd_offset)
        tail += struct.pack("<IIQI", 0x07064B50, 0, end64, 1)
        tail += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        tail += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), cd_offset, 0)
    with open(path, "wb") as f:
        f.write(bytes(body) + bytes(tail))


def zip_entries(path):
    import zipfile
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def expected_json(state):
    res = {}
    for name, t in state.items():
        if t.is_floating_point():
            res[name] = {"shape": list(t.shape), "values": t.to(torch.float32).reshape(-1).tolist()}
        else:
            res[name] = {"shape": list(t.shape), "integer": True}
    return res


def tensor_fixtures():
    base = torch.arange(12, dtype=torch.float32).reshape(4, 3) * 0.25 - 1.0
    state = {
        "plain": torch.tensor([[1.5, -2.0, 3.25], [0.0, 1e-3, -7.0]]),
        "shared.base": base,
        "shared.rows": base[1:3],             # storage offset 3
        "shared.transposed": base.t(),        # strides (1, 3)
        "shared.every_other": base[:, ::2],   # strides (3, 2)
        "half": torch.tensor([0.5, -1.25, 65504.0, 6.1e-5, 0.0], dtype=torch.float16),
        "bf16": torch.tensor([1.0, -3.5, 256.0], dtype=torch.bfloat16),
        "double": torch.tensor([[0.1, -0.2], [1e10, -1e-10]], dtype=torch.float64),
        "scalar": torch.tensor(4.5),
        "count": torch.tensor([3, 4], dtype=torch.int64),
        "conv": torch.randn(3, 2, 1),
    }
    nested = {"model": state, "epoch": 3}
    torch.save(nested, out("convert_tensors.pt"))
    exp = {"model." + k: v for k, v in expected_json(state).items()}
    with open(out("convert_tensors.json"), "w") as f:
        json.dump(exp, f)
    # The same archive rewritten with ZIP64 records everywhere (sizes and offsets all in extra fields).
    write_zip(out("convert_tensors_zip64.pt"), zip_entries(out("convert_tensors.pt")), zip64=True)
    assert torch.equal(torch.load(out("convert_tensors_zip64.pt"))["model"]["plain"], state["plain"])

    # Big-endian: storages of distinct byte sizes so each can be swapped by its element width.
    be = {"f32": torch.tensor([1.0, -2.5, 3.75, 100.0, -0.125]), "f64": torch.tensor([0.5, -8.0, 1e-3], dtype=torch.float64),
          "f16": torch.tensor([1.0, -2.0, 0.5, 3.0, 1024.0, -0.25, 8.0], dtype=torch.float16),
          "bf16": torch.tensor([2.0, -4.0], dtype=torch.bfloat16)}
    torch.save(be, out("convert_bigendian.pt"))
    width = {20: 4, 24: 8, 14: 2, 4: 2}
    entries = []
    for name, data in zip_entries(out("convert_bigendian.pt")):
        if "/data/" in name:
            w = width[len(data)]
            data = b"".join(data[i:i + w][::-1] for i in range(0, len(data), w))
        entries.append((name, data))
    prefix = entries[0][0].split("/")[0]
    entries.append((prefix + "/byteorder", b"big"))
    write_zip(out("convert_bigendian.pt"), entries)
    with open(out("convert_bigendian.json"), "w") as f:
        json.dump(expected_json(be), f)

    # A pickle that asks for os.system through GLOBAL + REDUCE.
    evil = b"\x80\x02cos\nsystem\nq\x00X\x1d\x00\x00\x00touch /tmp/fofa_convert_pwned\x85R."
    write_zip(out("convert_malicious.pt"), [("archive/data.pkl", evil), ("archive/version", b"3\n")])

    torch.save({"w": torch.ones(2)}, out("convert_legacy.pt"), _use_new_zipfile_serialization=False)


def fofa_layout():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "convert"))
    import fofa_torch
    cfg = {"items": ITEMS, "d": D, "heads": HEADS, "blocks": 3, "max_len": MAXLEN, "ffn": 2 * D,
           "controller": {"enabled": True, "extractor": "mean", "width": 6},
           "mapper": {"mode": "lowrank", "rank": 2, "code_width": 5, "structure_width": 3}}
    model = fofa_torch.FofaModel(cfg)
    model.init_weights(11, mapper_scale=0.2, ln_noise=0.2, bias_scale=0.2, head_bias=0.3)
    model.eval()
    torch.save(model.state_dict(), out("convert_fofa.pt"))
    rng = torch.Generator().manual_seed(5)
    res = []
    for length, budget in ((1, 1.0), (4, 0.5), (MAXLEN + 2, 1.0), (MAXLEN, 0.4)):
        history = torch.randint(1, ITEMS + 1, (length,), generator=rng).tolist()
        candidates = torch.randint(1, ITEMS + 1, (7,), generator=rng).tolist()
        r = model.infer(history, candidates, budget)
        res.append({"history": history, "candidates": candidates, "budget": budget, "logits": r["logits"].tolist()})
    with open(out("convert_fofa.json"), "w") as f:
        json.dump({"heads": HEADS, "max_len": MAXLEN, "cases": res}, f)


def main():
    fofa_layout()
    save_layout("pmixer", PmixerSASRec(ITEMS, D, HEADS, BLOCKS, MAXLEN, padding_row=False))
    save_layout("pmixer_v2", PmixerSASRec(ITEMS, D, HEADS, BLOCKS, MAXLEN, padding_row=True))
    save_layout("recbole", RecBoleSASRec(ITEMS, D, HEADS, BLOCKS, MAXLEN, 4 * D), safetensors=True)
    save_layout("s3rec", S3RecSASRec(ITEMS, D, HEADS, BLOCKS, MAXLEN))
    tensor_fixtures()


if __name__ == "__main__":
    main()
