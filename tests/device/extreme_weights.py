"""Sets every value of the named f32 tensors of a safetensors file to 3e38: finite, so fofa loads
the model, but large enough to overflow float in a forward pass (tests/device/cli_smoke.cmake).

Usage: extreme_weights.py IN.safetensors OUT.safetensors NAME...
"""
import json
import struct
import sys

src, dst, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(src, "rb") as f:
    data = bytearray(f.read())
header_len = struct.unpack_from("<Q", data)[0]
header = json.loads(data[8:8 + header_len])
for name in names:
    info = header[name]
    assert info["dtype"] == "F32", f"{name} is {info['dtype']}, expected F32"
    begin, end = (8 + header_len + o for o in info["data_offsets"])
    data[begin:end] = struct.pack("<f", 3e38) * ((end - begin) // 4)
with open(dst, "wb") as f:
    f.write(data)
