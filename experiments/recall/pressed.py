"""Recall of a trained RecallModel when every layer's context cache is pressed to a budget.

    evaluate(model, config, seed, sequences, press, ratio) -> dict

press is a name of levattn.PRESSES, "oracle" (each query keeps its own top keys: the ceiling at
equal budget), "threshold:EPS" (the leverage universal set {τ ≥ EPS}: its own budget per head) or
"full" (no press). ratio is the compression ratio: each head keeps round((1 − ratio)·context) keys
(at least one). The result holds the recall (fraction of queries answered with their value), the
mean share of context keys kept, and per query its depth, whether it was answered, and whether the
value token of its pair survived in the first layer's cache of at least one head (the layer where
this model reads the pair: value_key_ranks shows the value tokens' keys standing out there, and at
a random key's place in the second layer).
"""
from __future__ import annotations

import math
from typing import Dict, List

import numpy as np
import torch

import levattn
from model import RecallModel
from mqar import IGNORE, MQARConfig, batch

HELD_OUT = 2_000_003  # a stream neither training nor the training script's held-out set uses
CHUNK = 32            # sequences per forward pass


def budget_of(context: int, ratio: float) -> int:
    """round((1 − ratio)·context), halves away from zero as `levattn press --ratio`; at least 1."""
    return max(1, int(math.floor((1.0 - ratio) * context + 0.5)))


class PressCall:
    """The press callable of RecallModel.forward_pressed; keeps each layer's kept masks and, with
    record_mass, each query's softmax mass over the context that the kept keys hold, beside the
    mass the oracle's keys at the same budget hold on the same queries and keys."""

    def __init__(self, press: str, ratio: float, threads: int = 1, record_mass: bool = False):
        self.press, self.ratio, self.threads, self.record_mass = press, ratio, threads, record_mass
        self.kept: List[torch.Tensor] = []         # per layer: (B, H, n) or (B, H, m, n) bool
        self.mass: List[torch.Tensor] = []         # per layer: (B, H, m) float64
        self.oracle_mass: List[torch.Tensor] = []  # per layer: (B, H, m) float64

    def __call__(self, layer: int, q_context: torch.Tensor, k_context: torch.Tensor,
                 q_queries: torch.Tensor) -> torch.Tensor:
        B, H, n, _ = k_context.shape
        budget = budget_of(n, self.ratio)
        if self.press == "full":
            mask = torch.ones(B, H, n, dtype=torch.bool)
        elif self.press == "oracle":
            top = levattn.oracle_top_k(q_queries, k_context, budget, threads=self.threads)
            mask = torch.zeros(B, H, q_queries.shape[2], n, dtype=torch.bool)
            mask.scatter_(3, top, True)
        elif self.press.startswith("threshold:"):
            eps = float(self.press.split(":", 1)[1])
            mask = torch.zeros(B, H, n, dtype=torch.bool)
            for b in range(B):
                for h in range(H):
                    mask[b, h, torch.as_tensor(levattn.universal_set(k_context[b, h], eps=eps).indices)] = True
        else:
            kept, _ = levattn.press(self.press, k_context, budget, q=q_context, threads=self.threads)
            mask = torch.zeros(B, H, n, dtype=torch.bool)
            mask.scatter_(2, kept, True)
        self.kept.append(mask)
        if self.record_mass:
            logits = q_queries.double() @ k_context.double().transpose(2, 3) / np.sqrt(q_queries.shape[3])
            weights = logits.softmax(dim=3)
            full = mask if mask.dim() == 4 else mask[:, :, None, :]
            self.mass.append((weights * full).sum(dim=3))
            top = levattn.oracle_top_k(q_queries, k_context, budget, threads=self.threads)
            self.oracle_mass.append(weights.gather(3, top).sum(dim=3))
        return mask


def evaluate(model: RecallModel, config: MQARConfig, seed: int, sequences: int, press: str,
             ratio: float, threads: int = 1) -> Dict:
    model.eval()
    answered, depth, survived, kept_share = [], [], [], []
    for start in range(0, sequences, CHUNK):
        tokens, labels, where = batch(config, seed + HELD_OUT, start, min(CHUNK, sequences - start))
        call = PressCall(press, ratio, threads)
        logits = model.forward_pressed(torch.from_numpy(tokens), config.context, call)
        labels_q = torch.from_numpy(labels[:, config.context:])
        asked = labels_q != IGNORE
        right = logits.argmax(dim=2) == labels_q
        answered.append(right[asked].reshape(len(tokens), -1).numpy())
        depth.append(where)
        first = call.kept[0]
        value_pos = np.rint(where * config.context).astype(np.int64)  # value token positions
        if first.dim() == 3:  # one set per head: kept in any head
            alive = first.any(dim=1).numpy()  # (B, n)
            survived.append(np.take_along_axis(alive, value_pos, axis=1))
        else:  # per query (oracle): the query's own set, in any head
            rows = torch.arange(config.queries) * 2  # query keys sit at even offsets of the query part
            alive = first[:, :, rows, :].any(dim=1).numpy()  # (B, queries, n)
            survived.append(np.take_along_axis(alive, value_pos[:, :, None], axis=2)[:, :, 0])
        kept_share.append(float(torch.stack([m.float().mean() for m in call.kept]).mean()))
    answered_all = np.concatenate(answered)
    return {"press": press, "ratio": ratio, "recall": float(answered_all.mean()),
            "kept_share": float(np.mean(kept_share)), "answered": answered_all, "depth": np.concatenate(depth),
            "survived": np.concatenate(survived)}


RANKED = ("leverage", "ridge", "key-norm", "h2o", "snapkv")


@torch.no_grad()
def value_key_ranks(model: RecallModel, config: MQARConfig, seed: int, sequences: int,
                    threads: int = 1) -> Dict[str, Dict[str, float]]:
    """Where the keys of the value tokens rank among the context keys, per layer and press, at full
    cache: the mean, over value tokens, heads and sequences, of the fraction of the other context
    keys that score below the value token's key, ties counting half (1: above every other key,
    0.5: a random key's place)."""
    recorded = []

    def record(layer, q_context, k_context, q_queries):
        recorded.append((q_context, k_context))
        return torch.ones(k_context.shape[:3], dtype=torch.bool)

    tokens, _, where = batch(config, seed + HELD_OUT, 0, sequences)
    model.forward_pressed(torch.from_numpy(tokens), config.context, record)
    n = config.context
    value_pos = np.rint(where * n).astype(np.int64)  # (B, queries)
    out = {}
    for layer, (q_context, k_context) in enumerate(recorded):
        out[str(layer)] = {}
        for press in RANKED:
            scores = levattn.press(press, k_context, 1, q=q_context, threads=threads).scores.numpy()  # (B, H, n)
            greater = (scores[:, :, :, None] > scores[:, :, None, :]).sum(axis=3)
            ties = (scores[:, :, :, None] == scores[:, :, None, :]).sum(axis=3) - 1
            below = (greater + 0.5 * ties) / (n - 1)  # (B, H, n)
            picked = np.take_along_axis(below, value_pos[:, None, :].repeat(below.shape[1], axis=1), axis=2)
            out[str(layer)][press] = float(picked.mean())
    return out


def depth_table(result: Dict, buckets: int = 8) -> Dict:
    """Per depth bucket (equal shares of the context, start to end): queries, answered, survived."""
    which = np.minimum((result["depth"] * buckets).astype(int), buckets - 1).ravel()
    answered, survived = result["answered"].ravel(), result["survived"].ravel()
    return {"queries": np.bincount(which, minlength=buckets).tolist(),
            "answered": np.bincount(which, weights=answered, minlength=buckets).astype(int).tolist(),
            "survived": np.bincount(which, weights=survived, minlength=buckets).astype(int).tolist()}


def main(argv=None) -> None:
    """Evaluates one trained run (train.py's --out directory) with every press and ratio and writes
    one JSON: per (press, ratio) the recall, the kept share and the depth table."""
    import argparse
    import json
    import os
    import time

    from train import build, contexts_of, stages_of

    p = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="train.py's --out directory")
    p.add_argument("--out", required=True, help="the JSON to write")
    p.add_argument("--context", type=int, required=True, help="evaluate on the training stage of this context")
    p.add_argument("--presses", default=",".join(levattn.PRESSES + ("oracle",)))
    p.add_argument("--thresholds", default="", help="leverage threshold presses: comma-separated ε")
    p.add_argument("--ratios", default="0.5,0.75,0.875,0.9375")
    p.add_argument("--sequences", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    ckpt = torch.load(os.path.join(a.run, "checkpoint.pt"))
    args = argparse.Namespace(threads=a.threads, **ckpt["args"])
    model = build(args)
    model.load_state_dict(ckpt["model"])
    config = contexts_of(stages_of(args)).get(a.context)
    if config is None:
        raise SystemExit(f"{a.run} was not trained on context {a.context}")
    jobs = [("full", 0.0)] + [(press, float(r)) for press in a.presses.split(",") for r in a.ratios.split(",")]
    jobs += [(f"threshold:{eps}", 0.0) for eps in a.thresholds.split(",") if eps]
    rows = []
    for press, ratio in jobs:
        start = time.time()
        result = evaluate(model, config, args.seed, a.sequences, press, ratio, a.threads)
        rows.append({"press": press, "ratio": ratio, "recall": result["recall"], "kept_share": result["kept_share"],
                     "depth": depth_table(result), "seconds": time.time() - start})
        print(f"{press:>18} ratio {ratio:<6} recall {result['recall']:.4f} kept {result['kept_share']:.4f}",
              flush=True)
    ranks = value_key_ranks(model, config, args.seed, min(a.sequences, 16), a.threads)
    report = {"run": {**ckpt["args"], "context": config.context, "pairs": config.pairs}, "sequences": a.sequences,
              "value_key_ranks": ranks, "queries_per_sequence": config.queries, "rows": rows}
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
