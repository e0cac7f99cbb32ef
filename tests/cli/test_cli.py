#!/usr/bin/python3
"""End-to-end tests of the levattn CLI: outputs against numpy float64 references, every bad
input against its exit code and message, and no partial output files. Usage: test_cli.py LEVATTN"""
import csv
import functools
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import cli_helpers  # noqa: E402
from cli_helpers import check, softmax_attention  # noqa: E402

BIN = sys.argv[1]
run = functools.partial(cli_helpers.run, BIN)


def expect_error(code, needle, *args):
    r = run(*args)
    check(r.returncode == code and r.stderr.startswith("levattn: error:") and needle.lower() in r.stderr.lower(),
          f"exit {code} and '{needle}' for {' '.join(map(str, args))} (got {r.returncode}: {r.stderr.strip()[:160]})")


def leverage(K):
    """Leverage scores from a float64 SVD (independent of the library's Gram route)."""
    U, s, _ = np.linalg.svd(K.astype(np.float64), full_matrices=False)
    r = int((s > s[0] * 4.8e-7).sum())
    return (U[:, :r] ** 2).sum(axis=1), r


def lewis(K, p, iterations=200):
    """ℓp Lewis weights by the Cohen–Peng fixed point in float64 (p < 4), independent of the library."""
    Kd = K.astype(np.float64)
    w = np.ones(len(Kd))
    for _ in range(iterations):
        M = np.linalg.pinv(Kd.T @ (Kd * (w ** (1 - 2 / p))[:, None]))
        w = np.einsum("ij,jk,ik->i", Kd, M, Kd) ** (p / 2)
    return w


def power_attention(Q, K, p):
    S = np.abs(Q.astype(np.float64) @ K.astype(np.float64).T)
    top = S.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        A = np.where(top > 0, (S / np.where(top > 0, top, 1)) ** p, 0.0)
        return np.where(top > 0, A / A.sum(axis=1, keepdims=True), 0.0)


def attention(Q, K):
    S = Q.astype(np.float64) @ K.astype(np.float64).T
    tot = (S ** 2).sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, S ** 2 / tot, 0.0)


with tempfile.TemporaryDirectory() as tmp:
    p = lambda name: os.path.join(tmp, name)
    rng = np.random.default_rng(7)
    K = rng.standard_normal((400, 12)).astype(np.float32)
    K[:5] *= 30  # a few strong keys
    Q = np.vstack([rng.standard_normal((30, 12)), K[:5], np.zeros((1, 12))]).astype(np.float32)
    np.save(p("K.npy"), K)
    np.save(p("K64.npy"), K.astype(np.float64))
    np.save(p("K16.npy"), K.astype(np.float16))
    np.save(p("KF.npy"), np.asfortranarray(K))
    np.save(p("Q.npy"), Q)
    K3 = np.stack([K, rng.standard_normal((400, 12)).astype(np.float32)])
    Q3 = np.stack([Q, rng.standard_normal(Q.shape).astype(np.float32)])
    np.save(p("K3.npy"), K3)
    np.save(p("Q3.npy"), Q3)

    # scores: float64 (n,) matching numpy's SVD; every input dtype/order gives the same answer.
    tau_ref, rank = leverage(K)
    for name in ["K.npy", "K64.npy", "KF.npy"]:
        r = run("scores", "--keys", p(name), "--output", p("tau.npy"), "--json")
        tau = np.load(p("tau.npy"))
        j = json.loads(r.stdout)
        check(r.returncode == 0 and tau.dtype == np.float64 and tau.shape == (400,)
              and np.allclose(tau, tau_ref, rtol=1e-6, atol=0) and j["per_head"][0]["rank"] == rank
              and set(j["seconds"]) == {"threads", "load", "compute", "write"}, f"scores on {name} match numpy SVD")
    K16 = np.load(p("K16.npy")).astype(np.float32)
    r = run("scores", "--keys", p("K16.npy"), "--output", p("tau16.npy"))
    check(r.returncode == 0 and np.allclose(np.load(p("tau16.npy")), leverage(K16)[0], rtol=1e-6), "scores on float16 input")
    r = run("scores", "--keys", p("K3.npy"), "--output", p("tau3.npy"))
    tau3 = np.load(p("tau3.npy"))
    check(r.returncode == 0 and tau3.shape == (2, 400) and np.allclose(tau3[1], leverage(K3[1])[0], rtol=1e-6),
          "scores on (h, n, d) keys give (h, n)")
    r = run("scores", "--keys", p("K.npy"), "--ridge", "2.5", "--output", p("ridge.npy"))
    Kd = K.astype(np.float64)
    ridge_ref = np.einsum("ij,ij->i", Kd @ np.linalg.inv(Kd.T @ Kd + 2.5 * np.eye(12)), Kd)
    check(r.returncode == 0 and np.allclose(np.load(p("ridge.npy")), ridge_ref, rtol=1e-8), "ridge scores")

    # select: threshold and budget, int64 ascending; CSV for 3-D.
    r = run("select", "--keys", p("K.npy"), "--eps", "0.05", "--output", p("U.npy"), "--json")
    U = np.load(p("U.npy"))
    j = json.loads(r.stdout)
    want = np.flatnonzero(tau_ref >= 0.05)
    check(r.returncode == 0 and U.dtype == np.int64 and np.array_equal(U, want)
          and j["universal_set_size"] == len(want) and abs(j["bound"] - rank / 0.05) < 1e-9 and j["within_bound"],
          f"select --eps gives {{tau >= eps}} ({len(want)} keys) and the bound rank/eps")
    r = run("select", "--keys", p("K.npy"), "--top-k", "7", "--output", p("top.npy"))
    order = sorted(range(400), key=lambda i: (-tau_ref[i], i))[:7]
    check(r.returncode == 0 and np.array_equal(np.load(p("top.npy")), sorted(order)), "select --top-k")
    r = run("select", "--keys", p("K3.npy"), "--top-k", "3", "--output", p("top3.csv"))
    rows = list(csv.reader(open(p("top3.csv"))))
    check(r.returncode == 0 and rows[0] == ["head", "key", "score"] and len(rows) == 7
          and [int(x[0]) for x in rows[1:]] == [0, 0, 0, 1, 1, 1], "select on 3-D keys writes head,key,score")

    # heavy: CSV equal to numpy's brute force away from the threshold; zero query counted.
    A = attention(Q, K)
    for eps in [0.001, 0.01, 0.1]:
        r = run("heavy", "--queries", p("Q.npy"), "--keys", p("K.npy"), "--eps", eps, "--output", p("h.csv"),
                "--verify", 20, "--json")
        j = json.loads(r.stdout)
        rows = list(csv.reader(open(p("h.csv"))))
        got = {(int(a), int(b)): float(c) for a, b, c in rows[1:]}
        strong = {(i, k) for i, k in zip(*np.nonzero(A >= eps * (1 + 1e-4)))}
        ok = (r.returncode == 0 and rows[0] == ["query", "key", "score"] and strong <= set(got)
              and all(A[i, k] >= eps * (1 - 1e-4) and abs(v - A[i, k]) <= 1e-6 * A[i, k] for (i, k), v in got.items())
              and [tuple(map(int, x[:2])) for x in rows[1:]] == sorted(got) and j["zero_queries"] == 1
              and j["heavy_count"] == len(got) and j["verify"]["recall"] == 1 and j["verify"]["precision"] == 1)
        check(ok and len(strong) > 0, f"heavy eps={eps}: {len(got)} entries match numpy brute force, sorted, 9 digits")
    r = run("heavy", "--queries", p("Q.npy"), "--keys", p("K.npy"), "--eps", 0.1)
    check(r.returncode == 0 and r.stdout.startswith("query,key,score\n"), "heavy without --output writes CSV on stdout")
    # --verify on keys of condition 10^6 with queries G⁺k_j along their small directions, where
    # <q,k> << |q||k|: the entries equal numpy's double brute force, and --verify agrees (no warning).
    rc = np.random.default_rng(1)
    U, _ = np.linalg.qr(rc.standard_normal((4000, 16)))
    W, _ = np.linalg.qr(rc.standard_normal((16, 16)))
    Kc = ((U * np.logspace(0, -6, 16)) @ W.T).astype(np.float32)
    Qc = (Kc[rc.integers(0, 4000, 300)].astype(np.float64) @ np.linalg.pinv(Kc.T.astype(np.float64) @ Kc))
    np.save(p("Kc.npy"), Kc)
    np.save(p("Qc.npy"), Qc.astype(np.float32))
    Ac = attention(np.load(p("Qc.npy")), Kc)
    r = run("heavy", "--queries", p("Qc.npy"), "--keys", p("Kc.npy"), "--eps", 0.003, "--output", p("hc.csv"),
            "--verify", 300, "--json")
    j = json.loads(r.stdout) if r.returncode == 0 else {"verify": {}}
    got = {(int(a), int(b)) for a, b, _ in list(csv.reader(open(p("hc.csv"))))[1:]} if r.returncode == 0 else set()
    strong = set(zip(*np.nonzero(Ac >= 0.003 * (1 + 1e-4))))
    check(r.returncode == 0 and strong and strong <= got and all(Ac[e] >= 0.003 * (1 - 1e-4) for e in got)
          and j["verify"].get("recall") == 1 and j["verify"].get("precision") == 1 and "warning" not in r.stderr,
          f"heavy --verify on keys of condition 1e6: {len(got)} entries as numpy's, verify recall and precision 1 "
          f"({r.returncode}: {j['verify']}, {r.stderr.strip()[:200]})")
    r = run("heavy", "--queries", p("Q3.npy"), "--keys", p("K3.npy"), "--eps", 0.05, "--output", p("h3.csv"))
    rows = list(csv.reader(open(p("h3.csv"))))
    A1 = attention(Q3[1], K3[1])
    got1 = {(int(b), int(c)) for a, b, c, _ in rows[1:] if a == "1"}
    check(r.returncode == 0 and rows[0] == ["head", "query", "key", "score"]
          and {(i, k) for i, k in zip(*np.nonzero(A1 >= 0.05 * (1 + 1e-4)))} <= got1, "heavy on 3-D input")

    # --p (Lewis weights, |x|^p heavy entries) and --approx (sketched leverage scores).
    for pw in [1.0, 3.0]:
        w_ref = lewis(K, pw)
        r = run("scores", "--keys", p("K.npy"), "--p", pw, "--output", p("w.npy"), "--json")
        j = json.loads(r.stdout) if r.returncode == 0 else {}
        check(r.returncode == 0 and np.allclose(np.load(p("w.npy")), w_ref, rtol=1e-5)
              and j["per_head"][0]["residual"] <= 1e-6 and j["per_head"][0]["iterations"] >= 1,
              f"scores --p {pw} match a numpy Lewis fixed point; residual and iterations reported")
        s_ref = w_ref * (rank ** (pw / 2 - 1) if pw > 2 else 1.0)
        r = run("select", "--keys", p("K.npy"), "--p", pw, "--eps", 0.05, "--output", p("Up.npy"), "--json")
        j = json.loads(r.stdout) if r.returncode == 0 else {}
        Up = set(np.load(p("Up.npy")).tolist()) if r.returncode == 0 else set()
        sure = set(np.flatnonzero(s_ref >= 0.05 * (1 + 1e-4)).tolist())
        maybe = set(np.flatnonzero(s_ref >= 0.05 * (1 - 1e-4)).tolist())
        bound = (rank if pw <= 2 else rank ** (pw / 2)) / 0.05
        check(r.returncode == 0 and sure <= Up <= maybe and len(sure) > 0 and abs(j["bound"] - bound) < 1e-3 * bound,
              f"select --p {pw}: U = {{s_j >= eps}} with bound {bound:.1f}")
    for pw in [1.0, 3.0, 4.0]:
        A = power_attention(Q, K, pw)
        r = run("heavy", "--queries", p("Q.npy"), "--keys", p("K.npy"), "--p", pw, "--eps", 0.05,
                "--output", p("hp.csv"), "--verify", len(Q), "--json")
        j = json.loads(r.stdout) if r.returncode == 0 else {"verify": {}}
        rows = list(csv.reader(open(p("hp.csv")))) if r.returncode == 0 else [[]]
        got = {(int(a), int(b)) for a, b, _, _ in rows[1:]}
        strong = {(i, k) for i, k in zip(*np.nonzero(A >= 0.05 * (1 + 1e-6)))}
        # --verify's precision: the share of reported entries whose A clears eps(1 - 1e-9) in numpy.
        confirmed = sum(1 for i, k in got if A[i, k] >= 0.05 * (1 - 1e-9))
        precision = confirmed / len(got) if got else 1.0
        check(r.returncode == 0 and rows[0] == ["query", "key", "score", "estimated"] and strong <= got
              and len(strong) > 0 and j["verify"]["recall"] == 1 and abs(j["verify"]["precision"] - precision) < 1e-12,
              f"heavy --p {pw}: every A >= eps of numpy's brute force reported ({len(strong)}), verify recall 1 "
              f"and precision {precision:.3f} as numpy counts it")
    # --approx on keys large enough that the plan sketches (n = 30,000, d = 128; smaller inputs get
    # the exact scores, which would pass any check of the sketch).
    Kap = rng.standard_normal((30000, 128)).astype(np.float32)
    Kap[::1000] *= 20
    np.save(p("Kap.npy"), Kap)
    tau_ap = leverage(Kap)[0]
    r = run("scores", "--keys", p("Kap.npy"), "--approx", 0.5, "--output", p("ap.npy"), "--json")
    j = json.loads(r.stdout)["per_head"][0] if r.returncode == 0 else {}
    ratio = np.load(p("ap.npy")) / tau_ap if r.returncode == 0 else np.zeros(1)
    check(r.returncode == 0 and j["method"] == "sketched" and j["sketch_rows"] > 0
          and np.mean((ratio < 1 / 1.5) | (ratio > 1.5)) <= j["failure_bound"] + 1e-12,
          "scores --approx 0.5 sketches (30,000 x 128) and its scores are within a factor 1.5 of numpy's "
          "up to the stated failure probability")
    r = run("scores", "--keys", p("K.npy"), "--approx", 0.5, "--output", p("ap.npy"), "--json")
    j = json.loads(r.stdout)["per_head"][0] if r.returncode == 0 else {}
    check(r.returncode == 0 and j["method"].startswith("exact") and j["failure_bound"] == 0
          and np.allclose(np.load(p("ap.npy")), tau_ref, rtol=1e-6),
          "scores --approx 0.5 on 400 x 12 keys computes the exact scores (cheaper than any sketch)")
    expect_error(3, "p must", "scores", "--keys", p("K.npy"), "--p", 0, "--output", p("x.npy"))
    expect_error(3, "gamma", "scores", "--keys", p("K.npy"), "--approx", 0, "--output", p("x.npy"))
    expect_error(2, "--approx", "select", "--keys", p("K.npy"), "--p", 3, "--approx", 0.5, "--eps", 0.1, "--output", p("x.npy"))
    expect_error(2, "--ridge", "scores", "--keys", p("K.npy"), "--p", 3, "--ridge", 1, "--output", p("x.npy"))
    expect_error(3, "delta", "heavy", "--queries", p("Q.npy"), "--keys", p("K.npy"), "--p", 3, "--eps", 0.1, "--delta", 2)

    # demo
    r = run("demo", "--n", 4096, "--m", 64, "--d", 16, "--json")
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    check(r.returncode == 0 and j["recall"] == 1 and j["precision"] == 1 and j["planted_recovered"] == j["planted_keys"]
          and {"threads", "load", "compute", "write"} <= set(j["seconds"]),
          "demo on a small instance: recall and precision 1, planted keys recovered")

    # attend: exact (softmax, causal, 4-D with grouped queries) and lev, against numpy
    AQ = rng.standard_normal((2, 4, 70, 16)).astype(np.float32)
    AK = rng.standard_normal((2, 2, 90, 16)).astype(np.float32)
    AV = rng.standard_normal((2, 2, 90, 8)).astype(np.float32)
    for name, arr in (("AQ", AQ), ("AK", AK), ("AV", AV)):
        np.save(p(name + ".npy"), arr)
    r = run("attend", "--queries", p("AQ.npy"), "--keys", p("AK.npy"), "--values", p("AV.npy"), "--causal",
            "--output", p("O.npy"), "--lse", p("L.npy"), "--json")
    ok = r.returncode == 0
    if ok:
        O, L = np.load(p("O.npy")), np.load(p("L.npy"))
        err = 0.0
        for b in range(2):
            for h in range(4):
                ref, lse = softmax_attention(AQ[b, h], AK[b, h // 2], AV[b, h // 2], 0.25, causal=True)
                err = max(err, np.linalg.norm(O[b, h] - ref) / np.linalg.norm(ref), np.abs(L[b, h] - lse).max() / 10)
        ok = O.shape == (2, 4, 70, 8) and O.dtype == np.float32 and err < 1e-5 and json.loads(r.stdout)["query_heads"] == 4
    check(ok, "attend exact: (b, h, n, d) with grouped queries and causal mask matches numpy")
    AQ2, AK2, AV2 = AQ[0, 0], AK[0, 0], AV[0, 0]
    np.save(p("AQ2.npy"), AQ2); np.save(p("AK2.npy"), AK2); np.save(p("AV2.npy"), AV2)
    r = run("attend", "--queries", p("AQ2.npy"), "--keys", p("AK2.npy"), "--values", p("AV2.npy"), "--method", "lev",
            "--top-k", 90, "--output", p("O2.npy"))
    ref, _ = softmax_attention(AQ2, AK2, AV2, 0.25)
    check(r.returncode == 0 and np.linalg.norm(np.load(p("O2.npy")) - ref) / np.linalg.norm(ref) < 1e-5,
          "attend lev with every key kept equals exact softmax attention")
    r = run("attend", "--queries", p("AQ2.npy"), "--keys", p("AK2.npy"), "--values", p("AV2.npy"), "--method", "lev",
            "--top-k", 10, "--f", "pow:2", "--output", p("O3.npy"), "--missing-mass", p("M3.npy"), "--json")
    ok = r.returncode == 0
    if ok:
        tau, _ = leverage(AK2)
        kept = np.sort(np.argsort(-tau, kind="stable")[:10])
        A = attention(AQ2, AK2)
        ref = A[:, kept] @ AV2[kept].astype(np.float64)
        ok = (np.linalg.norm(np.load(p("O3.npy")) - ref) / np.linalg.norm(ref) < 1e-5
              and np.abs(np.load(p("M3.npy")) - (1 - A[:, kept].sum(axis=1))).max() < 1e-5
              and json.loads(r.stdout)["kept_per_head"] == [10])
    check(ok, "attend lev pow:2 top-10: truncated output and missing mass match numpy")
    r = run("attend", "--queries", p("AQ2.npy"), "--keys", p("AK2.npy"), "--values", p("AV2.npy"), "--method", "lev",
            "--top-k", 10, "--f", "pow:3", "--delta", 0.2, "--seed", 5, "--output", p("O4.npy"),
            "--missing-mass", p("M4.npy"), "--json")
    ok = r.returncode == 0
    if ok:
        kept = np.sort(np.argsort(-lewis(AK2, 3), kind="stable")[:10])
        A = power_attention(AQ2, AK2, 3)
        ref = A[:, kept] @ AV2[kept].astype(np.float64)
        bound = 0.2 / 0.8  # a sampled normaliser within (1 ± δ) moves each row by at most δ/(1 − δ)
        O, M, j = np.load(p("O4.npy")), np.load(p("M4.npy")), json.loads(r.stdout)
        ok = (np.all(np.linalg.norm(O - ref, axis=1) <= bound * np.linalg.norm(ref, axis=1) + 1e-6)
              and np.all(np.abs(M - (1 - A[:, kept].sum(axis=1))) <= bound + 1e-6)
              and j["kept_per_head"] == [10] and j["normaliser_estimated"] and j["delta"] == 0.2)
    check(ok, "attend lev pow:3 top-10: top Lewis keys, output and missing mass within the normaliser's bound")
    expect_error(3, "cannot be causal", "attend", "--queries", p("AQ2.npy"), "--keys", p("AK2.npy"), "--values",
                 p("AV2.npy"), "--method", "lev", "--top-k", 3, "--f", "pow:3", "--causal", "--output", p("x.npy"))
    expect_error(2, "--delta", "attend", "--queries", p("AQ2.npy"), "--keys", p("AK2.npy"), "--values",
                 p("AV2.npy"), "--method", "lev", "--top-k", 3, "--f", "pow:3", "--delta", 1.5, "--output", p("x.npy"))
    expect_error(2, "--top-k", "attend", "--queries", p("AQ2.npy"), "--keys", p("AK2.npy"), "--values", p("AV2.npy"),
                 "--method", "lev", "--output", p("x.npy"))
    expect_error(2, "lev", "attend", "--queries", p("AQ2.npy"), "--keys", p("AK2.npy"), "--values", p("AV2.npy"),
                 "--top-k", 3, "--output", p("x.npy"))
    expect_error(2, "--causal", "attend", "--queries", p("AQ2.npy"), "--keys", p("AK2.npy"), "--values", p("AV2.npy"),
                 "--method", "lev", "--top-k", 3, "--window", 4, "--output", p("x.npy"))
    expect_error(3, "pow:P", "attend", "--queries", p("AQ2.npy"), "--keys", p("AK2.npy"), "--values", p("AV2.npy"),
                 "--f", "pow:-1", "--output", p("x.npy"))
    expect_error(3, "exceeds", "attend", "--queries", p("AQ2.npy"), "--keys", p("AK2.npy"), "--values", p("AV2.npy"),
                 "--method", "lev", "--top-k", 91, "--output", p("x.npy"))
    expect_error(3, "mismatch", "attend", "--queries", p("AQ2.npy"), "--keys", p("AK.npy"), "--values", p("AV.npy"),
                 "--output", p("x.npy"))
    expect_error(3, "multiple of key heads", "attend", "--queries", p("AK.npy"), "--keys", p("AQ.npy"),
                 "--values", p("AQ.npy"), "--output", p("x.npy"))
    AVn = AV2.copy(); AVn[33, 1] = np.nan; np.save(p("AVn.npy"), AVn)
    expect_error(3, "values: batch 0, head 0, row 33", "attend", "--queries", p("AQ2.npy"), "--keys", p("AK2.npy"),
                 "--values", p("AVn.npy"), "--output", p("never.npy"))
    check(not os.path.exists(p("never.npy")), "a failed attend run leaves no output file")

    # eval: capture and error per rule against numpy float64, CSV + JSON + plots; planted files.
    def dense_attention(Qh, Kh, f):
        S = Qh.astype(np.float64) @ Kh.astype(np.float64).T
        if f == "softmax":
            W = np.exp(S / np.sqrt(Kh.shape[1]) - (S / np.sqrt(Kh.shape[1])).max(axis=1, keepdims=True))
        else:
            W = S ** 2
        return W / W.sum(axis=1, keepdims=True)

    EK = rng.standard_normal((2, 300, 8)).astype(np.float32)
    EK[:, 10:16] *= 5
    EQ = rng.standard_normal((2, 50, 8)).astype(np.float32)
    EV = rng.standard_normal((2, 300, 4)).astype(np.float32)
    for name, a in [("EQ", EQ), ("EK", EK), ("EV", EV)]:
        np.save(p(name + ".npy"), a)
    eargs = ["eval", "--queries", p("EQ.npy"), "--keys", p("EK.npy"), "--values", p("EV.npy"),
             "--budgets", "4,32", "--thresholds", "0.05", "--rules", "leverage,row-norm,oracle"]
    r = run(*eargs, "--output", p("eval.csv"), "--plots", p("plots"), "--json")
    j = json.loads(r.stdout) if r.returncode == 0 else {"rows": []}
    rows = {(x["rule"], x["f"], x.get("budget", x.get("threshold"))): x for x in j["rows"]}
    check(r.returncode == 0 and len(rows) == 2 * 7, f"eval runs ({r.returncode}: {r.stderr.strip()[:200]})")
    with open(p("eval.csv")) as fh:
        csv_rows = list(csv.DictReader(fh))
    check(len(csv_rows) == 14 and {"capture_0.01", "heavy_0.1", "rel_error", "select_seconds"} <= set(csv_rows[0]),
          "eval CSV has one row per rule, f and budget with capture, heavy counts, error, time")
    for png in ["capture_softmax.png", "capture_pow2.png", "error.png"]:
        path = os.path.join(p("plots"), png)
        check(os.path.exists(path) and open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n", f"eval --plots wrote {png}")
    ok = True
    for f in ["softmax", "pow:2"]:
        for (rule, k) in [("leverage", 4), ("leverage", 32), ("row-norm", 4), ("row-norm", 32), ("oracle", 4),
                          ("leverage", 0.05)]:
            heavy = np.zeros(3); captured = np.zeros(3); diff2 = ref2 = 0.0
            for h in range(2):
                A = dense_attention(EQ[h], EK[h], f)
                tau, _ = leverage(EK[h])
                if rule == "oracle":
                    keep = np.zeros_like(A, dtype=bool)
                    np.put_along_axis(keep, np.argsort(-A, axis=1, kind="stable")[:, :k], True, axis=1)
                else:
                    score = tau if rule == "leverage" else (EK[h].astype(np.float64) ** 2).sum(axis=1)
                    kept = np.nonzero(score >= k * 0.95)[0] if isinstance(k, float) else np.argsort(-score, kind="stable")[:k]
                    keep = np.zeros_like(A, dtype=bool); keep[:, kept] = True
                for t, e in enumerate([0.01, 0.05, 0.1]):
                    heavy[t] += (A >= e).sum(); captured[t] += ((A >= e) & keep).sum()
                O = A @ EV[h].astype(np.float64)
                Ak = np.where(keep, A, 0.0)
                if f == "softmax":
                    Ak = Ak / Ak.sum(axis=1, keepdims=True)
                diff2 += ((O - Ak @ EV[h].astype(np.float64)) ** 2).sum(); ref2 += (O ** 2).sum()
            got = rows.get((rule, f, k))
            good = got is not None and all(got["heavy"][e] == heavy[t] for t, e in enumerate(["0.01", "0.05", "0.1"])) \
                and all(abs(got["capture"][e] - captured[t] / heavy[t]) < 1e-12 for t, e in enumerate(["0.01", "0.05", "0.1"])) \
                and abs(got["rel_error"] - np.sqrt(diff2 / ref2)) <= 1e-5 + 1e-4 * np.sqrt(diff2 / ref2)
            if not good:
                print("  eval mismatch:", rule, f, k, got, heavy, captured, np.sqrt(diff2 / ref2))
            ok = ok and good
    check(ok, "eval capture and error match numpy float64 for leverage, row-norm, oracle, a threshold set")
    check(rows[("leverage", "pow:2", 0.05)]["capture"]["0.05"] == 1.0, "eval: leverage threshold set captures every x² A ≥ ε")
    expect_error(3, "budget 301", *eargs[:-6], "--budgets", "301")
    expect_error(2, "--plots needs --output", *eargs, "--plots", p("plots"))
    expect_error(2, ".csv", *eargs, "--output", p("eval.txt"))
    expect_error(3, "unknown rule", *eargs[:-2], "--rules", "bogus")

    # Keys with cond(K) = 1e5 (n = 4,000, d = 32): rounding holds the Lewis residual above the 1e-6
    # tolerance. Before: scores --p exited 3 after 300 iterations and eval gave no table. Now the
    # weights come back with their accuracy (limited_by_rounding, residual) and eval has every rule.
    Ua, _ = np.linalg.qr(rng.standard_normal((4000, 32)))
    Va, _ = np.linalg.qr(rng.standard_normal((32, 32)))
    KC = ((Ua * np.logspace(0, -5, 32)) @ Va.T * 100).astype(np.float32)
    np.save(p("KC.npy"), KC)
    np.save(p("QC.npy"), rng.standard_normal((40, 32)).astype(np.float32))
    np.save(p("VC.npy"), rng.standard_normal((4000, 4)).astype(np.float32))
    for pw in [0.5, 1.0, 3.0, 4.0]:
        r = run("scores", "--keys", p("KC.npy"), "--p", pw, "--output", p("wc.npy"), "--json")
        j = json.loads(r.stdout)["per_head"][0] if r.returncode == 0 else {}
        good = r.returncode == 0 and j["limited_by_rounding"] and 1e-6 < j["residual"] <= 1e-3
        if good and pw < 4:
            ref = lewis(KC, pw, iterations=100)
            good = np.max(np.abs(np.load(p("wc.npy")) - ref) / ref) <= 3 * j["residual"]
        check(good, f"scores --p {pw} on cond(K) = 1e5 keys: weights with limited_by_rounding and residual "
                    f"{j.get('residual', float('nan')):.1e}" + (", within 3x that of numpy's fixed point" if pw < 4 else ""))
    r = run("eval", "--queries", p("QC.npy"), "--keys", p("KC.npy"), "--values", p("VC.npy"), "--budgets", "16",
            "--rules", "lewis,leverage", "--json")
    j = json.loads(r.stdout) if r.returncode == 0 else {"rows": []}
    check(r.returncode == 0 and len(j["rows"]) == 4 and all("failure" not in x for x in j["rows"]),
          "eval on cond(K) = 1e5 keys gives every lewis and leverage row")
    # --plots on data with nothing positive to put on a log scale (a threshold set that keeps no
    # key): the plots are drawn, linear where they must be.
    r = run("eval", "--queries", p("EQ.npy"), "--keys", p("EK.npy"), "--values", p("EV.npy"), "--thresholds", "1",
            "--rules", "leverage", "--output", p("empty.csv"), "--plots", p("plots_empty"))
    check(r.returncode == 0 and all(os.path.exists(os.path.join(p("plots_empty"), f))
                                    for f in ["capture_softmax.png", "capture_pow2.png", "error.png"]),
          f"eval --plots copes with a threshold set of no keys ({r.returncode}: {r.stderr.strip()[-160:]})")
    # A failing plot script: exit 1 naming its exit status, the CSV kept whole.
    with open(p("bad_plot.py"), "w") as fh:
        fh.write("import sys\nsys.exit('plot script failed on purpose')\n")
    r = subprocess.run([BIN, *eargs, "--output", p("kept.csv"), "--plots", p("plots_bad")], capture_output=True,
                       text=True, env={**os.environ, "LEVATTN_PLOT_SCRIPT": p("bad_plot.py")})
    with open(p("kept.csv")) as fh:
        kept_rows = list(csv.DictReader(fh)) if os.path.exists(p("kept.csv")) else []
    check(r.returncode == 1 and "exit status 1" in r.stderr and "failed on purpose" in r.stderr
          and "matplotlib" not in r.stderr and len(kept_rows) == 14,
          f"a failing plot script: exit 1, its status and message, the CSV complete ({r.stderr.strip()[-200:]})")

    r = run("planted", "--output-dir", p("planted"), "--n", 2048, "--m", 64, "--d", 16, "--directions", 4,
            "--noise-rank", 3, "--noise-strength", 2, "--json")
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    PK = np.load(p("planted/keys.npy")) if r.returncode == 0 else None
    rel = np.load(p("planted/relevant.npy")) if r.returncode == 0 else None
    check(r.returncode == 0 and PK.shape == (2048, 16) and rel.dtype == np.int64 and list(rel) == j["relevant_keys"]
          and np.load(p("planted/values.npy")).shape == (2048, 16) and np.load(p("planted/queries.npy")).shape == (64, 16)
          and j["predicted"]["top_k_recovers"], "planted writes queries, keys, values, relevant keys and the prediction")
    if r.returncode == 0:
        tau, _ = leverage(PK)
        check(sorted(np.argsort(-tau)[:8]) == sorted(rel), "planted: the top-8 leverage keys (numpy SVD) are the relevant ones")
        r = run("eval", "--queries", p("planted/queries.npy"), "--keys", p("planted/keys.npy"), "--values",
                p("planted/values.npy"), "--budgets", 8, "--rules", "leverage,row-norm", "--f", "pow:2",
                "--relevant", ",".join(map(str, rel)), "--json")
        rr = {x["rule"]: x["relevant_recall"] for x in json.loads(r.stdout)["rows"]} if r.returncode == 0 else {}
        check(rr == {"leverage": 1.0, "row-norm": 0.0}, f"eval --relevant: leverage recovers the planted keys, row norm none ({rr})")
    expect_error(3, "noise rank", "planted", "--output-dir", p("planted2"), "--d", 8, "--directions", 4, "--noise-rank", 5)

    # Bad input: usage (2), bad data or parameters (3), anything else (1).
    expect_error(2, "subcommand")
    expect_error(2, "--bogus", "scores", "--keys", p("K.npy"), "--output", p("x.npy"), "--bogus")
    expect_error(2, "--keys", "scores", "--output", p("x.npy"))
    expect_error(2, "excludes", "select", "--keys", p("K.npy"), "--eps", 0.1, "--top-k", 3, "--output", p("x.npy"))
    expect_error(2, "--eps", "select", "--keys", p("K.npy"), "--output", p("x.npy"))
    expect_error(2, "--threads", "scores", "--keys", p("K.npy"), "--output", p("x.npy"), "--threads", 0)
    expect_error(2, ".csv", "select", "--keys", p("K3.npy"), "--eps", 0.1, "--output", p("x.npy"))
    expect_error(2, "--output", "heavy", "--queries", p("Q.npy"), "--keys", p("K.npy"), "--eps", 0.1, "--json")
    expect_error(3, "missing.npy", "scores", "--keys", p("missing.npy"), "--output", p("x.npy"))
    expect_error(3, "eps", "select", "--keys", p("K.npy"), "--eps", 0, "--output", p("x.npy"))
    expect_error(3, "eps", "heavy", "--queries", p("Q.npy"), "--keys", p("K.npy"), "--eps", 1.5)
    expect_error(3, "top-k", "select", "--keys", p("K.npy"), "--top-k", 401, "--output", p("x.npy"))
    expect_error(3, "ridge", "scores", "--keys", p("K.npy"), "--ridge", -1, "--output", p("x.npy"))
    np.save(p("v.npy"), np.ones(5, np.float32))
    expect_error(3, "shape", "scores", "--keys", p("v.npy"), "--output", p("x.npy"))
    np.save(p("Q5.npy"), np.ones((3, 5), np.float32))
    expect_error(3, "mismatch", "heavy", "--queries", p("Q5.npy"), "--keys", p("K.npy"), "--eps", 0.1)
    expect_error(3, "mismatch", "heavy", "--queries", p("Q3.npy"), "--keys", p("K.npy"), "--eps", 0.1)
    Kn = K.copy(); Kn[123, 4] = np.nan; np.save(p("Knan.npy"), Kn)
    expect_error(3, "row 123", "scores", "--keys", p("Knan.npy"), "--output", p("x.npy"))
    Qi = Q.copy(); Qi[9, 0] = np.inf; np.save(p("Qinf.npy"), Qi)
    expect_error(3, "row 9", "heavy", "--queries", p("Qinf.npy"), "--keys", p("K.npy"), "--eps", 0.1, "--output", p("never.csv"))
    check(not os.path.exists(p("never.csv")), "a failed heavy run leaves no output file")
    K3n = K3.copy(); K3n[1, 77, 2] = np.nan; np.save(p("K3nan.npy"), K3n)
    expect_error(3, "head 1: keys: row 77", "select", "--keys", p("K3nan.npy"), "--top-k", 3, "--output", p("x.csv"))
    # stream: the same bytes as select --eps, for every dtype, byte order and block size.
    Kbig = rng.standard_normal((6000, 8)).astype(np.float32)
    Kbig[::700] *= 40
    np.save(p("Kbig.npy"), Kbig)
    np.save(p("Kbig64be.npy"), Kbig.astype(">f8"))
    for name, eps in [("K.npy", 0.05), ("K16.npy", 0.02), ("Kbig.npy", 0.01), ("Kbig.npy", 0.2), ("Kbig64be.npy", 0.01)]:
        r0 = run("select", "--keys", p(name), "--eps", eps, "--output", p("sel.npy"))
        for block in [1, 7, 256, 1000, 100000]:
            if block == 1 and name.startswith("Kbig"):
                continue  # 6000 single-row reads add nothing over 7-row ones but time
            r = run("stream", "--keys", p(name), "--eps", eps, "--block", block, "--output", p("str.npy"), "--json")
            same = r.returncode == 0 and open(p("sel.npy"), "rb").read() == open(p("str.npy"), "rb").read()
            check(r0.returncode == 0 and same, f"stream {name} --eps {eps} --block {block} writes select's bytes")
    tau_big, rank_big = leverage(Kbig)
    j = json.loads(run("stream", "--keys", p("Kbig.npy"), "--eps", 0.2, "--output", p("str.npy"), "--json", "--block", 500).stdout)
    check(np.array_equal(np.load(p("str.npy")), np.flatnonzero(tau_big >= 0.2)) and j["rank"] == rank_big
          and j["peak_retained_keys"] < 6000 and set(j["seconds"]) == {"threads", "read", "compute", "write"},
          f"stream agrees with numpy's SVD and evicts (held at most {j['peak_retained_keys']} of 6000)")
    expect_error(3, "2-D", "stream", "--keys", p("K3.npy"), "--eps", 0.1, "--output", p("never.npy"))
    expect_error(3, "Fortran", "stream", "--keys", p("KF.npy"), "--eps", 0.1, "--output", p("never.npy"))
    expect_error(3, "eps", "stream", "--keys", p("K.npy"), "--eps", 2, "--output", p("never.npy"))
    expect_error(3, "row 123", "stream", "--keys", p("Knan.npy"), "--eps", 0.1, "--block", 100, "--output", p("never.npy"))
    expect_error(2, ".npy", "stream", "--keys", p("K.npy"), "--eps", 0.1, "--output", p("never.csv"))
    expect_error(2, "block", "stream", "--keys", p("K.npy"), "--eps", 0.1, "--block", 0, "--output", p("never.npy"))
    check(not os.path.exists(p("never.npy")), "a failed stream run leaves no output file")
    with open("/dev/full", "w") as full:
        r = subprocess.run([BIN, "heavy", "--queries", p("Q.npy"), "--keys", p("K.npy"), "--eps", "0.01"],
                           stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    check(r.returncode == 1 and "standard output" in r.stderr, f"heavy to a full stdout exits 1 ({r.returncode}: {r.stderr.strip()})")
    raw = open(p("K.npy"), "rb").read()
    open(p("trunc.npy"), "wb").write(raw[: len(raw) // 2])
    expect_error(3, "trunc.npy", "scores", "--keys", p("trunc.npy"), "--output", p("x.npy"))
    expect_error(3, "trunc.npy", "stream", "--keys", p("trunc.npy"), "--eps", 0.1, "--output", p("x.npy"))
    open(p("lie.npy"), "wb").write(raw.replace(b"(400, 12)", b"(900, 12)"))
    expect_error(3, "lie.npy", "scores", "--keys", p("lie.npy"), "--output", p("x.npy"))
    open(p("junk.npy"), "wb").write(b"not an npy file at all")
    expect_error(3, "junk.npy", "scores", "--keys", p("junk.npy"), "--output", p("x.npy"))
    expect_error(3, "", "scores", "--keys", p("K.npy") + ":name", "--output", p("x.npy"))
    expect_error(1, "", "scores", "--keys", p("K.npy"), "--output", os.path.join(tmp, "no", "such", "dir", "t.npy"))
    check(not any(".tmp." in f for f in os.listdir(tmp)), "no temporary files left behind")
    r = run("heavy", "--help")
    check(r.returncode == 0 and "--verify" in r.stdout and "--threads" in r.stdout, "heavy --help")
    version = open(os.path.join(os.path.dirname(__file__), "..", "..", "CMakeLists.txt")).read()
    version = version.split("project(levattn VERSION ")[1].split()[0]
    r = run("--version")
    check(r.returncode == 0 and r.stdout.strip() == "levattn " + version, f"--version prints 'levattn {version}'")

    # press: kept keys per head against numpy (leverage top-k by SVD scores; h2o as causal column sums)
    rng = np.random.default_rng(17)
    PK = rng.standard_normal((2, 2, 48, 6)).astype(np.float32)
    PQ = (1.5 * rng.standard_normal((2, 4, 48, 6))).astype(np.float32)
    np.save(p("PK.npy"), PK)
    np.save(p("PQ.npy"), PQ)
    np.save(p("PQs.npy"), np.ascontiguousarray(PQ[:, :, :40]))
    r = run("press", "--press", "leverage", "--keys", p("PK.npy"), "--ratio", 0.75, "--output", p("pk.npy"),
            "--scores", p("ps.npy"), "--json")
    kept, scores = np.load(p("pk.npy")), np.load(p("ps.npy"))
    ok = r.returncode == 0 and kept.shape == (2, 2, 12) and kept.dtype == np.int64 and json.loads(r.stdout)["budget"] == 12
    for b in range(2):
        for h in range(2):
            tau = leverage(PK[b, h])[0]
            ok = ok and np.allclose(scores[b, h], tau, rtol=1e-6) and set(kept[b, h]) == set(np.argsort(-tau, kind="stable")[:12])
    check(ok, "press leverage --ratio 0.75: 12 of 48 keys per head, the top leverage scores of numpy's SVD")
    r = run("press", "--press", "h2o", "--keys", p("PK.npy"), "--queries", p("PQ.npy"), "--budget", 5,
            "--output", p("ph.npy"), "--scores", p("phs.npy"))
    ok = r.returncode == 0
    for b in range(2):
        for h in range(2):
            want = np.zeros(48)
            for g in (2 * h, 2 * h + 1):
                s = PQ[b, g].astype(np.float64) @ PK[b, h].astype(np.float64).T / np.sqrt(6)
                s = np.where(np.tril(np.ones((48, 48), bool)), s, -np.inf)
                w = np.exp(s - s.max(axis=1, keepdims=True))
                want += (w / w.sum(axis=1, keepdims=True)).sum(axis=0)
            got = np.load(p("phs.npy"))[b, h]
            ok = ok and np.allclose(got, want, rtol=1e-5) and list(np.load(p("ph.npy"))[b, h]) == sorted(
                np.argsort(-got, kind="stable")[:5])
    check(ok, "press h2o over grouped query heads: causal attention column sums of numpy, the top 5 kept")
    expect_error(2, "--queries", "press", "--press", "snapkv", "--keys", p("PK.npy"), "--budget", 4, "--output", p("never.npy"))
    expect_error(2, "exactly one", "press", "--press", "leverage", "--keys", p("PK.npy"), "--output", p("never.npy"))
    expect_error(2, "exceeds", "press", "--press", "leverage", "--keys", p("PK.npy"), "--budget", 49, "--output", p("never.npy"))
    expect_error(2, "ratio", "press", "--press", "leverage", "--keys", p("PK.npy"), "--ratio", 1, "--output", p("never.npy"))
    expect_error(3, "differ in rank", "press", "--press", "h2o", "--keys", p("PK.npy"), "--queries",
                 p("K.npy"), "--budget", 4, "--output", p("never.npy"))
    expect_error(3, "one query per key", "press", "--press", "h2o", "--keys", p("PK.npy"), "--queries",
                 p("PQs.npy"), "--budget", 4, "--output", p("never.npy"))
    expect_error(2, "ratio", "press", "--press", "leverage", "--keys", p("PK.npy"), "--ratio", -0.5, "--output",
                 p("never.npy"))
    expect_error(3, "not finite", "press", "--press", "key-norm", "--keys", p("Knan.npy"), "--budget", 4,
                 "--output", p("never.npy"))
    check(not os.path.exists(p("never.npy")), "a failed press run leaves no output file")

cli_helpers.finish()
