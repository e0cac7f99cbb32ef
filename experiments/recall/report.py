"""Writes results.md and the PNG plots of the recall study from the JSON in results/runs/.

Every number comes from those files; the only sentences are the ones the numbers fill in.
"""
from __future__ import annotations

import json
import os
import platform
from collections import defaultdict
from typing import Dict, List

import numpy as np

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ORDER = ["oracle", "leverage", "ridge", "lewis", "sketched-leverage", "key-norm", "snapkv", "h2o", "streaming",
         "random"]


def load(runs: str) -> Dict[str, Dict]:
    out = {}
    for f in sorted(os.listdir(runs)):
        if f.endswith(".json"):
            with open(os.path.join(runs, f)) as h:
                out[f[:-5]] = json.load(h)
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def stats(values: List[float]) -> str:
    if not values:
        return "–"
    v = np.array(values) * 100
    return f"{v.mean():.1f} ± {v.std():.1f}" if len(v) > 1 else f"{v[0]:.1f}"


def write(runs: str, results: str, ratios) -> None:
    data = load(runs)
    evals = {k: v for k, v in data.items() if not k.endswith(".train")}
    trains = {k[:-6]: v for k, v in data.items() if k.endswith(".train")}
    lines = ["# MQAR recall under KV-cache presses", "",
             f"Written by `experiments/recall/run.py` from {len(evals)} evaluated and {len(trains)} trained runs "
             f"in `results/runs/`; CPU: {cpu_model()}.", ""]

    # Training: recall at full cache.
    lines += ["## Training (recall on held-out sequences at full cache)", "",
              "| model | seed | stages (context:pairs:queries:steps:batch) | recall by context | minutes |",
              "|---|---|---|---|---|"]
    for name, t in sorted(trains.items()):
        a, f = t["final"]["args"], t["final"]
        recall = ", ".join(f"{c}: {100 * r:.2f}%" for c, r in f["recall"].items())
        sequences = ", ".join(f"{c}: {n}" for c, n in f["held_out_sequences"].items())
        lines.append(f"| {a['attention']} | {a['seed']} | {a['stages']} | {recall} (held-out sequences {sequences}) | "
                     f"{f['seconds'] / 60:.1f} |")
    lines.append("")

    # Accuracy tables: attention × context → press → ratio → [recall per seed].
    table = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    kept = defaultdict(lambda: defaultdict(list))
    depth = defaultdict(lambda: defaultdict(lambda: np.zeros((3, 8))))
    for name, e in evals.items():
        a = e["run"]
        key = (a["attention"], a["context"])
        for row in e["rows"]:
            table[key][row["press"]][row["ratio"]].append(row["recall"])
            if row["press"].startswith("threshold:") or row["press"] == "full":
                kept[key][row["press"]].append(row["kept_share"])
            if row["ratio"] == 0.875:
                d = row["depth"]
                depth[key][row["press"]] += np.array([d["queries"], d["answered"], d["survived"]])
    for key in sorted(table, key=lambda k: (k[1], k[0] != "softmax", k[0])):
        attention, context = key
        presses = [p for p in ORDER if p in table[key]]
        seeds_seen = len(table[key]["full"][0.0])
        served = ("" if attention == "softmax" else
                  " The query tokens attend with softmax over the kept keys (\"full\": over every context key); "
                  "the model's recall with its own attention is in the training table.")
        lines += [f"## {attention} model, context {context}: recall (%) against compression ratio", "",
                  f"Mean ± standard deviation over {seeds_seen} seed(s); full cache: "
                  f"{stats(table[key]['full'][0.0])}. Each head keeps round((1 − ratio) · {context}) context keys."
                  + served, "",
                  "| press | " + " | ".join(f"{r}" for r in ratios) + " |", "|---" * (len(ratios) + 1) + "|"]
        for p in presses:
            lines.append(f"| {p} | " + " | ".join(stats(table[key][p].get(r, [])) for r in ratios) + " |")
        thresholds = sorted((p for p in table[key] if p.startswith("threshold:")), key=lambda p: float(p[10:]))
        if thresholds:
            lines += ["", "Leverage threshold sets {τ ≥ ε} (their own budget per head):", "",
                      "| ε | kept share (%) | recall (%) |", "|---|---|---|"]
            for p in thresholds:
                lines.append(f"| {p[10:]} | {stats(kept[key][p])} | {stats(table[key][p][0.0])} |")
        lines += ["", f"Depth of the asked pair against survival of its value token (in the first layer, any head) "
                      f"and recall, ratio 0.875, all seeds pooled ({context} context tokens in 8 buckets):", "",
                  "| press | " + " | ".join(f"{i}/8–{i + 1}/8" for i in range(8)) + " |", "|---" * 9 + "|"]
        for p in presses:
            q, ans, surv = depth[key][p]
            cells = [f"{100 * surv[i] / q[i]:.0f} / {100 * ans[i] / q[i]:.0f}" if q[i] else "–" for i in range(8)]
            lines.append(f"| {p} | " + " | ".join(cells) + " |")
        lines += ["", "(cells: survived % / answered %)", ""]
        ranks = [e["value_key_ranks"] for e in evals.values()
                 if (e["run"]["attention"], e["run"]["context"]) == key and "value_key_ranks" in e]
        if ranks:
            presses_ranked = list(ranks[0]["0"])
            lines += [f"Where the value tokens' keys rank among the {context} context keys at full cache: the mean "
                      f"share of context keys scoring below them (1: first, 0.5: a random key's place), over "
                      f"{len(ranks)} run(s):", "",
                      "| layer | " + " | ".join(presses_ranked) + " |", "|---" * (len(presses_ranked) + 1) + "|"]
            for layer in ranks[0]:
                lines.append(f"| {layer} | " + " | ".join(
                    f"{np.mean([r[layer][p] for r in ranks]):.2f}" for p in presses_ranked) + " |")
            lines.append("")

    # Plots.
    contexts = sorted({k[1] for k in table})
    if contexts:
        fig, axes = plt.subplots(1, len(contexts), figsize=(6 * len(contexts), 4.5), squeeze=False)
        for ax, context in zip(axes[0], contexts):
            soft = ("softmax", context)
            for p in ORDER:
                if p in table.get(soft, {}):
                    ys = [np.mean(table[soft][p][r]) * 100 if table[soft][p].get(r) else np.nan for r in ratios]
                    ax.plot(ratios, ys, marker="o", label=p, linestyle="--" if p == "oracle" else "-")
            for key in table:
                if key[1] == context and key[0] != "softmax" and "leverage" in table[key]:
                    ys = [np.mean(table[key]["leverage"][r]) * 100 for r in ratios]
                    ax.plot(ratios, ys, marker="s", color="black", linewidth=2, label=f"{key[0]}-trained + leverage")
            ax.set_title(f"softmax model, context {context}")
            ax.set_xlabel("compression ratio")
            ax.set_ylabel("recall (%)")
            ax.set_ylim(-2, 102)
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=7, loc="lower left")
        fig.tight_layout()
        fig.savefig(os.path.join(results, "recall_vs_ratio.png"), dpi=110)
        plt.close(fig)

        fig, axes = plt.subplots(1, len(contexts), figsize=(6 * len(contexts), 4.5), squeeze=False)
        for ax, context in zip(axes[0], contexts):
            soft = ("softmax", context)
            for p in ORDER:
                if p in depth.get(soft, {}):
                    q, _, surv = depth[soft][p]
                    ax.plot((np.arange(8) + 0.5) / 8, np.where(q > 0, surv / np.maximum(q, 1), np.nan) * 100,
                            marker="o", label=p)
            ax.set_title(f"softmax model, context {context}, ratio 0.875")
            ax.set_xlabel("depth of the asked pair (0: start of the context)")
            ax.set_ylabel("value token kept (%)")
            ax.set_ylim(-2, 102)
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(results, "survival_vs_depth.png"), dpi=110)
        plt.close(fig)
        lines += ["![recall against ratio](recall_vs_ratio.png)", "", "![survival against depth](survival_vs_depth.png)",
                  ""]

    tmp = os.path.join(results, "results.md.tmp")
    with open(tmp, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmp, os.path.join(results, "results.md"))
