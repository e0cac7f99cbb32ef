#!/usr/bin/python3
"""Writes the fuzz seed corpora (committed; run again only to change them):
fuzz/corpus/npy (.npy of every dtype, byte order and memory order the reader takes, 0-d to 3-D,
v1 and v2 headers), fuzz/corpus/safetensors (a name line, then a file with F32, F16, BF16 and F64
tensors) and fuzz/corpus/npy_rows (a block-size byte, then a 2-D .npy)."""
import io
import json
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(1)


def save(kind, name, data):
    os.makedirs(os.path.join(HERE, "corpus", kind), exist_ok=True)
    with open(os.path.join(HERE, "corpus", kind, name), "wb") as fh:
        fh.write(data)


def npy_bytes(a, version=None):
    buf = io.BytesIO()
    if version is None:
        np.save(buf, a)
    else:
        np.lib.format.write_array(buf, a, version=version)
    return buf.getvalue()


arrays = {
    "f4_2d": rng.standard_normal((5, 3)).astype("<f4"),
    "f4_1d": rng.standard_normal(7).astype("<f4"),
    "f4_3d": rng.standard_normal((2, 3, 4)).astype("<f4"),
    "f4_0d": np.array(1.5, dtype="<f4"),
    "f4_empty": np.zeros((0, 4), dtype="<f4"),
    "f2_2d": rng.standard_normal((4, 3)).astype("<f2"),
    "f8_2d": rng.standard_normal((3, 3)).astype("<f8"),
    "f4_be": rng.standard_normal((3, 2)).astype(">f4"),
    "f8_be": rng.standard_normal((2, 2)).astype(">f8"),
    "f2_be": rng.standard_normal((2, 3)).astype(">f2"),
    "f4_fortran": np.asfortranarray(rng.standard_normal((4, 3)).astype("<f4")),
    "i8_2d": np.arange(6, dtype="<i8").reshape(2, 3),
}
for name, a in arrays.items():
    save("npy", name + ".npy", npy_bytes(a))
save("npy", "f4_v2.npy", npy_bytes(arrays["f4_2d"], version=(2, 0)))
for name in ["f4_2d", "f2_2d", "f8_be", "f4_fortran"]:
    save("npy_rows", name, bytes([2]) + npy_bytes(arrays[name]))
save("npy_rows", "f4_big_block", bytes([255]) + npy_bytes(rng.standard_normal((40, 3)).astype("<f4")))


def safetensors(tensors, metadata=None):
    header, body = {}, b""
    codes = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}
    for name, (dtype, a) in tensors.items():
        raw = (a.astype("<f4").view("<u4") >> 16).astype("<u2").tobytes() if dtype == "BF16" \
            else np.ascontiguousarray(a.astype(codes[dtype])).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


pair = safetensors({"q": ("F32", rng.standard_normal((3, 4))), "k": ("F16", rng.standard_normal((2, 4)))},
                   {"layout": "(n, d)"})
save("safetensors", "pick_q", b"q\n" + pair)
save("safetensors", "pick_k", b"k\n" + pair)
save("safetensors", "pick_missing", b"v\n" + pair)
save("safetensors", "only_bf16", b"\n" + safetensors({"x": ("BF16", rng.standard_normal((2, 2, 3)))}))
save("safetensors", "only_f64", b"\n" + safetensors({"x": ("F64", rng.standard_normal(5))}))
print("wrote", sum(len(files) for _, _, files in os.walk(os.path.join(HERE, "corpus"))), "seeds")
