#!/usr/bin/python3
"""Injected faults against the CLI (run by ctest with Debian's /usr/bin/python3 and numpy):

    test_faults.py PATH/TO/levattn PATH/TO/liblevattn_fault_inject.so

* An input truncated while memory-mapped (the shim truncates it right after the map): exit 3 with
  "levattn: error: <path>: the file changed while being read", and no output file and no
  temporary left, also for `heavy`, whose output temporary is open while it reads.
* SIGTERM, SIGINT and SIGHUP while an output's temporary is complete but not yet renamed: the
  process ends by that signal, the temporary is removed, and the target is absent or, when it
  existed, still the previous complete file. SIGKILL there: the same target, the temporary left.
* Output that cannot be written: a file-size limit below the output (RLIMIT_FSIZE, `ulimit -f`:
  exit 1 "File too large", where SIGXFSZ used to kill the process and leave the temporary), a
  missing or unwritable output directory, an output path that is a directory: exit 1 with a
  one-line message, no target and no temporary. stdout closed or full: exit 1 with a message; a
  reader that stops early (`levattn heavy … | head -1`): the quiet SIGPIPE exit, status 141.
* Headers that declare absurd sizes — 2⁶² elements, n·d past 64 bits, a product of 0 — are refused
  with exit 3 before anything is allocated (the files are a header and a few bytes).
* Eight processes at once on the same input, each writing its own output, write the bytes one
  process writes; eight writing the same output path leave one complete result and no temporary.
* An address-space limit (RLIMIT_AS, `ulimit -v`): at 400 MB, which OpenBLAS's buffers for two
  threads exceed (it used to spin before main, or inside `heavy`'s BLAS calls), `scores` and
  `heavy` run with the threads that fit and write the same bytes as without a limit; at 300 and
  100 MB, where not even one thread fits, they exit 1 with an error naming the limit; an input
  larger than the limit ends `scores` with exit 1, "out of memory". None may hang (a timeout
  fails the test).
  Not under AddressSanitizer, which cannot run with an address-space limit at all.
Each case runs in a fresh directory, and every file left in it is checked.
"""
import os
import resource
import signal
import subprocess
import sys
import tempfile

import numpy as np

BIN, SHIM = sys.argv[1], sys.argv[2]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def default_signals():
    """The child starts with the default actions (a runner under nohup or in the background would
    hand it SIGHUP or SIGINT ignored, and the tools keep an ignored signal ignored)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def run(args, **faults):
    env = {**os.environ, "LD_PRELOAD": SHIM, **{k: str(v) for k, v in faults.items()}}
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, env=env, timeout=120,
                          preexec_fn=default_signals)


def main():
    rng = np.random.default_rng(5)
    keys = rng.standard_normal((65536, 64)).astype(np.float32)  # 16 MiB: far past the truncation
    queries = rng.standard_normal((65536, 64)).astype(np.float32)

    # Truncated while mapped: keys of `scores`, queries of `heavy` (its CSV temporary is open then).
    for command, victim in [("scores", "K.npy"), ("heavy", "Q.npy")]:
        with tempfile.TemporaryDirectory() as d:
            np.save(os.path.join(d, "K.npy"), keys)
            np.save(os.path.join(d, "Q.npy"), queries)
            out = os.path.join(d, "out.npy" if command == "scores" else "out.csv")
            args = [command, "--keys", os.path.join(d, "K.npy"), "--output", out]
            if command == "heavy":
                args += ["--queries", os.path.join(d, "Q.npy"), "--eps", "0.01"]
            r = run(args, LEVATTN_FAULT_TRUNCATE=os.path.join(d, victim))
            left = sorted(os.listdir(d))
            want = f"levattn: error: {os.path.join(d, victim)}: the file changed while being read"
            check(r.returncode == 3 and r.stderr.startswith(want) and left == ["K.npy", "Q.npy"],
                  f"{command} with {victim} truncated while mapped: exit 3 naming the file, nothing left "
                  f"(got {r.returncode}, {r.stderr.strip()[:120]!r}, files {left})")

    def signal_at_rename(d, sig, existed):
        """scores on 1,000 keys with `sig` raised at the rename onto tau.npy (which holds a previous
        result when `existed`): (the run, whether the target is that previous result or absent)."""
        np.save(os.path.join(d, "K.npy"), keys[:1000])
        out = os.path.join(d, "tau.npy")
        if existed:
            with open(out, "wb") as fh:
                fh.write(b"previous complete result")
        r = run(["scores", "--keys", os.path.join(d, "K.npy"), "--output", out], LEVATTN_FAULT_SIGNAL_AT_RENAME=int(sig))
        kept = open(out, "rb").read() == b"previous complete result" if existed else not os.path.exists(out)
        return r, kept

    # A signal between the complete temporary and the rename: no partial target, no temporary.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        for existed in (False, True):
            with tempfile.TemporaryDirectory() as d:
                r, kept = signal_at_rename(d, sig, existed)
                left = sorted(os.listdir(d))
                check(r.returncode == -sig and kept and left == sorted(["K.npy"] + (["tau.npy"] if existed else [])),
                      f"{sig.name} before the rename{' over an existing target' if existed else ''}: ended by the "
                      f"signal, the target {'unchanged' if existed else 'absent'}, no temporary "
                      f"(got {r.returncode}, files {left})")

    # SIGKILL cannot be caught: the temporary stays, the target is never partial.
    for existed in (False, True):
        with tempfile.TemporaryDirectory() as d:
            r, kept = signal_at_rename(d, signal.SIGKILL, existed)
            temporaries = [f for f in os.listdir(d) if f.startswith(".tau.npy.tmp.")]
            check(r.returncode == -signal.SIGKILL and kept and len(temporaries) == 1,
                  f"SIGKILL before the rename{' over an existing target' if existed else ''}: the target "
                  f"{'unchanged' if existed else 'absent'}, the complete temporary left beside it, as documented")

    # Outputs that cannot be written.
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        np.save(os.path.join(d, "K.npy"), keys)
        kin = os.path.join(d, "K.npy")

        def fsize():
            resource.setrlimit(resource.RLIMIT_FSIZE, (100000, 100000))
        cases = [("a file-size limit of 100 kB", ["--output", os.path.join(d, "out.npy")], fsize, "File too large"),
                 ("a missing output directory", ["--output", os.path.join(d, "none", "out.npy")], None,
                  "No such file or directory"),
                 ("an output path that is a directory", ["--output", os.path.join(d, "adir")], None, "Is a directory")]
        os.mkdir(os.path.join(d, "adir"))
        locked = os.path.join(d, "locked")
        os.mkdir(locked, 0o555)
        if os.getuid() == 0:  # root writes anywhere: try the unwritable directory as nobody
            def nobody():
                os.setgid(65534)
                os.setuid(65534)
            cases.append(("an unwritable output directory", ["--output", os.path.join(locked, "out.npy")], nobody,
                          "Permission denied"))
        else:
            cases.append(("an unwritable output directory", ["--output", os.path.join(locked, "out.npy")], None,
                          "Permission denied"))
        for what, args, setup, reason in cases:
            before = sorted(os.listdir(d))
            r = subprocess.run([BIN, "scores", "--keys", kin, *args], capture_output=True, text=True, timeout=120,
                               preexec_fn=setup)
            lines = r.stderr.strip().splitlines()
            check(r.returncode == 1 and len(lines) == 1 and lines[0].startswith("levattn: error:") and reason in lines[0]
                  and sorted(os.listdir(d)) == before and os.listdir(locked) == [] and os.listdir(os.path.join(d, "adir")) == [],
                  f"{what}: exit 1, one line ({lines[-1][:110] if lines else ''}), nothing written")
        q = os.path.join(d, "Q.npy")
        np.save(q, queries[:3000])
        # ε = 1e-4 over 65,536 Gaussian keys: about 1% of all entries, megabytes of CSV, far more than
        # a pipe holds, so the writer meets the closed pipe whatever the timing.
        heavy = [BIN, "heavy", "--queries", q, "--keys", kin, "--eps", "0.0001"]
        r = subprocess.run(["bash", "-c", " ".join(heavy) + " | head -1 >/dev/null; echo ${PIPESTATUS[0]}"],
                           capture_output=True, text=True, timeout=120)
        check(r.stdout.strip() == "141" and r.stderr == "", f"heavy | head -1: the quiet SIGPIPE exit (status {r.stdout.strip()})")
        r = subprocess.run(["bash", "-c", " ".join(heavy) + " >&-"], capture_output=True, text=True, timeout=120)
        check(r.returncode == 1 and r.stderr.startswith("levattn: error:") and "standard output" in r.stderr,
              f"heavy with stdout closed: exit 1 ({r.stderr.strip()[:80]})")
        with open("/dev/full", "w") as full:
            r = subprocess.run(heavy, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
        check(r.returncode == 1 and "standard output" in r.stderr, f"heavy to /dev/full: exit 1 ({r.stderr.strip()[:80]})")

    # Headers declaring absurd sizes.
    def npy_header(shape, body):
        text = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % (shape,)
        text += " " * ((64 - (10 + len(text) + 1) % 64) % 64) + "\n"
        return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode() + b"\0" * body

    with tempfile.TemporaryDirectory() as d:
        for what, shape in [("2^62 elements", (2 ** 62, 1)), ("n·d past 64 bits", (2 ** 40, 2 ** 40)),
                            ("a zero dimension", (0, 64)), ("a negative dimension", (-5, 4))]:
            path = os.path.join(d, "bad.npy")
            with open(path, "wb") as fh:
                fh.write(npy_header(shape, 0 if 0 in shape else 16))  # the zero shape's body is exact
            r = subprocess.run([BIN, "scores", "--keys", path, "--output", os.path.join(d, "out.npy")],
                               capture_output=True, text=True, timeout=60)
            check(r.returncode == 3 and r.stderr.startswith("levattn: error:") and path in r.stderr
                  and len(os.listdir(d)) == 1,
                  f"a header declaring {what} {shape}: exit 3 naming the file ({r.stderr.strip()[:110]})")

    # Eight processes at once.
    with tempfile.TemporaryDirectory() as d:
        kin = os.path.join(d, "K.npy")
        np.save(kin, keys[:20000])
        one = os.path.join(d, "one.npy")
        subprocess.run([BIN, "scores", "--keys", kin, "--output", one, "--threads", "1"], check=True,
                       capture_output=True, timeout=120)
        want = open(one, "rb").read()
        procs = [subprocess.Popen([BIN, "scores", "--keys", kin, "--output", os.path.join(d, f"own{i}.npy"),
                                   "--threads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for i in range(8)]
        codes = [p.wait(timeout=300) for p in procs]
        same = all(open(os.path.join(d, f"own{i}.npy"), "rb").read() == want for i in range(8))
        check(codes == [0] * 8 and same, f"eight processes, eight outputs: all exit 0 and equal one process's bytes")
        shared = os.path.join(d, "shared.npy")
        procs = [subprocess.Popen([BIN, "scores", "--keys", kin, "--output", shared, "--threads", "1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(8)]
        codes = [p.wait(timeout=300) for p in procs]
        left = sorted(f for f in os.listdir(d) if f.startswith("."))
        check(codes == [0] * 8 and open(shared, "rb").read() == want and left == [],
              f"eight processes, one output path: one complete result, no temporary (exits {codes}, left {left})")

    # Address-space limits.
    sanitized = b"libasan" in subprocess.run(["ldd", BIN], capture_output=True).stdout
    if sanitized:
        print("note: address-space limits not tried: AddressSanitizer cannot run under RLIMIT_AS")
    else:
        with tempfile.TemporaryDirectory() as d:
            np.save(os.path.join(d, "K.npy"), keys[:4000])
            free = [BIN, "scores", "--keys", os.path.join(d, "K.npy"), "--output", os.path.join(d, "free.npy")]
            subprocess.run(free, check=True, capture_output=True, timeout=60)
            # An input larger than the limit: a sparse 512 MiB .npy (2²¹ × 64 float32).
            big = os.path.join(d, "big.npy")
            text = "{'descr': '<f4', 'fortran_order': False, 'shape': (2097152, 64), }"
            text += " " * ((64 - (10 + len(text) + 1) % 64) % 64) + "\n"
            with open(big, "wb") as fh:
                fh.write(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode())
                fh.truncate(10 + len(text) + 2097152 * 64 * 4)

            def limit400():
                resource.setrlimit(resource.RLIMIT_AS, (400 * 1000 * 1000, 400 * 1000 * 1000))
            try:
                r = subprocess.run([BIN, "scores", "--keys", big, "--output", os.path.join(d, "big_out.npy")],
                                   capture_output=True, text=True, timeout=60, preexec_fn=limit400)
                check(r.returncode == 1 and "out of memory" in r.stderr and not os.path.exists(os.path.join(d, "big_out.npy")),
                      f"ulimit -v of 400 MB and a 512 MiB input: exit 1, out of memory ({r.stderr.strip()[-140:]})")
            except subprocess.TimeoutExpired:
                check(False, "ulimit -v of 400 MB and a 512 MiB input: the command hung")
            np.save(os.path.join(d, "Q.npy"), queries[:3000])
            for name, command in [("scores", ["scores", "--keys", os.path.join(d, "K.npy")]),
                                  ("heavy", ["heavy", "--queries", os.path.join(d, "Q.npy"), "--keys",
                                             os.path.join(d, "K.npy"), "--eps", "0.01"])]:
                suffix = ".npy" if name == "scores" else ".csv"
                free = os.path.join(d, "free" + suffix)
                subprocess.run([BIN, *command, "--output", free], check=True, capture_output=True, timeout=60)
                for megabytes, code in [(400, 0), (300, 1), (100, 1)]:
                    limit = megabytes * 1000 * 1000

                    def limited():
                        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
                    out = os.path.join(d, f"limited{megabytes}{suffix}")
                    try:
                        r = subprocess.run([BIN, *command, "--output", out, "--threads", "2"], capture_output=True,
                                           text=True, timeout=60, preexec_fn=limited)
                    except subprocess.TimeoutExpired:
                        check(False, f"{name} under ulimit -v of {megabytes} MB: the command hung")
                        continue
                    if code == 0:
                        same = os.path.exists(out) and open(out, "rb").read() == open(free, "rb").read()
                        check(r.returncode == 0 and same,
                              f"{name} under ulimit -v of {megabytes} MB: runs with the threads that fit, same bytes "
                              f"as unlimited (got {r.returncode}: {r.stderr.strip()[:140]})")
                    else:
                        check(r.returncode == 1 and r.stderr.startswith("levattn: error: the address-space limit")
                              and not os.path.exists(out),
                              f"{name} under ulimit -v of {megabytes} MB: exit 1 naming the limit, no output "
                              f"(got {r.returncode}: {r.stderr.strip()[:140]})")

    # Without a fault the shim changes nothing.
    with tempfile.TemporaryDirectory() as d:
        np.save(os.path.join(d, "K.npy"), keys[:1000])
        r = run(["scores", "--keys", os.path.join(d, "K.npy"), "--output", os.path.join(d, "tau.npy")])
        check(r.returncode == 0 and os.path.exists(os.path.join(d, "tau.npy")), "no fault asked: scores succeeds")

    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
