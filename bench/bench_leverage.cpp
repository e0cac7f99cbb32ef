// Exact leverage scores against one OpenBLAS sgemm computing KᵀK of the same data (the bar the
// core issue sets: ≤ 1.5×), and their growth with n; the same from the same keys rounded to bf16
// and f16 (issue 14: ≤ 0.8× the f32 time at n = 2^20, d = 64).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <map>
#include <type_traits>
#include <utility>
#include <vector>

#include "bench_data.hpp"
#include "levattn/core/half.hpp"
#include "levattn/scores/leverage.hpp"

namespace levattn::bench {
namespace {

void BM_SgemmGram(benchmark::State& state) {
  const index_t n = state.range(0), d = state.range(1);
  const PlantedData& data = planted(n, 0, d);
  std::vector<float> G(static_cast<size_t>(d * d));
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(d), int(d), int(n), 1.0f, data.keys.data(), int(d),
                data.keys.data(), int(d), 0.0f, G.data(), int(d));
    benchmark::DoNotOptimize(G.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * n * d * d, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void BM_LeverageScores(benchmark::State& state) {
  const index_t n = state.range(0), d = state.range(1);
  const PlantedData& data = planted(n, 0, d);
  std::vector<double> tau(static_cast<size_t>(n));
  for (auto _ : state) {
    LeverageScorer scorer(d);
    scorer.fit(data.key_view());
    scorer.scores(data.key_view(), tau.data());
    benchmark::DoNotOptimize(tau.data());
  }
}

// The planted keys of shape (n, d) rounded to T (Half or BFloat16), made once per shape.
template <class T>
const std::vector<T>& rounded_keys(index_t n, index_t d) {
  static std::map<std::pair<index_t, index_t>, std::vector<T>> cache;
  auto& keys = cache[{n, d}];
  if (keys.empty()) {
    const PlantedData& data = planted(n, 0, d);
    keys.resize(data.keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      if constexpr (std::is_same_v<T, Half>)
        keys[i] = to_half(data.keys[i]);
      else
        keys[i] = to_bfloat16(data.keys[i]);
    }
  }
  return keys;
}

// fit + scores from 16-bit keys: what BM_LeverageScores does from float ones.
template <class T>
void BM_LeverageScores16(benchmark::State& state) {
  const index_t n = state.range(0), d = state.range(1);
  const MatrixView<const T> keys(rounded_keys<T>(n, d).data(), n, d);
  std::vector<double> tau(static_cast<size_t>(n));
  for (auto _ : state) {
    LeverageScorer scorer(d);
    scorer.fit(keys);
    scorer.scores(keys, tau.data());
    benchmark::DoNotOptimize(tau.data());
  }
}

void BM_LeverageScoresBF16(benchmark::State& state) { BM_LeverageScores16<BFloat16>(state); }
void BM_LeverageScoresF16(benchmark::State& state) { BM_LeverageScores16<Half>(state); }

void shapes16(benchmark::internal::Benchmark* b) {
  b->Args({index_t{1} << 20, 64});
  b->Args({index_t{1} << 20, 128});
  b->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
}

void shapes(benchmark::internal::Benchmark* b) {
  for (index_t n = index_t{1} << 17; n <= index_t{1} << 20; n *= 2) b->Args({n, 64});
  b->Args({index_t{1} << 20, 128});
  b->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
}

BENCHMARK(BM_SgemmGram)->Apply(shapes);
BENCHMARK(BM_LeverageScores)->Apply(shapes);
BENCHMARK(BM_LeverageScoresBF16)->Apply(shapes16);
BENCHMARK(BM_LeverageScoresF16)->Apply(shapes16);

}  // namespace
}  // namespace levattn::bench
