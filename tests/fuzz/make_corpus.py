#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora (tests/fuzz/corpus/<fuzzer>/) from the converter fixtures in
tests/data and from small hand-built files. Needs no torch. Usage: python3 tests/fuzz/make_corpus.py"""
import json
import os
import shutil
import struct
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")


def corpus(name):
    d = os.path.join(HERE, "corpus", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def put(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


zips = ["convert_tensors.pt", "convert_tensors_zip64.pt", "convert_bigendian.pt", "convert_malicious.pt"]
d = corpus("fuzz_zip")
for z in zips:
    shutil.copy(os.path.join(DATA, z), d)

d = corpus("fuzz_pickle")
for z in zips:
    with zipfile.ZipFile(os.path.join(DATA, z)) as zf:
        for n in zf.namelist():
            if n.endswith("data.pkl"):
                put(d, z.replace(".pt", ".pkl"), zf.read(n))
put(d, "stack_global.pkl", b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x0bcollections\x8c\x0bOrderedDict\x93)R\x94.")

# safetensors: every dtype the reader knows, plus metadata.
d = corpus("fuzz_safetensors")
tensors = [("f32", "F32", [2, 2], struct.pack("<4f", 1, -2, 3.5, 0)), ("f16", "F16", [3], struct.pack("<3e", 1, -0.5, 2)),
           ("bf16", "BF16", [2], b"\x80\x3f\x00\xc0"), ("f64", "F64", [1], struct.pack("<d", 0.25)),
           ("i64", "I64", [2], struct.pack("<2q", 7, -3)), ("i32", "I32", [1], struct.pack("<i", 5))]
header, blob = {"__metadata__": {"source": "seed"}}, b""
for name, dt, shape, raw in tensors:
    header[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
    blob += raw
h = json.dumps(header).encode()
put(d, "all_dtypes.safetensors", struct.pack("<Q", len(h)) + h + blob)


# .fofa: the smallest whole model (items 3, d 2, one block, n 2, ffn 2, no controller, no mapper).
d = corpus("fuzz_fofa_file")
config = {"items": 3, "d": 2, "heads": 1, "blocks": 1, "max_len": 2, "ffn": 2, "activation": "gelu", "norm": "pre",
          "eps": 1e-8, "positions": "start", "emb_scale": "sqrt_d", "input_ln": False, "final_ln": True,
          "padding": "none", "controller": {"enabled": False}, "mapper": {"mode": "off"}}
shapes = [("item_emb.weight", [4, 2]), ("pos_emb.weight", [2, 2]), ("blocks.0.ln1.weight", [2]), ("blocks.0.ln1.bias", [2])]
for p in ("q", "k", "v", "out"):
    shapes += [(f"blocks.0.attn.{p}.weight", [2, 2]), (f"blocks.0.attn.{p}.bias", [2])]
shapes += [("blocks.0.ln2.weight", [2]), ("blocks.0.ln2.bias", [2]), ("blocks.0.ffn.w1.weight", [2, 2]),
           ("blocks.0.ffn.w1.bias", [2]), ("blocks.0.ffn.w2.weight", [2, 2]), ("blocks.0.ffn.w2.bias", [2]),
           ("final_ln.weight", [2]), ("final_ln.bias", [2])]
table, data = {}, b""
for i, (name, shape) in enumerate(shapes):
    n = 1
    for s in shape:
        n *= s
    table[name] = {"dtype": "f32", "shape": shape, "offset": len(data)}
    data += struct.pack(f"<{n}f", *[0.1 * (i + j + 1) for j in range(n)])
    data += b"\0" * ((64 - len(data) % 64) % 64)
hdr = json.dumps({"kind": "model", "config": config, "tensors": table, "meta": {}}).encode()
hdr += b" " * ((64 - (40 + len(hdr)) % 64) % 64)
crc = zlib.crc32(hdr + data)
pre = b"FOFA\x00\x01\r\n" + struct.pack("<IIQQII", 1, 0, len(hdr), len(data), crc, 0)
put(d, "tiny_model.fofa", pre + hdr + data)
