#!/usr/bin/python3
"""levattn.attention from Python against the C++ benchmark of the same call and against PyTorch's
matmul–softmax–matmul on the same tensors, in one run (Debian's /usr/bin/python3, numpy, torch).

    python_attention.py LEVATTN_BENCH PYTHON_PACKAGE_DIR OUT.json [--rounds 3]

Each round runs the C++ benchmark (BM_ExactAttention at n = 4096 and 64, d = 64, one head, q = k
= v shapes, inputs from the same integer hash) in a child process, then the Python calls on
numpy arrays and on torch tensors, then PyTorch; medians are taken over every round, so the
ratios compare numbers measured side by side. Also: two Python threads calling attention with
threads=1 at once, against the same calls one after another (the GIL is released). Prints a
markdown table and writes the figures as JSON.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import numpy as np


def hashed_floats(count, seed):  # bench/bench_data.cpp's hash, bit for bit
    i = np.arange(count, dtype=np.uint64)
    h = (i * np.uint64(2654435761) + np.uint64(seed * 40503)) % np.uint64(1 << 32)
    return (2.0 * (h.astype(np.float64) / 4294967296.0) - 1.0).astype(np.float32)


def qkv(n, d):
    return [hashed_floats(n * d, s).reshape(n, d) for s in (1, 2, 3)]


def per_call_us(call, calls, repeats):
    """Median over `repeats` of the mean time per call of `calls` calls, in µs."""
    call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            call()
        times.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(times)


def cpp_times(bench):
    out = subprocess.run([bench, "--benchmark_filter=^BM_ExactAttention/(4096/64|64/64)/real_time$",
                          "--benchmark_repetitions=5", "--benchmark_report_aggregates_only=true",
                          "--benchmark_format=json"], check=True, capture_output=True, text=True).stdout
    scale = {"us": 1.0, "ms": 1e3, "ns": 1e-3}
    return {b["run_name"].split("/")[1]: b["real_time"] * scale[b["time_unit"]]
            for b in json.loads(out)["benchmarks"] if b.get("aggregate_name") == "median"}


def concurrent_seconds(levattn, inputs, calls):
    """Wall time of two threads, each making `calls` calls with threads=1 on its own inputs."""
    def work(q, k, v):
        for _ in range(calls):
            levattn.attention(q, k, v, threads=1)
    threads = [threading.Thread(target=work, args=x) for x in inputs]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bench")
    ap.add_argument("package")
    ap.add_argument("out")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, args.package)
    import levattn
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    big, small = qkv(4096, 64), qkv(64, 64)
    big_t = [torch.from_numpy(x) for x in big]
    scale = 1.0 / 8.0

    def torch_attention():
        with torch.no_grad():
            return torch.softmax((big_t[0] @ big_t[1].T) * scale, dim=-1) @ big_t[2]

    pairs = [qkv(4096, 64), [x[::-1].copy() for x in qkv(4096, 64)]]
    series = {k: [] for k in ("cpp_4096", "cpp_64", "py_4096", "py_torch_4096", "py_64", "torch_4096",
                              "two_threads", "sequential")}
    for _ in range(args.rounds):
        cpp = cpp_times(args.bench)
        series["cpp_4096"].append(cpp["4096"])
        series["cpp_64"].append(cpp["64"])
        series["py_4096"].append(per_call_us(lambda: levattn.attention(*big), 1, 9))
        series["py_torch_4096"].append(per_call_us(lambda: levattn.attention(*big_t), 1, 9))
        series["py_64"].append(per_call_us(lambda: levattn.attention(*small), 2000, 5))
        series["torch_4096"].append(per_call_us(torch_attention, 1, 9))
        series["two_threads"].append(concurrent_seconds(levattn, pairs, 5))
        t0 = time.perf_counter()
        for q, k, v in pairs:
            for _ in range(5):
                levattn.attention(q, k, v, threads=1)
        series["sequential"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in series.items()}
    result = {"levattn_version": levattn.__version__, "torch_version": torch.__version__, "cpus": os.cpu_count(),
              "rounds": args.rounds, "median": med, "series": series}
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, args.out)

    print(f"\nPython package: levattn {levattn.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"medians over {args.rounds} rounds (each: C++ benchmark, then Python, then PyTorch)\n")
    print("| exact attention, one head, softmax, d = 64 | median | against |\n| --- | ---: | ---: |")
    print(f"| C++ `BM_ExactAttention/4096/64` | {med['cpp_4096'] / 1e3:.2f} ms | |")
    print(f"| `levattn.attention`, numpy, n = 4096 | {med['py_4096'] / 1e3:.2f} ms | "
          f"{med['py_4096'] / med['cpp_4096']:.3f}× C++ |")
    print(f"| `levattn.attention`, torch tensors, n = 4096 | {med['py_torch_4096'] / 1e3:.2f} ms | "
          f"{med['py_torch_4096'] / med['cpp_4096']:.3f}× C++ |")
    print(f"| PyTorch matmul–softmax–matmul, n = 4096 | {med['torch_4096'] / 1e3:.2f} ms | "
          f"levattn {med['torch_4096'] / med['py_torch_4096']:.2f}× faster |")
    print(f"| C++ `BM_ExactAttention/64/64` | {med['cpp_64']:.1f} µs | |")
    print(f"| `levattn.attention`, numpy, n = 64 | {med['py_64']:.1f} µs | "
          f"overhead {med['py_64'] - med['cpp_64']:.1f} µs a call |")
    print(f"| two Python threads × 5 calls, threads=1 each, n = 4096 | {med['two_threads']:.2f} s | "
          f"{med['sequential'] / med['two_threads']:.2f}× faster than the 10 calls in sequence "
          f"({med['sequential']:.2f} s) |")


if __name__ == "__main__":
    main()
