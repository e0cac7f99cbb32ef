// Every heavy entry (x² attention) on the demo's planted data against brute force through the
// same BLAS, and the growth of the whole pipeline with n (m = n queries).
#include <benchmark/benchmark.h>

#include "bench_data.hpp"
#include "levattn/attention/brute_force.hpp"
#include "levattn/attention/heavy.hpp"

namespace levattn::bench {
namespace {

constexpr double kEps = 0.05;

void BM_HeavySearch(benchmark::State& state) {
  const index_t n = state.range(0);
  const PlantedData& data = planted(n, n, 64);
  index_t entries = 0, uset = 0;
  for (auto _ : state) {
    const HeavySearch search(data.key_view(), kEps);  // scores and U included
    entries = search.run(data.query_view(), [](const HeavyEntry*, index_t) {}).heavy_count;
    uset = search.universal_set().size();
  }
  state.counters["entries"] = double(entries);
  state.counters["U"] = double(uset);
}

void BM_HeavyBruteForce(benchmark::State& state) {
  const index_t n = state.range(0);
  const PlantedData& data = planted(n, n, 64);
  index_t entries = 0;
  for (auto _ : state)
    entries =
        brute_force_heavy(data.query_view(), data.key_view(), kEps, [](const HeavyEntry*, index_t) {}).heavy_count;
  state.counters["entries"] = double(entries);
}

BENCHMARK(BM_HeavySearch)
    ->RangeMultiplier(2)
    ->Range(index_t{1} << 17, index_t{1} << 20)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(1.0);
BENCHMARK(BM_HeavyBruteForce)->Arg(index_t{1} << 17)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace levattn::bench
