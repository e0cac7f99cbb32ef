#!/usr/bin/python3
"""Trains a RecallModel on MQAR, checkpointed and resumable.

    /usr/bin/python3 experiments/recall/train.py --out DIR [--stages 64:8:8:600:32,256:16:16:400:32 ...]

Training runs through --stages in order, each CONTEXT:PAIRS:QUERIES:STEPS:BATCH, or several such
joined by "+" that take turns step by step for the first one's STEPS (a curriculum:
short contexts first, where recall is learnt in a few hundred steps, then the long ones; rotary
positions carry what was learnt to longer contexts). A LevAttention model with --warm W attends
with exact softmax for its first W steps (a warm start) and is evaluated as LevAttention throughout. The learning rate warms up over the first 5%
of all steps and decays by a cosine to 0 at the end.

DIR/checkpoint.pt is rewritten (through a temporary and a rename) every --save-every steps and at
the end; a run started again with the same DIR continues from it (its arguments must match the
checkpoint's). DIR/log.jsonl gets one line per evaluation: step, context, loss, recall on held-out
sequences of the current stage at full cache, seconds. DIR/final.json holds the arguments and, for
every stage's context, the held-out recall at the end, and the time.

Training sequences of step s come from mqar.batch(stage config, seed, s, batch); held-out sequences
from the seed + 1,000,003 stream, so they are never trained on.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Dict, List, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import RecallModel  # noqa: E402
from mqar import IGNORE, MQARConfig, batch  # noqa: E402

HELD_OUT = 1_000_003
MODEL_ARGS = ("vocab", "noise", "stages", "width", "heads", "layers", "attention", "window", "warm", "lr",
              "weight_decay", "seed")


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="directory for the checkpoint and logs")
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--noise", type=int, default=256)
    p.add_argument("--stages", default="64:8:8:600:32,256:16:16:400:32",
                   help="CONTEXT:PAIRS:QUERIES:STEPS:BATCH,... trained in order")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--attention", default="softmax", help="softmax or lev:K")
    p.add_argument("--window", type=int, default=0, help="lev:K only: causal window of recent keys")
    p.add_argument("--warm", type=int, default=0, help="lev:K only: the first WARM steps attend with exact softmax")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--save-every", type=int, default=250)
    p.add_argument("--held-out", type=int, default=256, help="held-out sequences per evaluation at context 64")
    return p.parse_args(argv)


def stages_of(args) -> List[Tuple[List[Tuple[MQARConfig, int]], int]]:
    """Every stage as ([(config, batch) of each alternative], steps)."""
    out = []
    for stage in args.stages.split(","):
        alternatives, steps = [], None
        for alternative in stage.split("+"):
            fields = alternative.split(":")
            if len(fields) != 5 or not all(f.isdigit() for f in fields):
                raise SystemExit(f"--stages: expected CONTEXT:PAIRS:QUERIES:STEPS:BATCH[+...], got {stage!r}")
            c, p, q, n, size = map(int, fields)
            steps = n if steps is None else steps
            alternatives.append((MQARConfig(vocab=args.vocab, noise=args.noise, context=c, pairs=p, queries=q), size))
        out.append((alternatives, steps))
    return out


def contexts_of(stages) -> Dict[int, MQARConfig]:
    """The last config trained at each context length."""
    return {config.context: config for alternatives, _ in stages for config, _ in alternatives}


def build(args) -> RecallModel:
    torch.manual_seed(args.seed)
    return RecallModel(args.vocab + args.noise, width=args.width, heads=args.heads, layers=args.layers,
                       attention=args.attention, window=args.window, threads=args.threads)


def lr_at(args, step: int, total: int) -> float:
    """Linear warm-up over the first 5% of steps, then cosine decay to 0."""
    warm = max(1, total // 20)
    if step < warm:
        return args.lr * (step + 1) / warm
    return args.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def stage_at(stages, step: int) -> Tuple[MQARConfig, int]:
    """The (config, batch) that trains step `step`: its stage's alternatives take turns."""
    for alternatives, steps in stages:
        if step < steps:
            return alternatives[step % len(alternatives)]
        step -= steps
    return stages[-1][0][0]


def held_out(args, config: MQARConfig) -> int:
    """Held-out sequences per evaluation: --held-out at context 64, a quarter as many at 256 and a
    sixteenth at 1,024 (at least 8). With run.py's stages (8 queries at 64, C/16 at 256 and 1,024)
    256 and 1,024 are judged on as many queries, 64 on twice as many."""
    return max(8, args.held_out * 64 // config.context)


@torch.no_grad()
def recall(model: RecallModel, config: MQARConfig, seed: int, sequences: int) -> float:
    """The fraction of held-out queries answered with their value at full cache."""
    model.eval()
    right = total = 0
    for i in range(0, sequences, 64):
        tokens, labels, _ = batch(config, seed + HELD_OUT, i, min(64, sequences - i))
        tokens, labels = torch.from_numpy(tokens), torch.from_numpy(labels)
        asked = labels != IGNORE
        right += int((model(tokens, asked).argmax(dim=1) == labels[asked]).sum())
        total += int(asked.sum())
    model.train()
    return right / total


def save(path: str, state: dict) -> None:
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(args) -> dict:
    os.makedirs(args.out, exist_ok=True)
    stages = stages_of(args)
    total = sum(steps for _, steps in stages)
    model = build(args)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    step, elapsed = 0, 0.0
    wanted = {k: getattr(args, k) for k in MODEL_ARGS}
    if os.path.exists(ckpt_path):
        ckpt = torch.load(ckpt_path)
        if ckpt["args"] != wanted:
            raise SystemExit(f"{ckpt_path} was trained with other arguments: {ckpt['args']}")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, elapsed = ckpt["step"], ckpt["seconds"]
    log = open(os.path.join(args.out, "log.jsonl"), "a")
    start = time.time() - elapsed
    loss_sum, loss_n = 0.0, 0
    while step < total:
        for group in opt.param_groups:
            group["lr"] = lr_at(args, step, total)
        config, size = stage_at(stages, step)
        model.warm = step < args.warm
        tokens, labels, _ = batch(config, args.seed, step, size)
        labels = torch.from_numpy(labels)
        asked = labels != IGNORE
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(tokens), asked), labels[asked])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        loss_sum, loss_n = loss_sum + float(loss), loss_n + 1
        if step % args.eval_every == 0 or step == total:
            model.warm = False
            entry = {"step": step, "context": config.context, "loss": loss_sum / loss_n,
                     "recall": recall(model, config, args.seed, held_out(args, config)), "seconds": time.time() - start}
            loss_sum, loss_n = 0.0, 0
            log.write(json.dumps(entry) + "\n")
            log.flush()
            print(json.dumps(entry), flush=True)
        if step % args.save_every == 0 or step == total:
            save(ckpt_path, {"args": wanted, "model": model.state_dict(), "optimizer": opt.state_dict(),
                             "step": step, "seconds": time.time() - start})
    contexts = contexts_of(stages)
    final = {"args": wanted, "steps": total,
             "held_out_sequences": {str(c): 4 * held_out(args, config) for c, config in contexts.items()},
             "recall": {str(c): recall(model, config, args.seed, 4 * held_out(args, config))
                        for c, config in contexts.items()},
             "seconds": time.time() - start}
    tmp = os.path.join(args.out, "final.json.tmp")
    with open(tmp, "w") as f:
        json.dump(final, f, indent=1)
    os.replace(tmp, os.path.join(args.out, "final.json"))
    return final


if __name__ == "__main__":
    print(json.dumps(train(parse())))
