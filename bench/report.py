#!/usr/bin/python3
"""Turns a Google Benchmark JSON file (run with repetitions) into the markdown tables of
BENCHMARKS.md: medians, and the ratios the core issue's acceptance asks for, all from one run."""
import json
import sys

run = json.load(open(sys.argv[1]))
torch_run = json.load(open(sys.argv[2])) if len(sys.argv) > 2 else None
medians = [b for b in run["benchmarks"] if b.get("aggregate_name") == "median"]
if not medians:  # a run without repetitions
    medians = run["benchmarks"]
medians += [b for b in run["benchmarks"] if "iterations:1" in b["run_name"] and b.get("run_type") == "iteration"
            and not any(m["run_name"] == b["run_name"] for m in medians)]
median = dict(sorted((b["run_name"], b["real_time"] * {"us": 1e-3, "ms": 1.0}.get(b.get("time_unit", "ms"), 1.0))
                     for b in medians))
counters = {b["run_name"]: b for b in medians}
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

exact = {n: t for n, t in median.items() if n.startswith("BM_ExactAttention/")}
if exact:
    print("\n| exact attention, one head, n_q = n_k, f32, softmax | median (ms) | GFLOP/s | PyTorch (ms) | PyTorch / levattn |"
          "\n| --- | ---: | ---: | ---: | ---: |")
    for name, t in exact.items():
        n, d = name.split("/")[1:3]
        flops = counters[name].get("FLOP", 0) / 1e9
        tt = torch_run["median_ms"].get(f"{n}/{d}") if torch_run else None
        print(f"| n = {n}, d = {d} | {t:.1f} | {flops:.0f} | " + (f"{tt:.1f} | {tt / t:.2f}× |" if tt else "– | – |"))
    if torch_run:
        sdpa = "has" if torch_run.get("has_sdpa") else "has no"
        print(f"\nPyTorch {torch_run['torch_version']} with {torch_run['threads']} threads, matmul–softmax–matmul "
              f"(this torch {sdpa} scaled_dot_product_attention), median of its own repeats, on bit-identical inputs.")
half = {n: t for n, t in median.items() if n.startswith("BM_ExactAttention16/")}
if half:
    print("\n| exact attention, one head, n_q = n_k, 16-bit inputs, softmax | median (ms) | GFLOP/s |"
          " f32 inputs (ms) | PyTorch bf16 (ms) |\n| --- | ---: | ---: | ---: | ---: |")
    for name, t in half.items():
        n, d, kind, arith = name.split("/")[1:5]
        flops = counters[name].get("FLOP", 0) / 1e9
        f32 = median.get(f"BM_ExactAttention/{n}/{d}/real_time")
        tt = torch_run.get("bf16_median_ms", {}).get(f"{n}/{d}") if torch_run and kind == "2" else None
        label = f"n = {n}, d = {d}, {'float16' if kind == '1' else 'bfloat16'}, {'bf16' if arith == '1' else 'f32'} products"
        print(f"| {label} | {t:.1f} | {flops:.0f} | " + (f"{f32:.1f} | " if f32 else "– | ") +
              (f"{tt:.1f} |" if tt else "– |"))
decode = {n: t for n, t in median.items() if n.startswith("BM_Decode/")}
read = [counters[n]["bytes"] / 1e9 for n in median if n.startswith("BM_MemoryRead")]
if decode:
    print("\n| decode, n_q = 1, d = 128 | median (µs) | GB/s of K and V | share of measured read bandwidth |"
          "\n| --- | ---: | ---: | ---: |")
    for name, t in decode.items():
        gbs = counters[name]["bytes"] / 1e9
        print(f"| n_k = {name.split('/')[1]} | {t * 1e3:.0f} | {gbs:.1f} | " + (f"{gbs / read[0]:.0%} |" if read else "– |"))
    half_decode = {n: t for n, t in median.items() if n.startswith("BM_Decode16/")}
    if half_decode:
        print("\n| decode from a 16-bit cache, n_q = 1, d = 128 | median (µs) | GB/s of K and V |"
              " share of measured read bandwidth | time / float32 decode |\n| --- | ---: | ---: | ---: | ---: |")
    for name, t in half_decode.items():
        n_k, kind = name.split("/")[1:3]
        gbs = counters[name]["bytes"] / 1e9
        f32 = decode.get(f"BM_Decode/{n_k}/real_time")
        print(f"| n_k = {n_k}, {'float16' if kind == '1' else 'bfloat16'} | {t * 1e3:.0f} | {gbs:.1f} | " +
              (f"{gbs / read[0]:.0%} | " if read else "– | ") + (f"{t / f32:.2f}× |" if f32 else "– |"))
    if read:
        print(f"\nMeasured read bandwidth (parallel 64-bit OR over 512 MiB): {read[0]:.1f} GB/s.")
levattn_runs = {int(n.split("/")[1]): t for n, t in median.items() if n.startswith("BM_LevAttention/")}
if levattn_runs:
    print("\n| LevAttention, softmax, top-256, d = 64, n_q = n_k = n (selection included) | median (ms) |\n| --- | ---: |")
    for n, t in sorted(levattn_runs.items()):
        print(f"| n = {n} | {t:.1f} |")
    full = median.get("BM_ExactAttention/65536/64/iterations:1/real_time")
    if full and 65536 in levattn_runs:
        print(f"\nAt n = 65,536: exact {full:.0f} ms, LevAttention {levattn_runs[65536]:.1f} ms → "
              f"{full / levattn_runs[65536]:.0f}× faster (ideal n/k = 256).")
    if 1 << 14 in levattn_runs and 1 << 18 in levattn_runs:
        print(f"Growth from n = 2^14 to 2^18 (16× the keys and queries): {levattn_runs[1 << 18] / levattn_runs[1 << 14]:.1f}×.")

backward = {n: t for n, t in median.items() if n.startswith("BM_AttentionBackward/")}
if backward:
    print("\n| exact attention backward, one head, softmax, n_q = n_k | median (ms) | GFLOP/s (10·n²·d) |"
          " PyTorch autograd fwd+bwd (ms) | PyTorch / levattn |\n| --- | ---: | ---: | ---: | ---: |")
    for name, t in backward.items():
        n, d, fwd = name.split("/")[1:4]
        flops = counters[name].get("FLOP", 0) / 1e9
        tt = torch_run.get("fwd_bwd_median_ms", {}).get(f"{n}/{d}") if torch_run and fwd == "1" else None
        label = f"n = {n}, d = {d}, " + ("forward + backward" if fwd == "1" else "backward")
        print(f"| {label} | {t:.1f} | {flops:.0f} | " + (f"{tt:.1f} | {tt / t:.2f}× |" if tt else "– | – |"))
