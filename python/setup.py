"""Builds the extension levattn._levattn with CMake from the repository root (the library and
python/src), for `pip install --no-build-isolation ./python` and `pip wheel` run on a checkout of
the levattn repository (the build reads ../include, ../src, ../cmake and ../CMakeLists.txt, so an sdist of
this folder alone cannot build).

Needs Debian's cmake, g++, pybind11-dev, python3-dev, libopenblas-openmp-dev, libeigen3-dev and
nlohmann-json3-dev (the root Makefile's `make deps` installs them). Set LEVATTN_BUILD_JOBS to
change the build's parallelism (default: every core).
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def project_version() -> str:
    text = (ROOT / "CMakeLists.txt").read_text()
    match = re.search(r"project\(levattn VERSION ([0-9.]+)", text)
    if not match:
        raise RuntimeError("no project version in CMakeLists.txt")
    return match.group(1)


class CMakeBuild(build_ext):
    """Configures the repository with only the library and the Python extension, builds the
    target _levattn, and puts the module where setuptools packs it."""

    def build_extension(self, ext: Extension) -> None:
        build = Path(self.build_temp).resolve() / "cmake"
        build.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                        "-DLEVATTN_BUILD_TESTS=OFF", "-DLEVATTN_BUILD_BENCH=OFF", "-DLEVATTN_BUILD_TORCH=OFF",
                        "-DLEVATTN_BUILD_TOOLS=OFF", "-DLEVATTN_BUILD_MPI=OFF", "-DLEVATTN_INSTALL=OFF",
                        "-DLEVATTN_BUILD_PYTHON=ON", f"-DPython3_EXECUTABLE={sys.executable}"], check=True)
        jobs = os.environ.get("LEVATTN_BUILD_JOBS", str(os.cpu_count() or 1))
        subprocess.run(["cmake", "--build", str(build), "--target", "_levattn", "-j", jobs], check=True)
        built = next((build / "python" / "levattn").glob("_levattn*.so"))
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, target)


setup(version=project_version(), ext_modules=[Extension("levattn._levattn", sources=[])],
      cmdclass={"build_ext": CMakeBuild})
