#!/usr/bin/python3
"""A single cold `levattn attend` (n = 4096, d = 64, float32 .npy, softmax) against the benchmark's
steady state (BM_ExactAttention/4096/64), in pairs run back to back so that both see the same
machine: each round runs the CLI once in a fresh process (its --json seconds.compute and
seconds.threads, the start of its thread team before loading, written to a file so that no reader
process competes for a core while it computes), then the benchmark (median of 3 repetitions).
Prints every pair, then the medians and the median of the per-pair ratios of compute and of
threads + compute to the steady time, and with --out writes the pairs as JSON.
Usage: cold_call.py LEVATTN LEVATTN_BENCH [--rounds 10] [--out pairs.json]"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile

import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("levattn")
    parser.add_argument("bench")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name in "QKV":
            files[name] = os.path.join(tmp, name + ".npy")
            np.save(files[name], rng.standard_normal((4096, 64)).astype(np.float32))
        summary, bench_json = os.path.join(tmp, "cli.json"), os.path.join(tmp, "bench.json")
        pairs = []
        for _ in range(args.rounds):
            with open(summary, "w") as out:
                subprocess.run([args.levattn, "attend", "--queries", files["Q"], "--keys", files["K"], "--values",
                                files["V"], "--output", os.path.join(tmp, "O.npy"), "--json"], stdout=out, check=True)
            subprocess.run([args.bench, "--benchmark_filter=BM_ExactAttention/4096/64/", "--benchmark_repetitions=3",
                            "--benchmark_report_aggregates_only=true", "--benchmark_out_format=json",
                            "--benchmark_out=" + bench_json], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=True)
            with open(summary) as f:
                seconds = json.load(f)["seconds"]
            cold, threads = seconds["compute"] * 1e3, seconds.get("threads", 0.0) * 1e3  # 0: a binary before it
            with open(bench_json) as f:
                steady = next(b["real_time"] for b in json.load(f)["benchmarks"] if b.get("aggregate_name") == "median")
            pairs.append((cold, threads, steady))
            print(f"cold {cold:.1f} ms (threads {threads:.1f} ms)  steady {steady:.1f} ms  ratio {cold / steady:.2f}",
                  flush=True)
    ratios = [c / s for c, _, s in pairs]
    with_threads = [(c + t) / s for c, t, s in pairs]
    print(f"median cold {statistics.median(c for c, _, _ in pairs):.1f} ms, median threads "
          f"{statistics.median(t for _, t, _ in pairs):.1f} ms, median steady "
          f"{statistics.median(s for _, _, s in pairs):.1f} ms, median ratio {statistics.median(ratios):.2f} "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}); with the threads' start "
          f"{statistics.median(with_threads):.2f} (min {min(with_threads):.2f}, max {max(with_threads):.2f}); "
          f"{len(pairs)} pairs")
    if args.out:
        with open(args.out, "w") as f:
            json.dump([{"cold_ms": c, "threads_ms": t, "steady_ms": s} for c, t, s in pairs], f, indent=1)


if __name__ == "__main__":
    main()
