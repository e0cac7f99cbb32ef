// Decode through a KVCache: one step appends a key and a value and attends one query
// (d = d_v = 64, budget 256, one thread; the cache is filled past its budget first, so every
// step evicts). range(0): the policy (0 window, 1 leverage); range(1): 0 softmax, 1 pow:2.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <random>
#include <vector>

#include "levattn/attention/kv_cache.hpp"

namespace levattn::bench {
namespace {

void BM_KVCacheStep(benchmark::State& state) {
  constexpr index_t d = 64, warm = 1024, stream = 1 << 14;
  std::mt19937 generator(1);
  std::normal_distribution<float> normal;
  std::vector<float> keys(stream * d), values(stream * d), queries(stream * d), out(d);
  for (std::vector<float>* x : {&keys, &values, &queries})
    for (float& e : *x) e = normal(generator);
  KVCacheOptions options;
  options.policy = state.range(0) == 0 ? CachePolicy::window : CachePolicy::leverage;
  options.budget = 256;
  if (state.range(1) == 1) options.attention.f = ScoreFunction::power(2.0);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  KVCache cache(d, d, options);
  for (index_t i = 0; i < warm; ++i) cache.append(&keys[i * d], &values[i * d]);
  index_t i = warm;
  for (auto _ : state) {
    const index_t row = i++ % stream;
    cache.append(&keys[row * d], &values[row * d]);
    cache.attend(&queries[row * d], out.data());
    benchmark::DoNotOptimize(out.data());
  }
  omp_set_num_threads(threads);
}

BENCHMARK(BM_KVCacheStep)->ArgsProduct({{0, 1}, {0, 1}})->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace levattn::bench
