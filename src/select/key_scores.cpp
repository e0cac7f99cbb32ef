// Per-key scores for |x|^p and their universal set (see key_scores.hpp).
#include "levattn/select/key_scores.hpp"

#include <cmath>
#include <numeric>

#include "levattn/scores/lewis.hpp"

namespace levattn {

void check_key_score_options(const KeyScoreOptions& o) {
  check_power_exponent(o.p);
  require(std::isfinite(o.approx) && o.approx >= 0.0, "approx (γ) must be finite and ≥ 0");
  require(o.approx == 0.0 || o.p == 2.0, "sketched scores (γ > 0) are ℓ2 leverage scores: they need p = 2");
  require(std::isfinite(o.ridge) && o.ridge >= 0.0, "the ridge must be finite and ≥ 0");
  require(o.ridge == 0.0 || (o.approx == 0.0 && o.p == 2.0), "a ridge applies to exact ℓ2 leverage scores only");
  require(o.failure > 0.0 && o.failure < 1.0, "failure must lie in (0, 1)");
}

namespace {

// Sketched ℓ2 scores (o.approx > 0) of float or 16-bit keys, read as they are.
template <class T>
KeyScores approx_key_scores(MatrixView<const T> keys, const KeyScoreOptions& o) {
  ApproxLeverageOptions a;
  a.gamma = o.approx;
  a.failure = o.failure;
  a.seed = o.seed;
  a.rcond = o.rcond;
  ApproxLeverageScorer scorer(keys.cols, a);
  scorer.fit(keys);
  KeyScores out;
  out.values = scorer.scores(keys);
  out.rank = scorer.rank();
  out.threshold_factor = 1.0 / (1.0 + a.gamma);
  out.bound_mass = (1.0 + a.gamma) * double(out.rank);
  out.plan = scorer.plan();
  out.method = out.plan.sketched ? "sketched" : "exact (cheaper than any sketch meeting gamma)";
  return out;
}

// Scores of float or 16-bit keys (read as they are) as compute_key_scores chooses them.
template <class T>
KeyScores key_scores_of(MatrixView<const T> keys, const KeyScoreOptions& o, bool sensitivities) {
  check_key_score_options(o);
  require(keys.rows >= 1 && keys.cols >= 1,
          "keys: need at least one key of dimension ≥ 1, got " + shape_string(keys.rows, keys.cols));
  KeyScores out;
  if (o.approx > 0.0) {
    out = approx_key_scores(keys, o);
  } else if (o.p != 2.0) {
    LewisOptions lo;
    lo.rcond = o.rcond;
    LewisWeights w = lewis_weights(keys, o.p, lo);
    out.values = sensitivities ? w.sensitivities() : std::move(w.weights);
    out.rank = w.rank;
    out.bound_mass = std::accumulate(out.values.begin(), out.values.end(), 0.0);
    if (!sensitivities) out.bound_mass *= w.sensitivity_factor();
    out.method = "lewis weights: " + w.method;
    out.lewis_iterations = w.iterations;
    out.lewis_residual = w.residual;
    out.lewis_limited_by_rounding = w.limited_by_rounding;
    out.sensitivity_factor = w.sensitivity_factor();
  } else {
    LeverageScorer scorer(keys.cols, {o.ridge, o.rcond});
    scorer.fit(keys);
    out = leverage_key_scores(scorer, keys);
  }
  return out;
}

template <class T>
KeyScores leverage_key_scores_of(const LeverageScorer& scorer, MatrixView<const T> keys) {
  KeyScores out;
  out.values = scorer.scores(keys);
  out.rank = scorer.rank();
  out.bound_mass = double(out.rank);
  out.method = "exact leverage";
  return out;
}

}  // namespace

KeyScores compute_key_scores(ConstMatrixF keys, const KeyScoreOptions& options, bool sensitivities) {
  return key_scores_of(keys, options, sensitivities);
}
KeyScores compute_key_scores(MatrixView<const Half> keys, const KeyScoreOptions& options, bool sensitivities) {
  return key_scores_of(keys, options, sensitivities);
}
KeyScores compute_key_scores(MatrixView<const BFloat16> keys, const KeyScoreOptions& options, bool sensitivities) {
  return key_scores_of(keys, options, sensitivities);
}

KeyScores leverage_key_scores(const LeverageScorer& scorer, ConstMatrixF keys) {
  return leverage_key_scores_of(scorer, keys);
}
KeyScores leverage_key_scores(const LeverageScorer& scorer, MatrixView<const Half> keys) {
  return leverage_key_scores_of(scorer, keys);
}
KeyScores leverage_key_scores(const LeverageScorer& scorer, MatrixView<const BFloat16> keys) {
  return leverage_key_scores_of(scorer, keys);
}

UniversalSet key_threshold_set(const KeyScores& s, double eps) {
  check_eps(eps);
  return select_by_threshold(s.values.data(), static_cast<index_t>(s.values.size()), eps * s.threshold_factor,
                             s.bound_mass);
}

UniversalSet key_universal_set(const KeyScores& s, double eps, index_t top_k) {
  require((eps > 0.0) != (top_k > 0), "universal set: give exactly one of eps and top-k");
  const index_t n = static_cast<index_t>(s.values.size());
  require(top_k <= n, "top-k = " + std::to_string(top_k) + " exceeds the number of keys n = " + std::to_string(n));
  return eps > 0.0 ? key_threshold_set(s, eps) : select_top_k(s.values.data(), n, top_k);
}

}  // namespace levattn
