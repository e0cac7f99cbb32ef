#!/usr/bin/python3
"""levattn-mpi against levattn: `mpirun -np P levattn-mpi select|heavy` writes the bytes that
`levattn select|heavy` writes, for P = 1..4, on adversarial keys (and, for heavy, queries whose
rows fall back to every key) and on float16 keys, which its --json says it read as float16;
errors on any rank end every rank with the CLI's exit code and no output; a rank killed (SIGKILL)
mid-run ends the whole job within a minute with a non-zero status and no output file or
temporary. Usage: test_mpi.py LEVATTN LEVATTN_MPI MPIRUN"""
import os
import signal
import subprocess
import sys
import tempfile
import time

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

    # heavy: queries aimed at keys, a zero row, and (cut_direction) rows along a direction below
    # the rank cut-off, which fall back to every key.
    C = rng.standard_normal((2500, 12)); C[:, 11] = C[:, 10] + 1e-9 * C[:, 0]
    inputs["cut_direction"] = C.astype(np.float32)
    np.save(p("cut_direction.npy"), inputs["cut_direction"])
    for name in ("heavy_rows", "cut_direction", "duplicated", "tiny_n"):
        keys = inputs[name]
        Q = keys[rng.integers(0, len(keys), 700)] + 0.1 * rng.standard_normal((700, keys.shape[1]))
        Q[5] = 0
        if name == "cut_direction":
            Q[::3] = 0
            Q[::3, 10], Q[::3, 11] = -1, 1
        np.save(p("q.npy"), Q.astype(np.float32))
        want = cli("heavy", "--queries", p("q.npy"), "--keys", p(name + ".npy"), "--eps", 0.01,
                   "--output", p("want.csv"), "--json")
        wanted = open(p("want.csv"), "rb").read() if want.returncode == 0 else b""
        rows = wanted.count(b"\n") - 1
        check(want.returncode == 0 and rows > 0, f"heavy {name}: levattn finds {rows} entries")
        if name == "cut_direction":
            check('"fallback_queries":' in want.stdout and '"fallback_queries":0' not in want.stdout.replace(" ", ""),
                  f"heavy {name}: rows fall back to every key ({want.stdout.strip()[:200]})")
        for P in (1, 2, 3, 4) if name in ("heavy_rows", "cut_direction") else (2, 4):
            r = mpirun(P, "heavy", "--queries", p("q.npy"), "--keys", p(name + ".npy"), "--eps", 0.01,
                       "--output", p("got.csv"), "--json")
            same = r.returncode == 0 and os.path.exists(p("got.csv")) and open(p("got.csv"), "rb").read() == wanted
            check(same, f"heavy {name} P={P}: levattn-mpi writes levattn's bytes"
                        + ("" if same else f" ({r.returncode}: {r.stderr.strip()[:300]})"))
            if os.path.exists(p("got.csv")):
                os.remove(p("got.csv"))
    r = mpirun(3, "heavy", "--queries", p("q.npy"), "--keys", p("tiny_n.npy"), "--eps", 0.01)
    check(r.returncode == 0 and r.stdout.encode() == wanted, f"heavy to stdout: levattn's bytes ({r.returncode})")

    # float16 keys, little- and big-endian (the library's float16 results equal its float32 ones bit
    # for bit, so the bytes alone cannot tell a float32 copy; --json's keys_type says which type
    # the ranks held): levattn's bytes, also with fewer rows than ranks.
    H = inputs["heavy_rows"].astype(np.float16)
    np.save(p("f16.npy"), H)
    np.save(p("f16_be.npy"), H.astype(">f2"))
    np.save(p("f16_tiny.npy"), inputs["tiny_n"].astype(np.float16))
    want = cli("select", "--keys", p("f16_tiny.npy"), "--top-k", 2, "--output", p("want.npy"))
    wanted = open(p("want.npy"), "rb").read() if want.returncode == 0 else b""
    r = mpirun(4, "select", "--keys", p("f16_tiny.npy"), "--top-k", 2, "--output", p("got.npy"), "--json")
    same = r.returncode == 0 and wanted and open(p("got.npy"), "rb").read() == wanted
    check(same and '"keys_type":"float16"' in r.stdout.replace(" ", ""),
          f"select on 3 float16 keys P=4: levattn's bytes ({r.returncode}: {(r.stderr + r.stdout).strip()[:300]})")
    Q = H[rng.integers(0, len(H), 500)].astype(np.float32) + 0.1 * rng.standard_normal((500, 16))
    np.save(p("q16.npy"), Q.astype(np.float32))
    for keys in ("f16.npy", "f16_be.npy"):
        want = cli("select", "--keys", p(keys), "--eps", 0.02, "--output", p("want.npy"))
        wanted = open(p("want.npy"), "rb").read() if want.returncode == 0 else b""
        for P in (1, 3):
            r = mpirun(P, "select", "--keys", p(keys), "--eps", 0.02, "--output", p("got.npy"), "--json")
            same = r.returncode == 0 and wanted and open(p("got.npy"), "rb").read() == wanted
            kept = '"keys_type":"float16"' in r.stdout.replace(" ", "")
            check(same and kept, f"select on {keys} P={P}: levattn's bytes, keys read as float16"
                                 + ("" if same and kept else f" ({r.returncode}: {(r.stderr + r.stdout).strip()[:300]})"))
        want = cli("heavy", "--queries", p("q16.npy"), "--keys", p(keys), "--eps", 0.01, "--output", p("want.csv"))
        wanted = open(p("want.csv"), "rb").read() if want.returncode == 0 else b""
        check(wanted.count(b"\n") > 1, f"heavy on {keys}: levattn finds entries ({want.returncode})")
        for P in (2, 4):
            r = mpirun(P, "heavy", "--queries", p("q16.npy"), "--keys", p(keys), "--eps", 0.01,
                       "--output", p("got.csv"), "--json")
            same = r.returncode == 0 and open(p("got.csv"), "rb").read() == wanted
            kept = '"keys_type":"float16"' in r.stdout.replace(" ", "")
            check(same and kept, f"heavy on {keys} P={P}: levattn's bytes, keys read as float16"
                                 + ("" if same and kept else f" ({r.returncode}: {(r.stderr + r.stdout).strip()[:300]})"))
    for name in ("want.npy", "got.npy", "want.csv", "got.csv"):
        if os.path.exists(p(name)):
            os.remove(p(name))
    H[2950, 4] = np.inf
    np.save(p("f16_inf.npy"), H)
    np.save(p("f16_inf_be.npy"), H.astype(">f2"))
    for name in ("f16_inf.npy", "f16_inf_be.npy"):
        r = mpirun(3, "select", "--keys", p(name), "--eps", 0.1, "--output", p("never.npy"))
        check(r.returncode == 3 and "row 2950" in r.stderr and not os.path.exists(p("never.npy")),
              f"an infinity in float16 keys ({name}): exit 3 naming row 2950, no output "
              f"({r.returncode}: {r.stderr.strip()[:200]})")

    Q = rng.standard_normal((900, 16)).astype(np.float32); Q[850, 3] = np.inf
    np.save(p("q_inf.npy"), Q)
    r = mpirun(3, "heavy", "--queries", p("q_inf.npy"), "--keys", p("heavy_rows.npy"), "--eps", 0.05,
               "--output", p("never.csv"))
    check(r.returncode == 3 and "queries: row 850" in r.stderr,
          f"heavy: an infinity in the last rank's queries: exit 3 naming row 850 ({r.returncode}: {r.stderr.strip()[:200]})")
    np.save(p("q_wide.npy"), np.ones((10, 17), np.float32))
    r = mpirun(2, "heavy", "--queries", p("q_wide.npy"), "--keys", p("heavy_rows.npy"), "--eps", 0.05,
               "--output", p("never.csv"))
    check(r.returncode == 3 and "columns" in r.stderr, f"heavy: 17 query columns, 16 key columns: exit 3 ({r.returncode})")
    np.save(p("keys3d.npy"), np.ones((2, 10, 16), np.float32))
    r = mpirun(2, "heavy", "--queries", p("q_inf.npy"), "--keys", p("keys3d.npy"), "--eps", 0.05,
               "--output", p("never.csv"))
    check(r.returncode == 3 and "keys3d.npy" in r.stderr, f"heavy: 3-D keys: exit 3 naming the file ({r.returncode})")
    for extra, why in ((["--p", 3], "p 3"), (["--verify", 10], "verify"), (["--json"], "json without output")):
        out = [] if why == "json without output" else ["--output", p("never.csv")]
        r = mpirun(2, "heavy", "--queries", p("q.npy"), "--keys", p("tiny_n.npy"), "--eps", 0.05, *out, *extra)
        check(r.returncode == 2 and r.stderr.strip(), f"heavy {why}: exit 2 with a message ({r.returncode}: {r.stderr.strip()[:200]})")
    r = mpirun(2, "heavy", "--queries", p("q.npy"), "--keys", p("tiny_n.npy"), "--eps", 2, "--output", p("never.csv"))
    check(r.returncode == 3 and "eps" in r.stderr, f"heavy eps 2: exit 3 ({r.returncode})")
    check(not os.path.exists(p("never.csv")), "failed heavy runs leave no output")

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

    # A rank killed mid-run: a heavy search of a few seconds (20,000 queries over 200,000 keys at
    # ε = 1e-4, where the universal set holds most keys); one rank gets SIGKILL once both run.
    np.save(p("big_keys.npy"), rng.standard_normal((200000, 64)).astype(np.float32))
    np.save(p("big_queries.npy"), rng.standard_normal((20000, 64)).astype(np.float32))
    out = p("killed.csv")
    job = subprocess.Popen([MPIRUN, "--oversubscribe", "--allow-run-as-root", "-np", "2", MPI, "heavy", "--queries",
                            p("big_queries.npy"), "--keys", p("big_keys.npy"), "--eps", "0.0001", "--output", out,
                            "--threads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ranks():
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(os.path.basename(MPI).encode()) and out.encode() in cmd:
                found.append(int(pid))
        return found

    start, victims = time.time(), []
    while time.time() - start < 30 and job.poll() is None and len(victims) < 2:
        victims = ranks()
        time.sleep(0.05)
    killed_while_running = len(victims) == 2 and job.poll() is None
    if killed_while_running:
        time.sleep(0.5)
        try:
            os.kill(victims[0], signal.SIGKILL)
        except ProcessLookupError:  # the job ended first (it takes about ten seconds here)
            killed_while_running = False
    try:
        code = job.wait(timeout=60)
    except subprocess.TimeoutExpired:
        job.kill()
        code = None
    leftovers = [f for f in os.listdir(tmp) if f.startswith(".killed.csv.tmp")]
    check(killed_while_running and code not in (None, 0) and not ranks() and not os.path.exists(out) and not leftovers,
          f"a rank killed mid-run: the job ends within 60 s (status {code}), no rank left, no output, no temporary "
          f"(killed while running: {killed_while_running}, left {leftovers})")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
