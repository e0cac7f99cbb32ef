// Approximate leverage scores against a double SVD: the per-key failure probability the plan
// states must bound the fraction of scores outside [τ/(1+γ), (1+γ)τ] ⊂ (1±γ)τ.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "levattn/scores/approx_leverage.hpp"
#include "levattn/select/universal_set.hpp"
#include "reference.hpp"
#include "scores/beta_distribution.hpp"

namespace levattn::test {
namespace {

struct Tally {
  index_t scores = 0, outside = 0, outside_one_pm = 0, instances = 0;
  double expected = 0.0;  // Σ over scores of the stated per-key failure probability
};

void score_instance(const Floats& K, const ApproxLeverageOptions& o, Tally& tally, const std::string& what) {
  ApproxLeverageScorer scorer(K.cols, o);
  scorer.fit(K.view());
  ASSERT_TRUE(scorer.plan().sketched) << what;
  if (o.jl_columns == 0) {
    EXPECT_LE(scorer.plan().failure(), o.failure) << what;
  }
  const std::vector<double> got = scorer.scores(K.view());
  const std::vector<double> tau = leverage_reference(K, kDefaultRcond);
  for (size_t j = 0; j < tau.size(); ++j) {
    if (tau[j] < 1e-9) continue;  // keys outside the numerical column space
    ++tally.scores;
    tally.expected += scorer.plan().failure();
    const double ratio = got[j] / tau[j];
    tally.outside += (ratio < 1.0 / (1.0 + o.gamma) || ratio > 1.0 + o.gamma) ? 1 : 0;
    tally.outside_one_pm += (ratio < 1.0 - o.gamma || ratio > 1.0 + o.gamma) ? 1 : 0;
  }
  ++tally.instances;
}

// Acceptance 2: ≥ 100 seeded instances for each γ, random and adversarial keys, both regimes:
// no projection (k = rank, planned for δ = 0.05) and a JL projection k = d/2 (whose stated
// failure at these small d is larger; each key counts with its own stated probability).
TEST(ApproxLeverage, FailureFractionStaysUnderTheStatedProbability) {
  const char* kinds_used[] = {"gaussian", "heavy_tailed", "low_rank", "badly_scaled", "duplicated", "cond1e3"};
  for (double gamma : {0.1, 0.5}) {
    Tally tallies[2];  // [no projection, projection]
    for (std::uint64_t seed = 1; seed <= 108; ++seed) {
      const std::string kind = kinds_used[seed % 6];
      const index_t d = seed % 2 ? 8 : 20;
      const Floats K = make_keys(kind, 1500, d, seed);
      ApproxLeverageOptions o;
      o.gamma = gamma;
      o.failure = 0.05;
      o.seed = seed * 7919;
      o.method = ApproxMethod::sketched;
      if (seed % 3 == 0) o.jl_columns = d / 2;
      if (seed % 4 == 0) o.sketch = SketchKind::srht;
      score_instance(K, o, tallies[seed % 3 == 0 ? 1 : 0], kind + " seed " + std::to_string(seed));
    }
    for (int regime = 0; regime < 2; ++regime) {
      const Tally& t = tallies[regime];
      const double fraction = double(t.outside) / double(t.scores);
      std::printf(
          "gamma %.1f, %s: %lld instances, %lld scores; outside [tau/(1+g), (1+g)tau]: %.5f, "
          "outside (1±g)tau: %.5f; stated failure (mean over keys) %.4f\n",
          gamma, regime ? "JL k = d/2" : "no projection", (long long)t.instances, (long long)t.scores, fraction,
          double(t.outside_one_pm) / double(t.scores), t.expected / double(t.scores));
      EXPECT_LE(double(t.outside), t.expected) << "gamma " << gamma << " regime " << regime;
    }
    EXPECT_GE(tallies[0].instances + tallies[1].instances, 100);
  }
}

// The projection's failure probability is exact (Beta law); with a sketch far larger than the
// plan needs, the measured fraction outside the projection window must match it.
TEST(ApproxLeverage, ProjectionFailureMatchesTheBetaLaw) {
  const index_t d = 16, k = 4;
  index_t outside = 0, total = 0;
  double stated = 0.0;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    const Floats K = make_keys("gaussian", 2000, d, seed);
    ApproxLeverageOptions o;
    o.gamma = 0.5;
    o.failure = 0.5;
    o.seed = seed;
    o.method = ApproxMethod::sketched;
    o.jl_columns = k;
    o.sketch_rows = 100 * d;
    ApproxLeverageScorer scorer(d, o);
    scorer.fit(K.view());
    stated = scorer.plan().projection_failure;
    const std::vector<double> got = scorer.scores(K.view());
    const std::vector<double> tau = leverage_reference(K, kDefaultRcond);
    for (size_t j = 0; j < tau.size(); ++j) {
      const double ratio = got[j] / tau[j];
      outside += (ratio < 1.0 / 1.5 || ratio > 1.5) ? 1 : 0;
      ++total;
    }
  }
  const double fraction = double(outside) / double(total);
  std::printf("k = %lld of r = %lld: outside fraction %.4f, projection failure bound %.4f\n", (long long)k,
              (long long)d, fraction, stated);
  EXPECT_GT(stated, 0.05);  // the check bites: failures are common at k = 4
  EXPECT_LE(fraction, stated * 1.05 + 0.005);
}

TEST(ApproxLeverage, IncompleteBetaMatchesClosedForms) {
  for (double x : {0.0, 0.01, 0.3, 0.5, 0.77, 0.999, 1.0}) {
    EXPECT_NEAR(detail::incomplete_beta(1, 1, x), x, 1e-14);
    EXPECT_NEAR(detail::incomplete_beta(3, 1, x), x * x * x, 1e-14);
    EXPECT_NEAR(detail::incomplete_beta(1, 4, x), 1 - std::pow(1 - x, 4), 1e-14);
    EXPECT_NEAR(detail::incomplete_beta(2.5, 7, x) + detail::incomplete_beta(7, 2.5, 1 - x), 1.0, 1e-13);
  }
  for (double a : {0.5, 2.0, 30.0, 200.0}) EXPECT_NEAR(detail::incomplete_beta(a, a, 0.5), 0.5, 1e-13);
}

TEST(ApproxLeverage, UniversalSetAtEpsOverOnePlusGammaKeepsHeavyKeys) {
  const Floats K = make_keys("heavy_tailed", 4000, 12, 3);
  const double eps = 0.01, gamma = 0.5;
  ApproxLeverageOptions o;
  o.gamma = gamma;
  o.method = ApproxMethod::sketched;
  ApproxLeverageScorer scorer(12, o);
  scorer.fit(K.view());
  const std::vector<double> got = scorer.scores(K.view());
  const UniversalSet u = select_by_threshold(got.data(), K.rows, eps / (1 + gamma), scorer.rank() * (1 + gamma));
  const std::vector<double> tau = leverage_reference(K, kDefaultRcond);
  index_t heavy = 0, kept = 0;
  for (index_t j = 0; j < K.rows; ++j)
    if (tau[j] >= eps) {
      ++heavy;
      kept += std::binary_search(u.indices.begin(), u.indices.end(), j) ? 1 : 0;
    }
  EXPECT_GT(heavy, 0);
  EXPECT_EQ(kept, heavy);
  EXPECT_LE(double(u.size()), (1 + gamma) * (1 + gamma) * 12 / eps);
}

TEST(ApproxLeverage, AutomaticPlanFallsBackToExactWhenCheaper) {
  ApproxLeverageOptions o;
  o.gamma = 0.1;
  const ApproxLeveragePlan small = plan_approx_leverage(1000, 64, o);
  EXPECT_FALSE(small.sketched);
  EXPECT_EQ(small.failure(), 0.0);
  o.gamma = 0.5;
  const ApproxLeveragePlan big = plan_approx_leverage(index_t{1} << 20, 256, o);
  EXPECT_TRUE(big.sketched);
  EXPECT_LE(big.failure(), o.failure);
  // Exact fallback gives exact scores.
  const Floats K = make_keys("gaussian", 500, 6, 1);
  ApproxLeverageScorer scorer(6, {0.1});
  scorer.fit(K.view());
  const std::vector<double> got = scorer.scores(K.view()), tau = leverage_reference(K, kDefaultRcond);
  for (size_t j = 0; j < tau.size(); ++j) EXPECT_NEAR(got[j], tau[j], 1e-6 * tau[j]);
}

TEST(ApproxLeverage, ThreadCountDoesNotChangeAnyBit) {
  const Floats K = make_keys("gaussian", 9000, 16, 4);
  for (index_t k : {0, 8}) {
    ApproxLeverageOptions o;
    o.method = ApproxMethod::sketched;
    o.jl_columns = k;
    const int before = omp_get_max_threads();
    omp_set_num_threads(1);
    const auto one = ApproxLeverageScorer(16, o).fit(K.view()).scores(K.view());
    omp_set_num_threads(3);
    const auto three = ApproxLeverageScorer(16, o).fit(K.view()).scores(K.view());
    omp_set_num_threads(before);
    EXPECT_EQ(one, three) << "k " << k;
  }
}

// k = r scores run in float only when their estimated rounding fits the γ/20 the plan reserved.
TEST(ApproxLeverage, FloatScoresOnlyWhenTheirRoundingFitsTheReservedShare) {
  ApproxLeverageOptions o;
  o.method = ApproxMethod::sketched;
  for (const char* kind : {"gaussian", "cond1e3", "cond1e6"}) {
    const Floats K = make_keys(kind, 3000, 64, 4);
    ApproxLeverageScorer scorer(64, o);
    scorer.fit(K.view());
    const ApproxLeveragePlan& plan = scorer.plan();
    ASSERT_TRUE(plan.sketched);
    ASSERT_EQ(plan.jl_columns, scorer.rank());
    if (std::string(kind) == "cond1e6") {  // estimate ≈ 2·64·2⁻²⁴·1e6 ≫ γ/20: double scores
      EXPECT_FALSE(plan.float_scores);
      EXPECT_EQ(plan.rounding, 0.0);
    } else {
      EXPECT_TRUE(plan.float_scores) << kind;
      EXPECT_GT(plan.rounding, 0.0);
      EXPECT_LE(plan.rounding, o.gamma / 20) << kind;
    }
    const std::vector<double> got = scorer.scores(K.view());
    const std::vector<double> tau = leverage_reference(K, kDefaultRcond);
    index_t outside = 0;
    for (size_t j = 0; j < tau.size(); ++j)
      if (tau[j] > 1e-9) outside += got[j] < tau[j] / (1 + o.gamma) || got[j] > (1 + o.gamma) * tau[j];
    EXPECT_LE(double(outside), plan.failure() * double(tau.size())) << kind;
  }
}

TEST(ApproxLeverage, RejectsBadInput) {
  EXPECT_THROW(ApproxLeverageScorer(4, {0.0}), Error);
  EXPECT_THROW(ApproxLeverageScorer(4, {-1.0}), Error);
  EXPECT_THROW(ApproxLeverageScorer(4, {0.5, 0.0}), Error);
  EXPECT_THROW(ApproxLeverageScorer(4, {0.5, 1.0}), Error);
  EXPECT_THROW(ApproxLeverageScorer(0, {0.5}), Error);
  Floats K = make_keys("gaussian", 3000, 5, 1);
  K.data[2222 * 5 + 1] = INFINITY;
  ApproxLeverageOptions o;
  o.method = ApproxMethod::sketched;
  try {
    ApproxLeverageScorer(5, o).fit(K.view());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::bad_input);
    EXPECT_NE(std::string(e.what()).find("row 2222"), std::string::npos) << e.what();
  }
}

// γ = 0.001 with a sketch of 1,000 rows (not enough for that γ: only the arithmetic paths matter
// here): float scores need a rounding estimate ≤ 5e-5, which gaussian keys meet and keys of
// condition 10⁶ rounded to 16 bits (condition ~10² to 10³ after rounding) do not.
ApproxLeverageOptions path_options(ApproxMethod method, index_t k) {
  ApproxLeverageOptions o;
  o.gamma = 0.001;
  o.method = method;
  o.sketch_rows = method == ApproxMethod::sketched ? 1000 : 0;
  o.jl_columns = k;
  return o;
}

// 16-bit keys, read as they are, give the plan, rank and score bits of the keys widened to float
// on every scoring path: the exact fallback, a sketch with float scores (k = rank), with double
// scores (cond1e6), and with a projection (k = d/2); a padded row stride.
template <class T>
void expect_16_bit_scores_equal_widened(const std::string& kind, ApproxMethod method, index_t k) {
  const index_t n = 5000, d = 32;
  const RoundedRows<T> K = round_rows<T>(keys_in_half_range<T>(kind, n, d, 8), 3);
  const std::string what = std::string(half_type_label<T>()) + " " + kind + " k " + std::to_string(k);
  const ApproxLeverageOptions o = path_options(method, k);
  ApproxLeverageScorer s16(d, o), s32(d, o);
  s16.fit(K.view());
  s32.fit(K.widened.view());
  EXPECT_EQ(s16.plan().sketched, method == ApproxMethod::sketched) << what;
  EXPECT_EQ(s16.plan().float_scores, s32.plan().float_scores) << what;
  EXPECT_EQ(s16.plan().jl_columns, s32.plan().jl_columns) << what;
  EXPECT_EQ(s16.rank(), s32.rank()) << what;
  EXPECT_EQ(s16.scores(K.view()), s32.scores(K.widened.view())) << what;
}

TEST(ApproxLeverage, SixteenBitKeysGiveTheScoresOfTheirWidenedValues) {
  for (const std::string kind : {"gaussian", "heavy_tailed", "huge", "tiny", "cond1e6"})
    for (const auto& [method, k] : std::vector<std::pair<ApproxMethod, index_t>>{
             {ApproxMethod::exact, 0}, {ApproxMethod::sketched, 0}, {ApproxMethod::sketched, 16}}) {
      expect_16_bit_scores_equal_widened<BFloat16>(kind, method, k);
      expect_16_bit_scores_equal_widened<Half>(kind, method, k);
    }
  // The paths the loop must have taken: float scores on gaussian keys, double on cond1e6.
  const ApproxLeverageOptions o = path_options(ApproxMethod::sketched, 0);
  const auto float_scores = [&]<class T>(const std::string& kind, T) {
    const RoundedRows<T> K = round_rows<T>(keys_in_half_range<T>(kind, 5000, 32, 8));
    return ApproxLeverageScorer(32, o).fit(K.view()).plan().float_scores;
  };
  EXPECT_TRUE(float_scores("gaussian", BFloat16{}));
  EXPECT_TRUE(float_scores("gaussian", Half{}));
  EXPECT_FALSE(float_scores("cond1e6", BFloat16{}));
  EXPECT_FALSE(float_scores("cond1e6", Half{}));
}

// An infinity in 16-bit keys is named by its row in fit (sketch) and in scores (k = rank and a
// projection k = 4).
TEST(ApproxLeverage, SixteenBitNonFiniteRowsAreNamed) {
  const index_t n = 3000, d = 8;
  RoundedRows<Half> K = round_rows<Half>(normal_matrix(n, d, 3));
  K.data[static_cast<size_t>(2222 * d + 5)].bits = 0x7c00;  // +inf
  for (const index_t k : {0, 4}) {
    ApproxLeverageOptions o;
    o.method = ApproxMethod::sketched;
    o.jl_columns = k;
    ApproxLeverageScorer scorer(d, o);
    try {
      scorer.fit(K.view());
      ADD_FAILURE() << "fit accepted an infinity, k " << k;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), "keys: row 2222 holds a NaN or an infinity") << "k " << k;
    }
    scorer.fit(round_rows<Half>(normal_matrix(n, d, 4)).view());
    try {
      (void)scorer.scores(K.view());
      ADD_FAILURE() << "scores accepted an infinity, k " << k;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::bad_input) << "k " << k;
      EXPECT_EQ(std::string(e.what()), "keys: row 2222 holds a NaN or an infinity") << "k " << k;
    }
  }
}

}  // namespace
}  // namespace levattn::test
