// One-pass selection throughput (issue 5, acceptance 3: ≥ 1,000,000 keys/s at d = 64, ε = 0.01,
// 2 threads): keys pushed from memory in blocks, the final set included. The CLI's figure from
// a file in page cache is measured with `levattn stream --json` (see BENCHMARKS.md).
#include <benchmark/benchmark.h>

#include <algorithm>

#include "bench_data.hpp"
#include "levattn/select/stream_selector.hpp"

namespace levattn::bench {
namespace {

void BM_StreamSelect(benchmark::State& state) {
  const index_t n = state.range(0), d = state.range(1), block = state.range(2);
  const PlantedData& data = planted(n, 0, d);
  index_t kept = 0, held = 0;
  for (auto _ : state) {
    StreamSelector selector(d, {.eps = 0.01});
    for (index_t r = 0; r < n; r += block) selector.push(data.key_view().rows_range(r, std::min(n, r + block)));
    kept = selector.result().set.size();
    held = selector.peak_retained();
  }
  state.counters["keys/s"] = benchmark::Counter(double(n), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["kept"] = double(kept);
  state.counters["peak_held"] = double(held);
}

BENCHMARK(BM_StreamSelect)
    ->Args({index_t{1} << 20, 64, 65536})
    ->Args({index_t{1} << 20, 64, 4096})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(1.0);

}  // namespace
}  // namespace levattn::bench
