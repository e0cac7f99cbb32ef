#!/usr/bin/python3
"""float16 .npy and bfloat16 .safetensors inputs: `levattn scores`, `select`, `heavy` and `stream` give
the same bits as the same values stored as float32 (exact leverage and heavy entries read in 16 bits,
recall and precision 1 against float64 of the rounded keys; scores/select --p 3, --approx and heavy
--p 3 read in 16 bits too), and NaN/Inf in 16-bit keys is refused naming the row;
`levattn attend`'s f32 arithmetic (exact and --method lev) gives the same bits as the same values stored as float32; both
arithmetics match a numpy float64 reference of the rounded values (1e-5 and 1e-2); --json names the
element types, arithmetic and kernel; mixes the library does not read in place fall back to
float32; and peak RSS (attend, scores --approx, heavy --p 1) stays below what a float32 copy of the inputs would
need (not under the sanitizers, whose own memory it would measure).
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

    # attend --method lev reads the 16-bit files too: the float32 files' output and missing mass, bit for bit.
    for label, spec16, spec32 in (("float16 .npy", qkv16, qkv32),
                                  ("bfloat16 .safetensors", qkvb, ["--queries", p("Qb32.npy"), "--keys", p("Kb32.npy"),
                                                                   "--values", p("Vb32.npy")])):
        for extra in (["--top-k", 20, "--causal", "--window", 8, "--sinks", 2],
                      ["--eps", 0.05, "--f", "pow:2"], ["--eps", 0.05, "--f", "pow:3", "--delta", 0.3]):
            mass = "--eps" in extra  # each run writes its own missing-mass file
            a = run("attend", *spec16, "--method", "lev", *extra, "--output", p("L16.npy"), "--json",
                    *(["--missing-mass", p("mm16.npy")] if mass else []))
            mm16 = np.load(p("mm16.npy")) if a.returncode == 0 and mass else None
            b = run("attend", *spec32, "--method", "lev", *extra, "--output", p("L32.npy"), "--json",
                    *(["--missing-mass", p("mm32.npy")] if mass else []))
            mm32 = np.load(p("mm32.npy")) if b.returncode == 0 and mass else None
            ok = (a.returncode == 0 and b.returncode == 0 and json.loads(a.stdout)["keys_type"] != "float32"
                  and np.array_equal(np.load(p("L16.npy")), np.load(p("L32.npy")))
                  and json.loads(a.stdout)["kept_per_head"] == json.loads(b.stdout)["kept_per_head"]
                  and (mm16 is None or np.array_equal(mm16, mm32)))
            check(ok, f"attend --method lev {' '.join(map(str, extra[:4]))} on {label}: the float32 files' output bit for bit")

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

    # --approx on float16 keys large enough that the plan sketches (30,000 x 128): read in 16 bits
    # (a chunk of rows widened at a time), the float32 run's scores bit for bit.
    keys_ap = rng.standard_normal((30000, 128)).astype(np.float16)
    np.save(p("Kap16.npy"), keys_ap)
    np.save(p("Kap32.npy"), keys_ap.astype(np.float32))
    a = run("scores", "--keys", p("Kap16.npy"), "--approx", 0.5, "--output", p("ap16.npy"), "--json")
    b = run("scores", "--keys", p("Kap32.npy"), "--approx", 0.5, "--output", p("ap32.npy"))
    ok = a.returncode == 0 and b.returncode == 0 and json.loads(a.stdout)["per_head"][0]["method"] == "sketched" \
        and np.array_equal(np.load(p("ap16.npy")), np.load(p("ap32.npy")))
    check(ok, "scores --approx 0.5 on float16 keys (30,000 x 128) sketches: the float32 run's scores bit for bit")

    # heavy and stream on 16-bit keys (float16 .npy, bfloat16 .safetensors): the float32 file's output
    # byte for byte, and every entry >= eps of float64 attention of the rounded keys found.
    keys_h = (rng.standard_normal((3000, 16)) * np.logspace(0, -1.5, 16)).astype(np.float32)
    keys_h[::97] *= 40  # a few keys that dominate some queries
    queries_h = np.concatenate([rng.standard_normal((150, 16)), keys_h[::60] * 3]).astype(np.float32)
    np.save(p("Qh.npy"), queries_h)
    np.save(p("Kh16.npy"), keys_h.astype(np.float16))
    np.save(p("Kh16_32.npy"), keys_h.astype(np.float16).astype(np.float32))
    write_safetensors(p("kh.safetensors"), {"k": ("BF16", to_bf16_bits(keys_h))})
    np.save(p("Khb_32.npy"), from_bf16_bits(to_bf16_bits(keys_h)))
    eps = 0.01
    for label, half, full, type_name in (("float16 .npy", p("Kh16.npy"), p("Kh16_32.npy"), "float16"),
                                         ("bfloat16 .safetensors", p("kh.safetensors:k"), p("Khb_32.npy"), "bfloat16")):
        a = run("heavy", "--queries", p("Qh.npy"), "--keys", half, "--eps", eps, "--verify", 40, "--output",
                p("h16.csv"), "--json")
        b = run("heavy", "--queries", p("Qh.npy"), "--keys", full, "--eps", eps, "--verify", 40, "--output",
                p("h32.csv"), "--json")
        ok = a.returncode == 0 and b.returncode == 0
        if ok:
            ja, jb = json.loads(a.stdout), json.loads(b.stdout)
            Kr = np.load(full).astype(np.float64)
            P = (queries_h.astype(np.float64) @ Kr.T) ** 2
            A = P / np.maximum(P.sum(axis=1, keepdims=True), 1e-300)
            rows = np.loadtxt(p("h16.csv"), delimiter=",", skiprows=1, ndmin=2)
            found = {(int(r[0]), int(r[1])) for r in rows}
            strong = {(int(i), int(j)) for i, j in zip(*np.nonzero(A >= eps * (1 + 1e-4)))}
            ok = (open(p("h16.csv"), "rb").read() == open(p("h32.csv"), "rb").read() and ja["keys_type"] == type_name
                  and jb["keys_type"] == "float32" and ja["heavy_count"] == jb["heavy_count"] > 0
                  and strong <= found and all(A[i, j] >= eps * (1 - 1e-4) for i, j in found)
                  and ja["verify"]["recall"] == 1 and ja["verify"]["precision"] == 1)
            print(f"     heavy on {label}: {ja['heavy_count']} entries, {ja['scanned_keys']} keys scanned of 3000")
        check(ok, f"heavy on {label} keys: the float32 file's entries byte for byte, recall and precision 1 "
                  "against float64 of the rounded keys")
        a = run("stream", "--keys", half, "--eps", eps, "--block", 700, "--output", p("s16.npy"), "--json")
        b = run("stream", "--keys", full, "--eps", eps, "--block", 700, "--output", p("s32.npy"))
        c = run("select", "--keys", half, "--eps", eps, "--output", p("sel16.npy"))
        ok = (a.returncode == 0 and b.returncode == 0 and c.returncode == 0
              and json.loads(a.stdout)["keys_type"] == type_name and len(np.load(p("s16.npy"))) > 0
              and json.loads(a.stdout)["keys_read"] == ("by blocks" if half.endswith(".npy") else "mapped")
              and open(p("s16.npy"), "rb").read() == open(p("s32.npy"), "rb").read() == open(p("sel16.npy"), "rb").read())
        check(ok, f"stream on {label} keys: the float32 file's universal set byte for byte, and select's, "
                  "read by blocks or mapped")
    # An F64 tensor cannot be mapped as float32: stream copies it whole and says so.
    np.save(p("Kh32.npy"), keys_h)
    write_safetensors(p("kh64.safetensors"), {"k": ("F64", keys_h.astype(np.float64))})
    a = run("stream", "--keys", p("kh64.safetensors"), "--eps", eps, "--block", 700, "--output", p("s64.npy"), "--json")
    b = run("stream", "--keys", p("Kh32.npy"), "--eps", eps, "--block", 700, "--output", p("s32f.npy"))
    ok = (a.returncode == 0 and b.returncode == 0 and json.loads(a.stdout)["keys_read"] == "copied whole"
          and "all 3000 keys were copied into memory as float32" in a.stderr
          and open(p("s64.npy"), "rb").read() == open(p("s32f.npy"), "rb").read())
    check(ok, "stream on an F64 .safetensors tensor: the float32 file's universal set, with a warning that "
              "the keys were copied whole")
    for label, half, full, type_name in (("float16 .npy", p("Kh16.npy"), p("Kh16_32.npy"), "float16"),
                                         ("bfloat16 .safetensors", p("kh.safetensors:k"), p("Khb_32.npy"), "bfloat16")):
        a = run("heavy", "--queries", p("Qh.npy"), "--keys", half, "--eps", eps, "--p", 3, "--verify", 40,
                "--output", p("p16.csv"), "--json")
        b = run("heavy", "--queries", p("Qh.npy"), "--keys", full, "--eps", eps, "--p", 3, "--verify", 40,
                "--output", p("p32.csv"), "--json")
        ok = a.returncode == 0 and b.returncode == 0
        if ok:
            ja, jb = json.loads(a.stdout), json.loads(b.stdout)
            ok = (open(p("p16.csv"), "rb").read() == open(p("p32.csv"), "rb").read() and ja["keys_type"] == type_name
                  and ja["heavy_count"] == jb["heavy_count"] > 0 and ja["verify"] == {**jb["verify"],
                                                                                        "seconds": ja["verify"]["seconds"]}
                  and ja["verify"]["recall"] == 1)
        check(ok, f"heavy --p 3 on {label} keys, read in 16 bits: the float32 file's entries byte for byte and its "
                  "--verify counts, recall 1")
    bad = keys_h.astype(np.float16)
    bad[1234, 5] = np.inf
    np.save(p("Kinf16.npy"), bad)
    write_safetensors(p("knan.safetensors"), {"k": ("BF16", np.where(np.arange(3000)[:, None] == 77, 0x7FC1,
                                                                      to_bf16_bits(keys_h)).astype(np.uint16))})
    for spec, row in ((p("Kinf16.npy"), 1234), (p("knan.safetensors"), 77)):
        want = f"keys: row {row} holds a NaN or an infinity"
        for args in (("heavy", "--queries", p("Qh.npy"), "--output", p("never.csv")),
                     ("stream", "--block", 500, "--output", p("never.npy"))):
            r = run(*args, "--keys", spec, "--eps", eps)
            check(r.returncode == 3 and want in r.stderr and not os.path.exists(p("never.csv"))
                  and not os.path.exists(p("never.npy")), f"{args[0]} on {os.path.basename(spec)}: refused, naming row {row}")

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
        check(0 < peak_mib < sixteen_mib + 48,
              "attend on 64 MiB of float16 keys and values peaks below 16-bit inputs + 48 MiB (a float32 copy adds 128)")
    else:
        check(r.returncode == 0, "attend on 64 MiB of float16 keys and values runs (peak RSS not checked: sanitizers)")

    # Peak RSS of sketched scores: 2^17 float16 keys of width 256 (64 MiB; a float32 copy would add
    # 128 MiB; the sketch itself, 9,899 x 256 doubles, takes 19 MiB a copy).
    np.save(p("Kap_big.npy"), rng.standard_normal((1 << 17, 256)).astype(np.float16))
    r = run("scores", "--keys", p("Kap_big.npy"), "--approx", 0.5, "--output", p("apb.npy"), "--json")
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    sketched = j.get("per_head", [{}])[0].get("method") == "sketched"
    peak_mib = j["peak_rss_bytes"] / 2**20 if j else float("inf")
    print(f"     scores --approx peak RSS {peak_mib:.0f} MiB; keys: 64 MiB in float16, 128 MiB in float32")
    if CHECK_RSS:
        check(sketched and 0 < peak_mib < 64 + 112,
              "scores --approx on 64 MiB of float16 keys sketches and peaks below 16-bit keys + 112 MiB "
              "(a float32 copy adds 128)")
    else:
        check(sketched, "scores --approx on 64 MiB of float16 keys sketches (peak RSS not checked: sanitizers)")

    # Peak RSS of heavy --p 1 (Lewis weights, sampled normaliser): 2^18 float16 keys of width 64 (32 MiB;
    # a float32 copy would add 64 MiB), every 4096th 50 times longer, queried by 100 of those and 100
    # random rows, so that the search scans keys and finds entries. (Measured: 89 MiB; with a copy it
    # would be about 150.)
    keys_pw = rng.standard_normal((1 << 18, 64)).astype(np.float32)
    keys_pw[::4096] *= 50
    np.save(p("Kpw.npy"), keys_pw.astype(np.float16))
    np.save(p("Qpw.npy"), np.concatenate([rng.standard_normal((100, 64)), keys_pw[::4096][:100]]).astype(np.float32))
    r = run("heavy", "--queries", p("Qpw.npy"), "--keys", p("Kpw.npy"), "--eps", 0.001, "--p", 1, "--delta", 0.3,
            "--output", p("pw.csv"), "--json")
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    found = j.get("keys_type") == "float16" and j.get("heavy_count", 0) > 0 and j.get("scanned_keys", 0) > 0
    peak_mib = j["peak_rss_bytes"] / 2**20 if j else float("inf")
    print(f"     heavy --p 1 peak RSS {peak_mib:.0f} MiB; keys: 32 MiB in float16, 64 MiB in float32")
    if CHECK_RSS:
        check(found and 0 < peak_mib < 32 + 80,
              "heavy --p 1 on 32 MiB of float16 keys finds entries and peaks below 16-bit keys + 80 MiB "
              "(a float32 copy adds 64)")
    else:
        check(found, "heavy --p 1 on 32 MiB of float16 keys finds entries (peak RSS not checked: sanitizers)")

    cli_helpers.finish()


if __name__ == "__main__":
    main()
