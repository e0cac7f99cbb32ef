#!/usr/bin/python3
"""float16 .npy and bfloat16 .safetensors inputs: `levattn scores` and `select` give the same bits as
the same values stored as float32 (exact leverage read in 16 bits; --p 3 through a float32 copy);
`levattn attend`'s f32 arithmetic gives the same bits as the same values stored as float32; both
arithmetics match a numpy float64 reference of the rounded values (1e-5 and 1e-2); --json names the
element types, arithmetic and kernel; mixes the library does not read in place fall back to
float32; and peak RSS stays below what a float32 copy of the keys and values would need (not under
the sanitizers, whose own memory it would measure).
Usage: test_half_inputs.py LEVATTN [no-rss-check]"""
import functools
import json
import os
import sys
import tempfile

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import cli_helpers  # noqa: E402
from cli_helpers import check, softmax_attention  # noqa: E402

BIN = sys.argv[1]
CHECK_RSS = sys.argv[2:] != ["no-rss-check"]
run = functools.partial(cli_helpers.run, BIN)


def to_bf16_bits(x):
    """float32 → bfloat16 bits, round to nearest even (finite inputs)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def from_bf16_bits(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path, tensors):
    """tensors: name → (dtype tag, uint16/float array). Data starts 8-byte aligned."""
    header, blobs, offset = {}, [], 0
    for name, (tag, arr) in tensors.items():
        data = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": tag, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + b"".join(blobs))


def grouped_error(O, Q, K, V, scale, causal):
    """Worst relative row-block error of (b, h, n, d) outputs against float64, grouped heads."""
    err = 0.0
    group = Q.shape[1] // K.shape[1]
    for b in range(Q.shape[0]):
        for h in range(Q.shape[1]):
            ref, _ = softmax_attention(Q[b, h], K[b, h // group], V[b, h // group], scale, causal)
            err = max(err, np.linalg.norm(O[b, h] - ref) / np.linalg.norm(ref))
    return err


def main():
    rng = np.random.default_rng(7)
    tmp = tempfile.mkdtemp()
    p = lambda name: os.path.join(tmp, name)  # noqa: E731
    shape_q, shape_kv = (2, 4, 70, 24), (2, 2, 90, 24)
    Q, K, V = (rng.standard_normal(s).astype(np.float32) for s in (shape_q, shape_kv, shape_kv))
    scale = 1 / np.sqrt(24)

    # float16 .npy, f32 arithmetic: same bits as float32 files of the same values.
    for name, arr in (("Q", Q), ("K", K), ("V", V)):
        np.save(p(name + "16.npy"), arr.astype(np.float16))
        np.save(p(name + "32.npy"), arr.astype(np.float16).astype(np.float32))
    qkv16 = ["--queries", p("Q16.npy"), "--keys", p("K16.npy"), "--values", p("V16.npy")]
    qkv32 = ["--queries", p("Q32.npy"), "--keys", p("K32.npy"), "--values", p("V32.npy")]
    r16 = run("attend", *qkv16, "--causal", "--compute", "f32", "--output", p("O16.npy"), "--json")
    r32 = run("attend", *qkv32, "--causal", "--output", p("O32.npy"), "--json")
    ok = r16.returncode == 0 and r32.returncode == 0
    if ok:
        j = json.loads(r16.stdout)
        O16, O32 = np.load(p("O16.npy")), np.load(p("O32.npy"))
        Qr, Kr, Vr = (a.astype(np.float16).astype(np.float32) for a in (Q, K, V))
        ok = (j["keys_type"] == "float16" and j["queries_type"] == "float16" and j["arithmetic"] == "f32"
              and np.array_equal(O16, O32) and grouped_error(O16, Qr, Kr, Vr, scale, True) < 1e-5)
    check(ok, "attend, float16 .npy, --compute f32: equals the float32 run bit for bit and float64 to 1e-5")

    # bfloat16 .safetensors: bf16 arithmetic, and the default f32.
    bits = {name: to_bf16_bits(arr) for name, arr in (("q", Q), ("k", K), ("v", V))}
    write_safetensors(p("qkv.safetensors"), {name: ("BF16", b) for name, b in bits.items()})
    Qb, Kb, Vb = (from_bf16_bits(bits[n]) for n in ("q", "k", "v"))
    qkvb = ["--queries", p("qkv.safetensors:q"), "--keys", p("qkv.safetensors:k"), "--values", p("qkv.safetensors:v")]
    r = run("attend", *qkvb, "--compute", "bf16", "--output", p("Ob.npy"), "--json")
    ok = r.returncode == 0
    if ok:
        j = json.loads(r.stdout)
        err = grouped_error(np.load(p("Ob.npy")), Qb, Kb, Vb, scale, False)
        ok = j["keys_type"] == "bfloat16" and j["arithmetic"] == "bf16" and err < 1e-2
        print(f"     bfloat16 safetensors, bf16 arithmetic on {j['kernel']}: relative error {err:.2e}")
    check(ok, "attend, bfloat16 .safetensors, --compute bf16: within 1e-2 of float64 of the same bfloat16 values")
    for name, arr in (("Qb", Qb), ("Kb", Kb), ("Vb", Vb)):
        np.save(p(name + "32.npy"), arr)
    rf = run("attend", *qkvb, "--output", p("Obf.npy"), "--json")
    r32 = run("attend", "--queries", p("Qb32.npy"), "--keys", p("Kb32.npy"), "--values", p("Vb32.npy"),
              "--output", p("Ob32.npy"))
    ok = (rf.returncode == 0 and r32.returncode == 0 and json.loads(rf.stdout)["arithmetic"] == "f32"
          and np.array_equal(np.load(p("Obf.npy")), np.load(p("Ob32.npy"))))
    check(ok, "attend, bfloat16 .safetensors, default (f32) arithmetic: equals the float32 run bit for bit")

    # float32 queries over float16 keys and values stay 16-bit; a float16/bfloat16 mix becomes float32.
    r = run("attend", "--queries", p("Q32.npy"), "--keys", p("K16.npy"), "--values", p("V16.npy"), "--output",
            p("Om.npy"), "--json")
    ok = r.returncode == 0 and json.loads(r.stdout)["keys_type"] == "float16" and json.loads(r.stdout)[
        "queries_type"] == "float32"
    check(ok, "attend: float32 queries over float16 keys and values read the keys as float16")
    r = run("attend", "--queries", p("Q16.npy"), "--keys", p("K16.npy"), "--values", p("qkv.safetensors:v"),
            "--output", p("Ox.npy"), "--json")
    ok = r.returncode == 0
    if ok:
        j = json.loads(r.stdout)
        ok = j["keys_type"] == "float32" and j["values_type"] == "float32" and grouped_error(
            np.load(p("Ox.npy")), Q.astype(np.float16).astype(np.float32), K.astype(np.float16).astype(np.float32),
            Vb, scale, False) < 1e-5
    check(ok, "attend: float16 keys with bfloat16 values run in float32, matching float64 to 1e-5")
    r = run("attend", *qkvb, "--compute", "f16", "--output", p("never.npy"))
    check(r.returncode == 2 and "--compute" in r.stderr and not os.path.exists(p("never.npy")),
          "attend --compute f16: usage error, no output file")

    # scores and select on 16-bit keys: the float32 run's bits (2-D and 3-D keys, exact and --p 3).
    keys = rng.standard_normal((3, 500, 12)).astype(np.float32) * np.array([1, 10, 0.1], np.float32)[:, None, None]
    np.save(p("K3_16.npy"), keys.astype(np.float16))
    np.save(p("K3_32.npy"), keys.astype(np.float16).astype(np.float32))
    write_safetensors(p("k2.safetensors"), {"k": ("BF16", to_bf16_bits(keys[0]))})
    np.save(p("K2_32.npy"), from_bf16_bits(to_bf16_bits(keys[0])))
    for label, half, full, extra in (("float16 (3, n, d)", p("K3_16.npy"), p("K3_32.npy"), []),
                                     ("bfloat16 (n, d)", p("k2.safetensors:k"), p("K2_32.npy"), []),
                                     ("float16 --p 3", p("K3_16.npy"), p("K3_32.npy"), ["--p", 3])):
        a = run("scores", "--keys", half, *extra, "--output", p("tau16.npy"), "--json")
        b = run("scores", "--keys", full, *extra, "--output", p("tau32.npy"))
        ok = a.returncode == 0 and b.returncode == 0 and np.array_equal(np.load(p("tau16.npy")), np.load(p("tau32.npy")))
        check(ok, f"scores on {label} keys: the float32 run's scores bit for bit")
        ext = ".npy" if "(n, d)" in label else ".csv"  # int64 .npy for 2-D keys, head,key,score CSV for 3-D
        a = run("select", "--keys", half, *extra, "--eps", 0.01, "--output", p("u16" + ext))
        b = run("select", "--keys", full, *extra, "--eps", 0.01, "--output", p("u32" + ext))
        ok = a.returncode == 0 and b.returncode == 0 and open(p("u16" + ext), "rb").read() == open(
            p("u32" + ext), "rb").read()
        check(ok, f"select on {label} keys: the float32 run's universal set")

    # Peak RSS: 64 float32 queries over 2^18 float16 keys and values of width 64 (32 MiB each in
    # float16; a float32 copy of keys and values would add 128 MiB).
    n_k, d = 1 << 18, 64
    np.save(p("Kbig.npy"), rng.standard_normal((n_k, d)).astype(np.float16))
    np.save(p("Vbig.npy"), rng.standard_normal((n_k, d)).astype(np.float16))
    np.save(p("Qbig.npy"), rng.standard_normal((64, d)).astype(np.float32))
    r = run("attend", "--queries", p("Qbig.npy"), "--keys", p("Kbig.npy"), "--values", p("Vbig.npy"), "--output",
            p("Obig.npy"), "--json")
    peak_mib = json.loads(r.stdout)["peak_rss_bytes"] / 2**20 if r.returncode == 0 else float("inf")
    sixteen_mib = 2 * n_k * d * 2 / 2**20
    print(f"     peak RSS {peak_mib:.0f} MiB; keys and values: {sixteen_mib:.0f} MiB in float16, "
          f"{2 * sixteen_mib:.0f} MiB in float32")
    if CHECK_RSS:
        check(peak_mib < sixteen_mib + 48,
              "attend on 64 MiB of float16 keys and values peaks below 16-bit inputs + 48 MiB (a float32 copy adds 128)")
    else:
        check(r.returncode == 0, "attend on 64 MiB of float16 keys and values runs (peak RSS not checked: sanitizers)")

    cli_helpers.finish()


if __name__ == "__main__":
    main()
