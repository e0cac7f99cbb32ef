#!/usr/bin/python3
"""Turns a Google Benchmark JSON file (run with repetitions) into the markdown tables of
BENCHMARKS.md: medians, and the ratios the core issue's acceptance asks for, all from one run."""
import json
import sys

run = json.load(open(sys.argv[1]))
median = dict(sorted((b["run_name"], b["real_time"]) for b in run["benchmarks"] if b.get("aggregate_name") == "median"))
if not median:  # a run without repetitions
    median = dict(sorted((b["run_name"], b["real_time"]) for b in run["benchmarks"]))
ctx = run["context"]
print(f"Machine: {ctx.get('num_cpus')} CPUs at {ctx.get('mhz_per_cpu')} MHz, run {ctx.get('date')}, "
      f"threads: {ctx.get('levattn_threads', 'default (all cores)')}\n")

print("| benchmark | median (ms) |\n| --- | ---: |")
for name, t in median.items():
    print(f"| `{name}` | {t:.1f} |")

print("\n| leverage scores vs one sgemm KᵀK (same data) | ratio |\n| --- | ---: |")
for name, t in median.items():
    if name.startswith("BM_LeverageScores/"):
        shape = name.split("/", 1)[1]
        ref = median.get(f"BM_SgemmGram/{shape}")
        if ref:
            print(f"| n, d = {shape.replace('/real_time', '').replace('/min_time:1.000', '')} | {t / ref:.2f}× |")

search = {n.split("/")[1]: t for n, t in median.items() if n.startswith("BM_HeavySearch/")}
brute = {n.split("/")[1]: t for n, t in median.items() if n.startswith("BM_HeavyBruteForce/")}
print("\n| heavy entries, m = n, d = 64, ε = 0.05 | search (ms) | brute force (ms) | speed-up |\n| --- | ---: | ---: | ---: |")
for n, t in search.items():
    b = brute.get(n)
    print(f"| n = {n} | {t:.1f} | {b:.0f} | {b / t:.0f}× |" if b else f"| n = {n} | {t:.1f} | – | – |")
lev = {n.split("/")[1]: t for n, t in median.items() if n.startswith("BM_LeverageScores/") and "/64/" in n}
for label, series in [("leverage scores", lev), ("heavy search (m = n)", search)]:
    if str(1 << 17) in series and str(1 << 20) in series:
        print(f"\nGrowth of {label} from n = 2^17 to 2^20 (8× the keys): "
              f"{series[str(1 << 20)] / series[str(1 << 17)]:.2f}×")
