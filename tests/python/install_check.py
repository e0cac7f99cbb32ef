#!/usr/bin/env python3
"""The README's offline install, end to end (run by ctest as `python_install`):

    install_check.py REPO_ROOT

1. copies the sources pip needs into a scratch folder (so the source tree stays clean),
2. `pip wheel --no-build-isolation --no-index` there, in a venv made with --system-site-packages,
3. installs that wheel into a second, new venv (as a second machine would) and, from a folder
   outside the sources, checks `import levattn`, its version, and one attention call against a
   float64 numpy reference.
"""
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCES = ["CMakeLists.txt", "cmake", "include", "src", "tools", "mpi", "python"]
IGNORE = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")

CHECK = r"""
import numpy as np, levattn
print(levattn.__version__)
rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal(s).astype(np.float32) for s in [(40, 16), (50, 16), (50, 8)])
s = q.astype(float) @ k.T.astype(float) / 4.0
w = np.exp(s - s.max(1, keepdims=True))
ref = (w / w.sum(1, keepdims=True)) @ v.astype(float)
err = np.abs(levattn.attention(q, k, v) - ref).max() / np.abs(ref).max()
assert err < 1e-5, err
print("attention ok", err)
"""


def run(*args, cwd=None):
    print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.run([str(a) for a in args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def main():
    root = Path(sys.argv[1]).resolve()
    version = re.search(r"project\(levattn VERSION ([0-9.]+)", (root / "CMakeLists.txt").read_text()).group(1)
    with tempfile.TemporaryDirectory(prefix="levattn-install-") as scratch:
        scratch = Path(scratch)
        src = scratch / "src"
        src.mkdir()
        for name in SOURCES:
            path = root / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=IGNORE)
            else:
                shutil.copy2(path, src / name)
        build_env, user_env, wheels = scratch / "build-env", scratch / "user-env", scratch / "wheels"
        run("/usr/bin/python3", "-m", "venv", "--system-site-packages", build_env)
        run(build_env / "bin" / "pip", "wheel", "--no-build-isolation", "--no-index", "--no-deps",
            "-w", wheels, src / "python")
        built = sorted(wheels.glob("levattn-*.whl"))
        assert len(built) == 1, built
        run("/usr/bin/python3", "-m", "venv", "--system-site-packages", user_env)
        run(user_env / "bin" / "pip", "install", "--no-index", built[0])
        out = run(user_env / "bin" / "python", "-c", CHECK, cwd=scratch)
        print(out)
        assert out.splitlines()[0] == version, (out, version)
    print("install check passed: wheel", built[0].name)


if __name__ == "__main__":
    main()
