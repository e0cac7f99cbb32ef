#!/usr/bin/python3
"""PyTorch's CPU attention (matmul–softmax–matmul, Debian's python3-torch) on the inputs that
bench_attention.cpp uses, bit for bit (the same integer hash): the forward alone, and forward plus
backward by autograd (the gradient dO from the hash's seed 4, as BM_AttentionBackward), and the
forward on the same inputs rounded to bfloat16 (as BM_ExactAttention16 rounds them), computed in
bfloat16 by torch. Writes medians as JSON.
Usage: torch_attention.py OUT.json [--threads 2] [--repeats 9]"""
import argparse
import json
import statistics
import time

import numpy as np
import torch


def hashed_floats(count, seed):
    i = np.arange(count, dtype=np.uint64)
    h = (i * np.uint64(2654435761) + np.uint64(seed * 40503)) % np.uint64(1 << 32)
    return (2.0 * (h.astype(np.float64) / 4294967296.0) - 1.0).astype(np.float32)


def median_ms(step, repeats):
    """Median wall time of step() in ms over `repeats` calls, after one warm-up call."""
    step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {"torch_version": torch.__version__, "threads": args.threads,
               "has_sdpa": hasattr(torch.nn.functional, "scaled_dot_product_attention"),
               "median_ms": {}, "fwd_bwd_median_ms": {}, "bf16_median_ms": {}}
    for n, d in ((4096, 64), (4096, 128)):
        q, k, v = (torch.from_numpy(hashed_floats(n * d, s).reshape(n, d)) for s in (1, 2, 3))
        scale = 1.0 / d ** 0.5

        def attend():
            return torch.softmax((q @ k.T) * scale, dim=-1) @ v

        with torch.no_grad():
            results["median_ms"][f"{n}/{d}"] = median_ms(attend, args.repeats)

        qb, kb, vb = (x.to(torch.bfloat16) for x in (q, k, v))

        def attend_bf16():
            return torch.softmax((qb @ kb.T) * scale, dim=-1) @ vb

        with torch.no_grad():
            results["bf16_median_ms"][f"{n}/{d}"] = median_ms(attend_bf16, args.repeats)

        dout = torch.from_numpy(hashed_floats(n * d, 4).reshape(n, d))
        qg, kg, vg = (x.clone().requires_grad_() for x in (q, k, v))

        def train_step():
            out = torch.softmax((qg @ kg.T) * scale, dim=-1) @ vg
            return torch.autograd.grad(out, (qg, kg, vg), dout)

        results["fwd_bwd_median_ms"][f"{n}/{d}"] = median_ms(train_step, args.repeats)
    json.dump(results, open(args.out, "w"), indent=1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
