"""Smoke run of the MQAR recall pipeline (experiments/recall/) on a tiny model: the generator's
layout, training and resuming from a checkpoint, evaluation under every press, and the report.
Asserts, on a model trained a few steps (no accuracy is expected of it):
  * the generator puts each asked key's value right after it, in the context and in the query part;
  * a run stopped after 6 steps and resumed to 12 ends with the weights of a run of 12 steps;
  * with the full cache, forward_pressed gives the logits forward gives (same weights, same math);
  * at every layer, head and query, the oracle's keys hold at least the softmax mass that any press's
    keys hold at the same budget (the oracle's own objective);
  * every press keeps the budget it was given, and the report writes results.md and both plots.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECALL = os.path.join(ROOT, "experiments", "recall")
sys.path.insert(0, RECALL)

import levattn  # noqa: E402
import pressed  # noqa: E402
import report  # noqa: E402
from mqar import IGNORE, MQARConfig, batch  # noqa: E402
from train import build, parse, train  # noqa: E402

TINY = ["--vocab", "32", "--noise", "8", "--stages", "16:2:2:4:8,32:4:3:8:8+16:2:2:0:4", "--width", "16", "--heads", "2",
        "--lr", "3e-3", "--eval-every", "3", "--save-every", "3", "--held-out", "16", "--threads", "1"]


def test_generator_layout():
    c = MQARConfig(vocab=64, noise=16, context=40, pairs=6, queries=4)
    tokens, labels, depth = batch(c, 3, 0, 5)
    assert tokens.shape == labels.shape == (5, 48) and depth.shape == (5, 4)
    for t, l, dep in zip(tokens, labels, depth):
        ctx = t[:40]
        keys = [i for i in range(0, 40, 2) if ctx[i] < 32]
        assert len(keys) == 6 and all(1 <= ctx[i] < 32 and 32 <= ctx[i + 1] < 64 for i in keys)
        assert np.all(ctx[[i for i in range(40) if i // 2 * 2 not in keys]] >= 64)
        for qi in range(4):
            key, value = t[40 + 2 * qi], t[41 + 2 * qi]
            pos = [i for i in keys if ctx[i] == key]
            assert len(pos) == 1 and ctx[pos[0] + 1] == value and l[40 + 2 * qi] == value
            assert np.isclose(dep[qi], (pos[0] + 1) / 40)
        assert np.sum(l != IGNORE) == 4
    assert np.array_equal(batch(c, 3, 0, 5)[0], tokens) and not np.array_equal(batch(c, 3, 1, 5)[0], tokens)


def test_pipeline_end_to_end():
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        straight = parse(["--out", os.path.join(tmp, "straight"), *TINY])
        train(straight)
        # stop after 6 of the 12 steps (in the second stage), then resume
        resumed = parse(["--out", os.path.join(tmp, "resumed"), *TINY])
        ckpt_path = os.path.join(tmp, "resumed", "checkpoint.pt")
        os.makedirs(resumed.out)
        code = subprocess.run([sys.executable, "-c", (
            "import sys, train\n"
            "class Stop(Exception): pass\n"
            "orig = train.save\n"
            "def save(path, state):\n"
            "    orig(path, state)\n"
            "    if state['step'] == 6: raise Stop\n"
            "train.save = save\n"
            f"try: train.train(train.parse({json.dumps(['--out', resumed.out, *TINY])}))\n"
            "except Stop: sys.exit(7)\n")], cwd=RECALL, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                [RECALL] + [os.path.abspath(x) for x in os.environ.get("PYTHONPATH", "").split(os.pathsep) if x])}
        ).returncode
        assert code == 7 and torch.load(ckpt_path)["step"] == 6
        train(resumed)
        a = torch.load(os.path.join(straight.out, "checkpoint.pt"))["model"]
        b = torch.load(ckpt_path)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a), "resumed run differs from the straight run"

        model = build(straight)
        model.load_state_dict(a)
        model.eval()
        config = MQARConfig(vocab=32, noise=8, context=32, pairs=4, queries=3)
        tokens, labels, _ = batch(config, 0, 5, 4)
        tokens = torch.from_numpy(tokens)
        with torch.no_grad():
            full = model(tokens)[:, 32:]
            pressed_full = model.forward_pressed(tokens, 32, pressed.PressCall("full", 0.0))
        assert torch.allclose(full, pressed_full, rtol=1e-4, atol=1e-4), float((full - pressed_full).abs().max())

        for press in levattn.PRESSES + ("oracle",):
            call = pressed.PressCall(press, 0.75, record_mass=True)
            model.forward_pressed(tokens, 32, call)
            budget = pressed.budget_of(32, 0.75)
            for kept, mass, best in zip(call.kept, call.mass, call.oracle_mass):
                assert bool(torch.all(kept.sum(dim=-1) == budget)), press
                assert bool(torch.all(mass <= best + 1e-9)), f"{press} beats the oracle on its objective"
                assert float(best.min()) > 0

        # the study's evaluation CLI and the report, on the tiny runs
        runs = os.path.join(tmp, "runs")
        os.makedirs(runs)
        name = "c32_softmax_s0"
        with open(os.path.join(straight.out, "final.json")) as f:
            final = json.load(f)
        with open(os.path.join(runs, name + ".train.json"), "w") as f:
            json.dump({"final": final, "curve": []}, f)
        pressed.main(["--run", straight.out, "--context", "32", "--out", os.path.join(runs, name + ".json"),
                      "--sequences", "8",
                      "--ratios", "0.5,0.875", "--thresholds", "0.3"])
        with open(os.path.join(runs, name + ".json")) as f:
            rows = json.load(f)["rows"]
        assert {r["press"] for r in rows} == set(levattn.PRESSES) | {"oracle", "full", "threshold:0.3"}
        assert all(0.0 <= r["recall"] <= 1.0 and sum(r["depth"]["queries"]) == 8 * 3 for r in rows)
        report.write(runs, tmp, (0.5, 0.875))
        text = open(os.path.join(tmp, "results.md")).read()
        assert "softmax model, context 32" in text and "| oracle |" in text and "value tokens' keys rank" in text
        for png in ("recall_vs_ratio.png", "survival_vs_depth.png"):
            assert open(os.path.join(tmp, png), "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_levattention_trained_model_trains_and_is_pressed():
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        args = parse(["--out", tmp, "--attention", "lev:8", "--window", "2", *TINY])
        result = train(args)
        assert set(result["recall"]) == {"16", "32"} and all(0.0 <= r <= 1.0 for r in result["recall"].values())
        model = build(args)
        model.load_state_dict(torch.load(os.path.join(tmp, "checkpoint.pt"))["model"])
        tokens = torch.from_numpy(batch(MQARConfig(vocab=32, noise=8, context=32, pairs=4, queries=3), 0, 0, 2)[0])
        logits = model.forward_pressed(tokens, 32, pressed.PressCall("leverage", 0.75))
        assert logits.shape == (2, 6, 40) and bool(torch.isfinite(logits).all())
