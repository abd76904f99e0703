#!/usr/bin/env python3
"""Writes tests/data/io/numpy_written.safetensors using only json + struct + numpy.

An independent writer of the safetensors format (no `safetensors` package, no torch), so the C++
reader is tested against a file it did not write. Values follow closed formulas that
tests/io/test_safetensors.cpp recomputes. Run: /usr/bin/python3 make_safetensors_fixture.py
"""
import json
import os
import struct

import numpy as np


def bf16_bytes(x):
    # bfloat16 = upper 16 bits of float32; the chosen values are exact in bf16.
    return (np.asarray(x, dtype="<f4").view("<u4") >> 16).astype("<u2").tobytes()


def main():
    f32 = (np.arange(6, dtype="<f4").reshape(2, 3) * 0.5 - 1.0).astype("<f4")
    f16 = np.array([1.0, -2.0, 65504.0, 2.0 ** -24, 0.333251953125], dtype="<f2")
    bf16_vals = np.array([1.0, -3.5, 256.0, 0.0078125], dtype="<f4")
    f64 = np.array([[1.0 / 3.0, -1e10]], dtype="<f8")
    i32 = np.array([0, -1, 2147483647, -2147483648], dtype="<i4")
    i64 = np.array([5, -6, 7], dtype="<i8")
    scalar = np.array(2.75, dtype="<f4")

    # Insertion order differs from byte order on purpose (the reader must sort by offset).
    items = [
        ("layer.f32", "F32", list(f32.shape), f32.tobytes()),
        ("layer.f16", "F16", list(f16.shape), f16.tobytes()),
        ("layer.bf16", "BF16", [2, 2], bf16_bytes(bf16_vals)),
        ("layer.f64", "F64", list(f64.shape), f64.tobytes()),
        ("ids.i32", "I32", list(i32.shape), i32.tobytes()),
        ("ids.i64", "I64", list(i64.shape), i64.tobytes()),
        ("scalar", "F32", [], scalar.tobytes()),
    ]
    order = [3, 0, 6, 1, 5, 2, 4]  # data layout order
    header = {"__metadata__": {"format": "pt", "writer": "numpy fixture"}}
    data = b""
    for i in order:
        name, dtype, shape, raw = items[i]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "numpy_written.safetensors")
    with open(out, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text + data)
    print(out, 8 + len(text) + len(data), "bytes")


if __name__ == "__main__":
    main()
