// Issue 4, acceptance 4 (one run, 2 threads): sketched leverage scores against the exact ones at
// n = 2²⁰, d = 128 and 256; ℓp Lewis weights (p = 1, 3) at n = 2²⁰, d = 64 against one exact
// leverage computation of the same data (target: ≤ 20×).
#include <benchmark/benchmark.h>

#include <vector>

#include "bench_data.hpp"
#include "levattn/scores/approx_leverage.hpp"
#include "levattn/scores/leverage.hpp"
#include "levattn/scores/lewis.hpp"

namespace levattn::bench {
namespace {

constexpr index_t kN = index_t{1} << 20;

void BM_ExactLeverage(benchmark::State& state) {
  const index_t d = state.range(0);
  const PlantedData& data = planted(kN, 0, d);
  std::vector<double> tau(static_cast<size_t>(kN));
  for (auto _ : state) {
    LeverageScorer scorer(d);
    scorer.fit(data.key_view());
    scorer.scores(data.key_view(), tau.data());
    benchmark::DoNotOptimize(tau.data());
  }
}

// range(1): γ in tenths; range(2): 0 automatic plan, 1 forced sketch.
void BM_ApproxLeverage(benchmark::State& state) {
  const index_t d = state.range(0);
  const PlantedData& data = planted(kN, 0, d);
  ApproxLeverageOptions o;
  o.gamma = double(state.range(1)) / 10.0;
  o.method = state.range(2) ? ApproxMethod::sketched : ApproxMethod::automatic;
  if (state.range(2) > 1) o.jl_columns = state.range(2);
  std::vector<double> tau(static_cast<size_t>(kN));
  ApproxLeveragePlan plan;
  for (auto _ : state) {
    ApproxLeverageScorer scorer(d, o);
    scorer.fit(data.key_view());
    scorer.scores(data.key_view(), tau.data());
    plan = scorer.plan();
    benchmark::DoNotOptimize(tau.data());
  }
  state.counters["sketched"] = plan.sketched;
  state.counters["m"] = double(plan.sketch_rows);
  state.counters["k"] = double(plan.jl_columns);
  state.counters["failure"] = plan.failure();
  state.counters["float"] = plan.float_scores;
  state.counters["rounding"] = plan.rounding;
}

// range(0): p in tenths.
void BM_LewisWeights(benchmark::State& state) {
  const double p = double(state.range(0)) / 10.0;
  const PlantedData& data = planted(kN, 0, 64);
  LewisWeights w;
  for (auto _ : state) {
    w = lewis_weights(data.key_view(), p);
    benchmark::DoNotOptimize(w.weights.data());
  }
  state.counters["evaluations"] = double(w.iterations);
  state.counters["residual"] = w.residual;
}

BENCHMARK(BM_ExactLeverage)->Arg(64)->Arg(128)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ApproxLeverage)
    ->Args({64, 5, 0})
    ->Args({128, 5, 0})
    ->Args({256, 5, 0})
    ->Args({128, 1, 0})
    ->Args({256, 1, 0})
    ->Args({256, 5, 1})
    ->Args({128, 5, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_LewisWeights)->Arg(10)->Arg(30)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace levattn::bench
