// Exact leverage scores against one OpenBLAS sgemm computing KᵀK of the same data (the bar the
// core issue sets: ≤ 1.5×), and their growth with n.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <vector>

#include "bench_data.hpp"
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

void shapes(benchmark::internal::Benchmark* b) {
  for (index_t n = index_t{1} << 17; n <= index_t{1} << 20; n *= 2) b->Args({n, 64});
  b->Args({index_t{1} << 20, 128});
  b->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
}

BENCHMARK(BM_SgemmGram)->Apply(shapes);
BENCHMARK(BM_LeverageScores)->Apply(shapes);

}  // namespace
}  // namespace levattn::bench
