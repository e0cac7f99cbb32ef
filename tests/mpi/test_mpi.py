#!/usr/bin/python3
"""levattn-mpi against levattn: `mpirun -np P levattn-mpi select` writes the bytes that
`levattn select` writes, for P = 1..4, on adversarial keys; errors on any rank end every rank
with the CLI's exit code and no output. Usage: test_mpi.py LEVATTN LEVATTN_MPI MPIRUN"""
import os
import subprocess
import sys
import tempfile

import numpy as np

CLI, MPI, MPIRUN = sys.argv[1:4]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def mpirun(P, *args):
    cmd = [MPIRUN, "--oversubscribe", "--allow-run-as-root", "-np", str(P), MPI, *map(str, args), "--threads", "1"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def cli(*args):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=300)


with tempfile.TemporaryDirectory() as tmp:
    p = lambda name: os.path.join(tmp, name)
    rng = np.random.default_rng(3)
    inputs = {}
    K = rng.standard_normal((3001, 16)); K[::97] *= 25
    inputs["heavy_rows"] = K.astype(np.float32)
    L = rng.standard_normal((2000, 4)) @ rng.standard_normal((4, 24))
    inputs["low_rank"] = L.astype(np.float32)
    D = np.repeat(rng.standard_normal((40, 8)), 50, axis=0); D[7] *= 1e3
    inputs["duplicated"] = D.astype(np.float32)
    S = rng.standard_normal((1500, 10)) * np.logspace(-15, 15, 10); S[:, 3] = 0
    inputs["badly_scaled_zero_column"] = S.astype(np.float32)
    inputs["tiny_n"] = rng.standard_normal((3, 5)).astype(np.float32)  # fewer rows than ranks
    for name, keys in inputs.items():
        np.save(p(name + ".npy"), keys)
        for mode in (["--eps", 0.02], ["--top-k", 3]):
            want = cli("select", "--keys", p(name + ".npy"), *mode, "--output", p("want.npy"))
            # Every P on two inputs; the other inputs at the uneven splits (mpirun is slow to start).
            every = name in ("heavy_rows", "badly_scaled_zero_column") and mode[0] == "--eps"
            for P in (1, 2, 3, 4) if every else (3, 4):
                r = mpirun(P, "select", "--keys", p(name + ".npy"), *mode, "--output", p("got.npy"))
                same = r.returncode == 0 and want.returncode == 0 and \
                    open(p("want.npy"), "rb").read() == open(p("got.npy"), "rb").read()
                check(same, f"{name} {' '.join(map(str, mode))} P={P}: levattn-mpi writes levattn's bytes"
                            + ("" if same else f" ({r.returncode}: {r.stderr.strip()[:300]})"))
                if os.path.exists(p("got.npy")):
                    os.remove(p("got.npy"))

    bad = inputs["heavy_rows"].copy(); bad[2900, 5] = np.nan
    np.save(p("nan.npy"), bad)
    r = mpirun(3, "select", "--keys", p("nan.npy"), "--eps", 0.1, "--output", p("never.npy"))
    check(r.returncode == 3 and "row 2900" in r.stderr and not os.path.exists(p("never.npy")),
          f"a NaN in the last rank's rows: exit 3 naming row 2900, no output ({r.returncode}: {r.stderr.strip()[:200]})")
    r = mpirun(2, "select", "--keys", p("heavy_rows.npy"), "--eps", 0, "--output", p("never.npy"))
    check(r.returncode == 3 and "eps" in r.stderr, f"eps 0: exit 3 ({r.returncode})")
    r = mpirun(2, "select", "--keys", p("heavy_rows.npy"), "--top-k", 5000, "--output", p("never.npy"))
    check(r.returncode == 3 and "top-k" in r.stderr, f"top-k > n: exit 3 ({r.returncode})")
    r = mpirun(2, "select", "--keys", p("missing.npy"), "--eps", 0.1, "--output", p("never.npy"))
    check(r.returncode == 3 and "missing.npy" in r.stderr, f"missing file: exit 3 ({r.returncode})")
    r = mpirun(2, "select", "--keys", p("heavy_rows.npy"), "--eps", 0.1, "--output", p("never.csv"))
    check(r.returncode == 2, f"output not .npy: exit 2 ({r.returncode})")
    r = mpirun(2, "select", "--keys", p("heavy_rows.npy"), "--output", p("never.npy"))
    check(r.returncode == 2, f"neither --eps nor --top-k: exit 2 ({r.returncode})")
    check(not os.path.exists(p("never.npy")), "failed runs leave no output")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
