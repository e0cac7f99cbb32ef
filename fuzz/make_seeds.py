#!/usr/bin/python3
"""Writes the fuzz seed corpora (committed; run again only to change them):
fuzz/corpus/npy (.npy of every dtype, byte order and memory order the reader takes, 0-d to 3-D,
v1 and v2 headers), fuzz/corpus/safetensors (a name line, then a file with F32, F16, BF16 and F64
tensors), fuzz/corpus/npy_rows (a block-size byte, then a 2-D .npy), and for fuzz_cli the input
files its command lines name (fuzz/cli_inputs/) and the command lines (fuzz/corpus/cli: one
argument a line, every command and its options) with its dictionary fuzz/cli.dict."""
import glob
import io
import json
import os
import re
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(1)


def write(directory, name, data):
    """Writes fuzz/<directory>/<name>."""
    os.makedirs(os.path.join(HERE, directory), exist_ok=True)
    with open(os.path.join(HERE, directory, name), "wb") as fh:
        fh.write(data)


def save(kind, name, data):
    write(os.path.join("corpus", kind), name, data)


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


def save_input(name, data):
    write("cli_inputs", name, data)


cli_arrays = {
    "q": rng.standard_normal((7, 4)).astype("<f4"),
    "k": rng.standard_normal((12, 4)).astype("<f4"),
    "v": rng.standard_normal((12, 3)).astype("<f4"),
    "k16": rng.standard_normal((12, 4)).astype("<f2"),
    "k64be": rng.standard_normal((12, 4)).astype(">f8"),
    "lowrank": (rng.standard_normal((12, 2)) @ rng.standard_normal((2, 4))).astype("<f4"),
    "q3": rng.standard_normal((2, 7, 4)).astype("<f4"),
    "k3": rng.standard_normal((2, 12, 4)).astype("<f4"),
    "v3": rng.standard_normal((2, 12, 3)).astype("<f4"),
    "q4": rng.standard_normal((1, 2, 7, 4)).astype("<f4"),
    "k4": rng.standard_normal((1, 1, 12, 4)).astype("<f4"),
    "v4": rng.standard_normal((1, 1, 12, 3)).astype("<f4"),
    "qc3": rng.standard_normal((2, 12, 4)).astype("<f4"),     # context queries of k3 (press)
    "qc4": rng.standard_normal((1, 2, 12, 4)).astype("<f4"),  # context queries of k4 (press)
    "empty": np.zeros((0, 4), dtype="<f4"),
    "ints": np.arange(48, dtype="<i8").reshape(12, 4),
}
cli_arrays["nan"] = cli_arrays["k"].copy()
cli_arrays["nan"][3, 1] = np.nan
for name, a in cli_arrays.items():
    save_input(name + ".npy", npy_bytes(a))
save_input("bad.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4',}\n")
save_input("qkv.safetensors", safetensors({"q": ("F32", cli_arrays["q"]), "k": ("BF16", cli_arrays["k"]),
                                           "v": ("F16", cli_arrays["v"])}))

QKV = "--queries q.npy --keys k.npy --values v.npy"
command_lines = {
    "help": "--help",
    "attend_help": "attend --help",
    "scores": "scores --keys k.npy --output s.npy",
    "scores_heads_ridge": "scores --keys k3.npy --ridge 0.5 --output s.npy --json",
    "scores_lewis": "scores --keys k.npy --p 1 --output w.npy --json",
    "scores_approx": "scores --keys k.npy --approx 0.5 --failure 0.1 --seed 3 --output t.npy --threads 2",
    "scores_safetensors": "scores --keys qkv.safetensors:k --rcond 1e-3 --output s.npy",
    "scores_bad": "scores --keys bad.npy --output s.npy",
    "scores_nan": "scores --keys nan.npy --output s.npy",
    "select_eps": "select --keys lowrank.npy --eps 0.3 --output u.npy",
    "select_topk_heads": "select --keys k3.npy --top-k 3 --output u.csv --json",
    "select_p": "select --keys k.npy --eps 0.2 --p 3 --output u.npy",
    "heavy": "heavy --queries q.npy --keys k.npy --eps 0.1",
    "heavy_heads_verify": "heavy --queries q3.npy --keys k3.npy --eps 0.05 --output h.csv --json --verify 3",
    "heavy_p": "heavy --queries q.npy --keys k64be.npy --eps 0.1 --p 1.5 --delta 0.2 --seed 2 --output h.csv",
    "heavy_mismatch": "heavy --queries q.npy --keys k3.npy --eps 0.1",
    "attend": f"attend {QKV} --output o.npy",
    "attend_gqa_causal": "attend --queries q4.npy --keys k4.npy --values v4.npy --causal --lse l.npy --output o.npy --json",
    "attend_lev_topk": f"attend {QKV} --method lev --top-k 4 --sinks 1 --window 2 --causal --output o.npy",
    "attend_lev_eps": f"attend {QKV} --method lev --eps 0.2 --f pow:2 --ridge 0.1 --missing-mass mm.npy --output o.npy",
    "attend_lev_pow3": f"attend {QKV} --method lev --eps 0.2 --f pow:3 --delta 0.3 --seed 4 --scale 0.5 --output o.npy",
    "attend_safetensors": "attend --queries qkv.safetensors:q --keys qkv.safetensors:k --values qkv.safetensors:v --output o.npy",
    "stream": "stream --keys k.npy --eps 0.2 --block 5 --output u.npy --json",
    "stream_f16": "stream --keys k16.npy --eps 0.2 --rcond 1e-4 --output u.npy",
    "eval": f"eval {QKV} --budgets 2,4 --output e.csv",
    "eval_heads": "eval --queries q3.npy --keys k3.npy --values v3.npy --budgets 3 --thresholds 0.2 "
                  "--rules leverage,lewis,h2o,ridge,random --f softmax,pow:2 --capture-eps 0.05,0.2 --json",
    "eval_plots": f"eval {QKV} --budgets 4 --relevant 1,2 --sinks 1 --seed 2 --ridge-fraction 0.1 --plots plots --output e.csv",
    "press_snapkv": "press --press snapkv --keys k3.npy --queries qc3.npy --ratio 0.5 --window 2 --pool 3 --output p.npy "
                    "--scores s.npy --json",
    "press_sketched": "press --press sketched-leverage --keys k.npy --budget 3 --gamma 1 --failure 0.2 --seed 2 "
                      "--output p.npy",
    "press_h2o_gqa": "press --press h2o --keys k4.npy --queries qc4.npy --budget 2 --f pow:2 --output p.npy",
    "planted": "planted --output-dir p --seed 3",
    "planted_noise": "planted --output-dir p --directions 2 --copies 2 --noise-rank 2 --noise-strength 0.5 --value-dim 3",
    "demo": "demo --eps 0.2 --json",
}
for name, line in command_lines.items():
    save("cli", name, "\n".join(line.split(" ")).encode())

# The dictionary: commands, every option the CLI registers, the input files, option values.
ROOT = os.path.dirname(HERE)
options = set()
for source in glob.glob(os.path.join(ROOT, "tools", "levattn", "*.cpp")):
    with open(source) as fh:
        options.update(re.findall(r'add_(?:option|flag)\("(--[a-z0-9-]+)"', fh.read()))
words = ["scores", "select", "heavy", "attend", "stream", "eval", "press", "planted", "demo", "--help"] + sorted(options)
words += sorted(os.listdir(os.path.join(HERE, "cli_inputs")))
words += ["softmax", "pow:2", "pow:3", "pow:0.5", "lev", "exact", "leverage", "ridge", "lewis", "row-norm",
          "random", "sinks-window", "h2o", "oracle", "sketched-leverage", "key-norm", "streaming", "snapkv", "qkv.safetensors:q", "qkv.safetensors:x", "0", "-1",
          "1e-300", "nan", "inf", "1e300", "18446744073709551616", "9223372036854775807", "2147483647",
          "2147483648", "4294967296", "4294967297", "0x10"]
with open(os.path.join(HERE, "cli.dict"), "w") as fh:
    fh.write("# libFuzzer dictionary of fuzz_cli, written by make_seeds.py: the commands, every option,\n"
             "# the input files of fuzz/cli_inputs/ and values the options take.\n")
    fh.writelines(f'"{w}"\n' for w in words)

print("wrote", sum(len(files) for _, _, files in os.walk(os.path.join(HERE, "corpus"))), "seeds")
