#!/usr/bin/python3
"""The MQAR recall study: trains the models, evaluates every press at every compression ratio, and
writes results/results.md and PNG plots from its own runs.

    make recall      (PYTHONPATH=build/release/python /usr/bin/python3 experiments/recall/run.py)
    /usr/bin/python3 experiments/recall/run.py --report-only

Each training (train.py) and each evaluation (pressed.py) is a subprocess on one thread; two run
at a time. Checkpoints go to $LEVATTN_STUDY_DIR (default ~/.cache/levattn/recall-study); the
evaluations' JSON go to results/runs/ and are committed. A finished training or evaluation is
never redone, so an interrupted study resumes where it stopped (a training resumes from its last
checkpoint), and --report-only redraws the report from whatever has finished.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
RUNS = os.path.join(RESULTS, "runs")
STORE = os.environ.get("LEVATTN_STUDY_DIR", os.path.expanduser("~/.cache/levattn/recall-study"))

SEEDS = (0, 1, 2)
LEV_SEEDS = (0,)  # the LevAttention-trained model: one seed (it costs as much as a softmax model)
RATIOS = (0.5, 0.75, 0.875, 0.9375)
THRESHOLDS = (0.05, 0.1, 0.2)
# Every model learns recall on contexts of 64 first, then 256, then 1,024 and 256 in turn
# (train.py --stages). The value tokens are 1/16 of each evaluated context (16 pairs in 256, 64 in
# 1,024), so a press that keeps exactly them compresses by 0.9375.
STAGES = "64:8:8:800:32,256:16:16:300:32,1024:64:64:1200:16+256:16:16:0:32"
CONTEXTS = (256, 1024)
# The LevAttention model keeps 1/8 of the keys (the 0.875 ratio) from the 256 stage on; the first
# stage, where recall is learnt, attends with softmax (trained from scratch it was at 1.5% recall
# after 600 steps at context 64).
ATTENTIONS = {"softmax": [], "lev:0.125": ["--warm", "800"]}
MODEL = ["--vocab", "512", "--noise", "64", "--width", "64", "--heads", "4", "--layers", "2", "--lr", "1e-2",
         "--stages", STAGES]
EVAL_SEQUENCES = {256: 128, 1024: 32}  # 2,048 queries each
# The LevAttention model is evaluated with its own rule, the full cache and the oracle.
LEV_PRESSES = "leverage,oracle"


def name_of(attention: str, seed: int) -> str:
    return f"{attention.replace(':', '').replace('.', '')}_s{seed}"


def run(command, log_path) -> bool:
    start = time.time()
    print(f"[{time.strftime('%H:%M:%S')}] {' '.join(command[1:])}", flush=True)
    with open(log_path, "a") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    print(f"  {'done' if code == 0 else f'FAILED ({code}), see ' + log_path} in {time.time() - start:.0f} s",
          flush=True)
    return code == 0


def train_and_evaluate(attention: str, seed: int) -> None:
    name = name_of(attention, seed)
    out = os.path.join(STORE, name)
    if not os.path.exists(os.path.join(out, "final.json")):
        os.makedirs(out, exist_ok=True)
        ok = run([sys.executable, os.path.join(HERE, "train.py"), "--out", out, "--attention", attention, "--seed",
                  str(seed), "--threads", "1", *MODEL, *ATTENTIONS[attention]], os.path.join(out, "train.log"))
        if not ok:
            return
    trained = os.path.join(RUNS, name + ".train.json")
    if not os.path.exists(trained):
        with open(os.path.join(out, "final.json")) as f:
            final = json.load(f)
        with open(os.path.join(out, "log.jsonl")) as f:
            curve = [json.loads(line) for line in f]
        with open(trained + ".tmp", "w") as f:
            json.dump({"final": final, "curve": curve}, f, indent=1)
        os.replace(trained + ".tmp", trained)
    for context in CONTEXTS:
        result = os.path.join(RUNS, f"{name}_c{context}.json")
        if not os.path.exists(result):
            presses = ["--presses", LEV_PRESSES] if attention != "softmax" else []
            run([sys.executable, os.path.join(HERE, "pressed.py"), "--run", out, "--context", str(context), "--out",
                 result, "--sequences", str(EVAL_SEQUENCES[context]), "--ratios", ",".join(map(str, RATIOS)),
                 "--thresholds", ",".join(map(str, THRESHOLDS)), "--threads", "1", *presses],
                os.path.join(out, "eval.log"))


def study() -> None:
    queue = [("softmax", s) for s in SEEDS] + [(a, s) for a in ATTENTIONS if a != "softmax" for s in LEV_SEEDS]
    queue.insert(1, queue.pop())  # the LevAttention model second, beside the first softmax model
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                task = queue.pop(0)
            train_and_evaluate(*task)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--report-only", action="store_true")
    a = p.parse_args()
    os.makedirs(RUNS, exist_ok=True)
    os.makedirs(STORE, exist_ok=True)
    if not a.report_only:
        study()
    import report
    report.write(RUNS, RESULTS, RATIOS)
