#!/usr/bin/env bash
# The consumer project (tests/consumer/) built three ways against this source tree, as another
# project would use levattn, and run:
#   1. installed with `cmake --install` into a fresh prefix, found with find_package(levattn CONFIG);
#   2. the same prefix through pkg-config (levattn.pc);
#   3. the source tree pulled in with add_subdirectory;
#   4. the library built shared (BUILD_SHARED_LIBS=ON), installed, found with find_package.
# Also checks that the umbrella header levattn/levattn.hpp includes every public header.
# Usage: tests/consumer/run.sh BUILD_DIR (a configured and built levattn build tree)
#        tests/consumer/run.sh --system  (against an install under /usr, e.g. the .deb: modes 1 and 2)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
version=$(sed -n 's/^project(levattn VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

missing=$(cd "$root/include" && find levattn -name '*.hpp' ! -name levattn.hpp ! -name version.hpp | sort |
          while read -r h; do grep -qx "#include \"$h\"" levattn/levattn.hpp || echo "$h"; done)
if [[ -n $missing ]]; then
  echo "levattn/levattn.hpp does not include: $missing" >&2
  exit 1
fi

build_and_run() {  # name, then cmake arguments
  local name=$1; shift
  echo "== consumer: $name"
  cmake -S "$here" -B "$work/$name" -DCMAKE_BUILD_TYPE=Release "$@" > "$work/$name.log" 2>&1 ||
    { cat "$work/$name.log"; return 1; }
  cmake --build "$work/$name" -j "${JOBS:-2}" >> "$work/$name.log" 2>&1 || { cat "$work/$name.log"; return 1; }
  "$work/$name/consumer" "$version"
}

if [[ ${1:-} == --system ]]; then
  build_and_run package -DLEVATTN_CONSUMER_MODE=package
  build_and_run pkgconfig -DLEVATTN_CONSUMER_MODE=pkgconfig
  exit 0
fi
build=${1:?usage: run.sh BUILD_DIR | --system}
prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" > "$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
build_and_run package -DLEVATTN_CONSUMER_MODE=package -DCMAKE_PREFIX_PATH="$prefix"
PKG_CONFIG_PATH="$(dirname "$(find "$prefix" -name levattn.pc)")" \
  build_and_run pkgconfig -DLEVATTN_CONSUMER_MODE=pkgconfig
build_and_run source -DLEVATTN_CONSUMER_MODE=source -DLEVATTN_SOURCE_DIR="$root"

echo "== levattn as a shared library"
shared="$work/levattn-shared"
{ cmake -S "$root" -B "$shared" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DLEVATTN_INSTALL=ON \
    -DLEVATTN_BUILD_TOOLS=OFF -DLEVATTN_BUILD_TESTS=OFF -DLEVATTN_BUILD_BENCH=OFF -DLEVATTN_BUILD_TORCH=OFF \
    -DLEVATTN_BUILD_PYTHON=OFF -DLEVATTN_BUILD_MPI=OFF &&
  cmake --build "$shared" -j "${JOBS:-2}" && cmake --install "$shared" --prefix "$work/prefix-shared"; } \
  > "$work/shared.log" 2>&1 || { cat "$work/shared.log"; exit 1; }
soname=$(objdump -p "$(find "$work/prefix-shared" -name 'liblevattn.so.*.*.*')" | awk '/SONAME/ {print $2}')
if [[ $soname != "liblevattn.so.${version%.*}" ]]; then
  echo "shared library SONAME is '$soname', expected liblevattn.so.${version%.*}" >&2
  exit 1
fi
echo "SONAME $soname"
build_and_run shared -DLEVATTN_CONSUMER_MODE=package -DCMAKE_PREFIX_PATH="$work/prefix-shared"
