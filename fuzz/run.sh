#!/usr/bin/env bash
# make fuzz: every harness for SECONDS seconds (default 60), from the committed seeds in
# fuzz/corpus/<harness> plus what earlier runs found (build/fuzz/corpus/<harness>, which grows).
# A finding stops the run: libFuzzer prints it and writes the input to build/fuzz/findings/;
# fix it and add that input to fuzz/corpus/<harness> as a regression seed. Exit 0 only if every
# harness ran clean. fuzz_cli's own stdout and stderr (the commands' output and error messages)
# go to /dev/null; libFuzzer's and the sanitizers' reports still print.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
mkdir -p build/fuzz/findings
for h in npy safetensors npy_rows cli; do
  mkdir -p "build/fuzz/corpus/$h"
  extra=(-max_len=4096)
  [ "$h" = cli ] && extra=(-max_len=1024 -dict=fuzz/cli.dict -close_fd_mask=3)
  echo "== fuzz_$h: $SECONDS_EACH s"
  ./build/fuzz/fuzz_$h "build/fuzz/corpus/$h" "fuzz/corpus/$h" -max_total_time="$SECONDS_EACH" \
    -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -artifact_prefix="$PWD/build/fuzz/findings/" \
    -print_final_stats=1 "${extra[@]}" 2>&1 |
    grep -E "^stat::number_of_executed_units|^==|^ +#[0-9]+ |ERROR|SUMMARY|Test unit written|^#[0-9]+ +DONE"
done
