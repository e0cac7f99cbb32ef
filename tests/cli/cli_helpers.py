"""What the CLI end-to-end scripts share (test_cli.py, test_half_inputs.py): running the tool,
recording checks, and a float64 softmax attention reference independent of the library. The scripts
run as /usr/bin/python3 tests/cli/SCRIPT.py, so this folder is first on sys.path and `import
cli_helpers` finds this file."""
import subprocess
import sys

import numpy as np

failures = []


def run(binary, *args):
    """binary with args (each str()-ed), output captured as text, at most 300 s."""
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=300)


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def finish():
    """Prints the number of failed checks and exits, non-zero if any failed."""
    print(f"{len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


def softmax_attention(Q, K, V, scale, causal=False):
    """Exact softmax attention in float64, bottom-right causal mask: (outputs, log-sum-exp per row)."""
    S = scale * (Q.astype(np.float64) @ K.astype(np.float64).T)
    if causal:
        off = K.shape[0] - Q.shape[0]
        S = np.where(np.arange(K.shape[0])[None, :] <= np.arange(Q.shape[0])[:, None] + off, S, -np.inf)
    W = np.exp(S - S.max(axis=1, keepdims=True))
    return (W @ V.astype(np.float64)) / W.sum(axis=1, keepdims=True), np.log(W.sum(axis=1)) + S.max(axis=1)
