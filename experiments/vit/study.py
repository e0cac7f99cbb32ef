#!/usr/bin/python3
"""The LevAttention ViT study on Fashion-MNIST: trains and evaluates with levattn-vit, then writes
results.md (tables) and PNG plots into experiments/vit/results/.

    /usr/bin/python3 experiments/vit/study.py [--vit build/release/torch/levattn-vit] [--report-only]

Runs are done in order of importance and each result is kept as JSON under results/runs/, so an
interrupted study restarts where it stopped (finished runs are skipped) and the report can be
redrawn at any time from whatever has finished (--report-only). Checkpoints go to
$LEVATTN_STUDY_DIR (default ~/.cache/levattn/vit-study), not into the repository.

Grid (patch 4: 50 tokens; k = 8 keeps 16% of the keys, the paper's 32/197):
  1. the softmax-trained model evaluated with each rule at each k (plug-in, no training);
  2. models trained from scratch with each rule and k, without and with warm start (20% softmax);
  3. per layer, the fraction of heavy softmax entries (A >= 0.01, 0.05) each rule's kept keys hold;
  then patch 2 (197 tokens, the paper's length): softmax and leverage top-32;
  then more seeds of the patch-4 softmax and leverage top-8 models (mean and sd over seeds).
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RESULTS = os.path.join(HERE, "results")
RUNS = os.path.join(RESULTS, "runs")
RULES = ["leverage", "row-norm", "random"]
KS = [4, 8, 16]
WARM = 0.2
# Model and schedule, sized so that the whole study fits in about two hours on 2 shared cores.
P4 = ["--patch", "4", "--width", "48", "--depth", "3", "--heads", "4", "--mlp", "96",
      "--batch", "128", "--lr", "2e-3", "--steps", "900", "--eval-each-epoch"]
P2 = ["--patch", "2", "--width", "48", "--depth", "3", "--heads", "4", "--mlp", "96",
      "--batch", "128", "--lr", "2e-3", "--steps", "600"]
THREADS = ["--threads", "1"]


def run_json(vit, args, name):
    """Runs levattn-vit with args (adding --json), stores and returns its JSON; cached by name."""
    path = os.path.join(RUNS, name + ".json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    start = time.time()
    print(f"[{time.strftime('%H:%M:%S')}] {name}: levattn-vit {' '.join(args)}", flush=True)
    out = subprocess.run([vit, *args, "--json"], capture_output=True, text=True)
    if out.returncode:
        print(f"  failed ({out.returncode}): {out.stderr.strip()}", flush=True)
        return None
    result = json.loads(out.stdout)
    result["wall_seconds"] = time.time() - start
    result["command"] = "levattn-vit " + " ".join(args)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, path)
    print(f"  done in {result['wall_seconds']:.0f} s", flush=True)
    return result


def train(vit, store, name, shape, rule, k, warm, seed):
    args = ["train", "--checkpoint", os.path.join(store, name + ".pt"), "--rule", rule,
            "--k", str(k), "--warm-start", str(warm), "--seed", str(seed), *shape, *THREADS]
    return run_json(vit, args, "train_" + name)


def plug_in(vit, store, model, seed):
    for rule in RULES:
        for k in KS:
            run_json(vit, ["eval", "--checkpoint", os.path.join(store, model + ".pt"), "--rule", rule,
                           "--k", str(k), *THREADS], f"eval_{model}_{rule}_k{k}")


def study(vit, store):
    """Two single-threaded workers (one thread each is far cheaper than one run on two threads when
    the machine is shared). Worker 1 trains the softmax model, evaluates it with every rule (plug-in)
    and measures coverage; both then take the remaining trainings in order of importance."""
    def p4_name(rule, k, warm, seed):
        return f"p4_{rule}" + (f"_k{k}" if rule != "softmax" else "") + ("_warm" if warm else "") + f"_s{seed}"

    def p4(rule, k, warm, seed):
        return lambda: train(vit, store, p4_name(rule, k, warm, seed), P4, rule, k, warm, seed)

    queue = []
    for warm in (0, WARM):
        for k in (8, 4, 16):
            for rule in RULES:
                queue.append(p4(rule, k, warm, 1))
    # A model and the evaluations that need it are one task, so the other worker never waits on it.
    queue.append(lambda: (train(vit, store, "p2_softmax_s1", P2, "softmax", 0, 0, 1),
                          run_json(vit, ["eval", "--checkpoint", os.path.join(store, "p2_softmax_s1.pt"),
                                         "--rule", "leverage", "--k", "32", *THREADS],
                                   "eval_p2_softmax_s1_leverage_k32")))
    queue.append(lambda: train(vit, store, "p2_leverage_k32_s1", P2, "leverage", 32, 0, 1))
    for seed in (2, 3):
        queue.append(lambda seed=seed: (p4("softmax", 0, 0, seed)(), run_json(
            vit, ["eval", "--checkpoint", os.path.join(store, f"p4_softmax_s{seed}.pt"), "--rule", "leverage",
                  "--k", "8", *THREADS], f"eval_p4_softmax_s{seed}_leverage_k8")))
        queue.append(p4("leverage", 8, 0, seed))
    lock = threading.Lock()

    def drain():
        while True:
            with lock:
                if not queue:
                    return
                task = queue.pop(0)
            task()
            with lock:
                report()

    def first():
        soft = p4_name("softmax", 0, 0, 1)
        p4("softmax", 0, 0, 1)()
        plug_in(vit, store, soft, 1)
        run_json(vit, ["coverage", "--checkpoint", os.path.join(store, soft + ".pt"), "--k", "4,8,16",
                       "--threshold", "0.01,0.05", "--test-subset", "2000", *THREADS], "coverage_" + soft)
        with lock:
            report()
        drain()

    workers = [threading.Thread(target=first), threading.Thread(target=drain)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


# ---------------------------------------------------------------------------------------------
# Report: tables and plots from whatever results exist.

def load_runs():
    runs = {}
    if os.path.isdir(RUNS):
        for f in sorted(os.listdir(RUNS)):
            if f.endswith(".json"):
                with open(os.path.join(RUNS, f)) as fh:
                    runs[f[:-5]] = json.load(fh)
    return runs


def stats(values):
    if not values:
        return None
    m = sum(values) / len(values)
    sd = (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else None
    return m, sd, len(values)


def fmt(s, scale=100):
    if s is None:
        return "—"
    m, sd, n = s
    text = f"{scale * m:.1f}"
    if sd is not None:
        text += f" ± {scale * sd:.1f}"
    return text + (f" (n={n})" if n > 1 else "")


def seeds_of(runs, prefix, kind="train"):
    return [r for name, r in runs.items() if name.startswith(f"{kind}_{prefix}_s")]


def report():
    runs = load_runs()
    lines = ["# LevAttention ViT on Fashion-MNIST — results",
             "",
             f"Written by `experiments/vit/study.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
             "Accuracy in % on the 10,000 test images (mean ± sd over seeds where n > 1; one seed otherwise). "
             "Training time is wall-clock on a shared 2-core machine (nice 19), so it mostly measures the load.",
             ""]
    soft = seeds_of(runs, "p4_softmax")
    soft_acc = stats([r["test"]["accuracy"] for r in soft])
    if soft:
        o = soft[0]["options"]
        lines += [f"Model (patch 4, 50 tokens): width {o['model']['width']}, depth {o['model']['depth']}, "
                  f"heads {o['model']['heads']}, MLP {o['model']['mlp']}; {o['steps']} AdamW steps of "
                  f"{o['batch']} images (lr {o['lr']}, cosine); warm start = first {int(100 * WARM)}% of steps "
                  "with full softmax.", ""]
        lines += [f"**Softmax-trained model: {fmt(soft_acc)}** "
                  f"(training {sum(r['train_seconds'] for r in soft) / len(soft):.0f} s a seed).", ""]

    # (1) + (2): accuracy by rule and k.
    lines += ["## Accuracy by rule and k (patch 4)", "",
              "| rule | k | plug-in (softmax-trained) | trained | trained + warm start | "
              "trained / softmax | train s (no warm / warm) |",
              "|---|---|---|---|---|---|---|"]
    for rule in RULES:
        for k in KS:
            plug = stats([r["accuracy"] for n, r in runs.items() if n.startswith("eval_p4_softmax_s")
                          and n.endswith(f"_{rule}_k{k}")])
            tr = seeds_of(runs, f"p4_{rule}_k{k}")
            tw = seeds_of(runs, f"p4_{rule}_k{k}_warm")
            ts, ws = stats([r["test"]["accuracy"] for r in tr]), stats([r["test"]["accuracy"] for r in tw])
            ratio = f"{100 * ts[0] / soft_acc[0]:.1f}%" if ts and soft_acc else "—"
            secs = " / ".join(f"{sum(r['train_seconds'] for r in x) / len(x):.0f}" if x else "—" for x in (tr, tw))
            lines.append(f"| {rule} | {k} | {fmt(plug)} | {fmt(ts)} | {fmt(ws)} | {ratio} | {secs} |")
    lines.append("")

    # Patch 2.
    p2s, p2l = seeds_of(runs, "p2_softmax"), seeds_of(runs, "p2_leverage_k32")
    if p2s or p2l:
        a = stats([r["test"]["accuracy"] for r in p2s])
        b = stats([r["test"]["accuracy"] for r in p2l])
        plug = stats([r["accuracy"] for n, r in runs.items() if n == "eval_p2_softmax_s1_leverage_k32"])
        o = (p2s or p2l)[0]["options"]
        lines += ["## Patch 2 (197 tokens, the paper's sequence length)", "",
                  f"{o['steps']} steps of {o['batch']}, same width/depth/heads as patch 4.", "",
                  "| model | accuracy | train s |", "|---|---|---|",
                  f"| softmax | {fmt(a)} | {p2s[0]['train_seconds']:.0f} |" if p2s else "| softmax | — | — |",
                  f"| softmax, leverage top-32 plugged in | {fmt(plug)} | — |",
                  f"| trained with leverage top-32 | {fmt(b)} | {p2l[0]['train_seconds']:.0f} |" if p2l
                  else "| trained with leverage top-32 | — | — |"]
        if a and b:
            lines.append(f"\nTrained leverage top-32 / softmax: {100 * b[0] / a[0]:.1f}%.")
        lines.append("")

    # (3) coverage.
    cov = [r for n, r in runs.items() if n.startswith("coverage_")]
    if cov:
        c = cov[0]
        th = c["thresholds"]
        lines += ["## Heavy softmax entries held by each rule's kept keys (softmax-trained model, patch 4)", "",
                  f"Over {c['images']} test images, every head and query row. 'held ≥ t' = share of the entries "
                  "A[i,j] ≥ t whose key j the rule keeps; 'mass' = mean softmax mass of a row on the kept keys.", "",
                  "| layer | rule | k | " + " | ".join(f"held ≥ {t}" for t in th) + " | mass |",
                  "|---|---|---|" + "---|" * len(th) + "---|"]
        for row in c["rows"]:
            held = " | ".join(f"{100 * h / max(hv, 1):.1f}%" for h, hv in zip(row["held"], row["heavy"]))
            lines.append(f"| {row['layer']} | {row['rule']} | {row['k']} | {held} | {100 * row['mass']:.1f}% |")
        lines.append("")

    lines += ["## Commands", "", "Every run, as the script issued it:", "", "```"]
    lines += [r["command"] for r in runs.values() if "command" in r]
    lines += ["```", ""]
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "results.md"), "w") as f:
        f.write("\n".join(lines))
    plots(runs)


def plots(runs):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (apt-get install python3-matplotlib): no plots", flush=True)
        return
    # Loss curves of the seed-1 patch-4 models, one panel per rule.
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
    for ax, rule in zip(axes, RULES):
        s = runs.get("train_p4_softmax_s1")
        if s:
            ax.plot(*zip(*[(p[0], p[1]) for p in s["curve"]]), "k-", label="softmax")
        for k, color in zip(KS, ["tab:red", "tab:orange", "tab:green"]):
            for warm, style in (("", "-"), ("_warm", "--")):
                r = runs.get(f"train_p4_{rule}_k{k}{warm}_s1")
                if r:
                    ax.plot(*zip(*[(p[0], p[1]) for p in r["curve"]]), style, color=color,
                            label=f"k={k}" + (" warm" if warm else ""))
        ax.set_title(f"trained with {rule} top-k (patch 4)")
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("training loss")
    fig.tight_layout()
    fig.savefig(os.path.join(RESULTS, "loss_curves.png"), dpi=110)
    plt.close(fig)

    # Accuracy against k: plug-in and trained, per rule.
    fig, ax = plt.subplots(figsize=(7, 4.5))
    soft = runs.get("train_p4_softmax_s1")
    if soft:
        ax.axhline(100 * soft["test"]["accuracy"], color="k", label="softmax (trained)")
    for rule, color in zip(RULES, ["tab:blue", "tab:purple", "tab:gray"]):
        plug = [(k, runs[f"eval_p4_softmax_s1_{rule}_k{k}"]["accuracy"]) for k in KS
                if f"eval_p4_softmax_s1_{rule}_k{k}" in runs]
        tr = [(k, runs[f"train_p4_{rule}_k{k}_s1"]["test"]["accuracy"]) for k in KS if f"train_p4_{rule}_k{k}_s1" in runs]
        tw = [(k, runs[f"train_p4_{rule}_k{k}_warm_s1"]["test"]["accuracy"]) for k in KS
              if f"train_p4_{rule}_k{k}_warm_s1" in runs]
        for pts, style, what in ((plug, ":o", "plug-in"), (tr, "-s", "trained"), (tw, "--^", "trained+warm")):
            if pts:
                ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], style, color=color, label=f"{rule} {what}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(KS, [str(k) for k in KS])
    ax.set_xlabel("keys kept per head, k (of 50)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(RESULTS, "accuracy_vs_k.png"), dpi=110)
    plt.close(fig)

    # Coverage per layer.
    cov = [r for n, r in runs.items() if n.startswith("coverage_")]
    if cov:
        c = cov[0]
        layers = sorted({r["layer"] for r in c["rows"]})
        fig, axes = plt.subplots(1, len(c["thresholds"]), figsize=(6 * len(c["thresholds"]), 4), sharey=True)
        for ti, (ax, t) in enumerate(zip(axes, c["thresholds"])):
            for rule, color in zip(RULES, ["tab:blue", "tab:purple", "tab:gray"]):
                for k, style in zip(KS, [":", "--", "-"]):
                    rows = [r for r in c["rows"] if r["rule"] == rule and r["k"] == k]
                    ax.plot(layers, [100 * r["held"][ti] / max(r["heavy"][ti], 1) for r in rows], style,
                            marker="o", color=color, label=f"{rule} k={k}")
            ax.set_title(f"heavy entries A ≥ {t} held by the kept keys")
            ax.set_xlabel("layer")
            ax.set_xticks(layers)
        axes[0].set_ylabel("% of heavy entries")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(RESULTS, "coverage.png"), dpi=110)
        plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vit", default=os.path.join(ROOT, "build/release/torch/levattn-vit"))
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args()
    os.makedirs(RUNS, exist_ok=True)
    if a.report_only:
        report()
        return 0
    store = os.environ.get("LEVATTN_STUDY_DIR", os.path.expanduser("~/.cache/levattn/vit-study"))
    os.makedirs(store, exist_ok=True)
    subprocess.run(["bash", os.path.join(ROOT, "torch/fetch_fashion_mnist.sh"), a.vit], check=True)
    start = time.time()
    study(a.vit, store)
    report()
    print(f"study finished in {time.time() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
