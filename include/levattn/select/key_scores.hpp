// One score per key for attention with f(x) = |x|^p, chosen by p and an optional γ, and the
// universal set those scores give — computed here once for every front end (CLI, Python):
//
//   p = 2, no γ    exact leverage scores τ_j (ridge scores with a ridge > 0), scores/leverage.hpp.
//   p = 2, γ > 0   sketched scores τ̂_j ∈ [τ_j/(1+γ), (1+γ)τ_j] except with probability ≤ failure
//                  per key (scores/approx_leverage.hpp); exact when no sketch is cheaper.
//   p ≠ 2          ℓp Lewis weights w_j, or their sensitivity bounds s_j = r^{max(0, p/2−1)}·w_j
//                  (scores/lewis.hpp).
//
// Universal set by threshold: keep values ≥ ε·threshold_factor (ε/(1+γ) for sketched scores, so a
// key with τ_j ≥ ε is kept unless it fails), with the bound |U| ≤ bound_mass/(ε·threshold_factor):
// rank/ε, (1+γ)²·rank/ε, or Σ s_j/ε (= r/ε for p ≤ 2, r^{p/2}/ε for p > 2).
//
// Cost and determinism: those of the scorer chosen (its header); results never depend on the
// thread count, and sketched scores depend only on the seed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "levattn/core/matrix_view.hpp"
#include "levattn/linalg/gram_factors.hpp"
#include "levattn/scores/approx_leverage.hpp"
#include "levattn/scores/leverage.hpp"
#include "levattn/select/universal_set.hpp"

namespace levattn {

struct KeyScoreOptions {
  double p = 2.0;          // exponent of f; p ≠ 2 gives ℓp Lewis weights
  double approx = 0.0;     // γ > 0: sketched ℓ2 leverage scores (p = 2 only); 0: exact
  double failure = 0.05;   // per-key failure probability of the sketched scores, in (0, 1)
  std::uint64_t seed = 1;  // seed of the sketch and projection
  double ridge = 0.0;      // λ ≥ 0 of exact ℓ2 scores only
  double rcond = kDefaultRcond;
};

struct KeyScores {
  std::vector<double> values;              // one per key
  index_t rank = 0;                        // numerical rank of the keys (of the last weighted Gram, Lewis)
  double threshold_factor = 1.0;           // the threshold set keeps values ≥ ε·threshold_factor
  double bound_mass = 0.0;                 // and has at most bound_mass/(ε·threshold_factor) keys
  std::string method;                      // "exact leverage", "sketched", "exact (cheaper than any sketch
                                           // meeting gamma)" or "lewis weights: <Lewis method>"
  ApproxLeveragePlan plan;                 // sketched scores (γ > 0): the plan used
  index_t lewis_iterations = 0;            // p ≠ 2: weighted leverage-score evaluations
  double lewis_residual = 0.0;             // p ≠ 2: relative fixed-point residual
  bool lewis_limited_by_rounding = false;  // p ≠ 2: the residual is the keys' rounding floor
  double sensitivity_factor = 1.0;         // p ≠ 2: r^{max(0, p/2−1)}
};

// Throws Error{bad_input} for p ≤ 0 or not finite, γ < 0 or not finite, γ > 0 with p ≠ 2, a ridge
// < 0 or combined with γ > 0 or p ≠ 2, or failure ∉ (0, 1).
void check_key_score_options(const KeyScoreOptions& options);

// Scores of keys (n×d, n ≥ 1, finite) as chosen above; `sensitivities` turns Lewis weights into
// s_j (what selection ranks by). Throws Error{bad_input} for no keys or d = 0, the errors of
// check_key_score_options and of the scorer;
// Error{failure} if Lewis weights do not converge.
KeyScores compute_key_scores(ConstMatrixF keys, const KeyScoreOptions& options, bool sensitivities);
// The same for 16-bit keys: exact and sketched ℓ2 scores read them as they are (equal, bit for
// bit, to the scores of the keys widened to float), and so do Lewis weights (p ≠ 2).
KeyScores compute_key_scores(MatrixView<const Half> keys, const KeyScoreOptions& options, bool sensitivities);
KeyScores compute_key_scores(MatrixView<const BFloat16> keys, const KeyScoreOptions& options, bool sensitivities);

// Exact ℓ2 scores (p = 2, no γ) of `keys` under a scorer already fitted — on these keys, or on a
// set they are rows of (e.g. Gram summaries merged across MPI ranks, so that each rank scores its
// own rows): what compute_key_scores gives for p = 2 when the scorer was fitted on `keys` alone.
// Throws what LeverageScorer::scores throws: Error{bad_input} for a width mismatch or rows not finite.
KeyScores leverage_key_scores(const LeverageScorer& scorer, ConstMatrixF keys);
// The same for 16-bit keys, read as they are (scores w.r.t. the rounded keys; equal, bit for bit,
// to those of the keys widened to float).
KeyScores leverage_key_scores(const LeverageScorer& scorer, MatrixView<const Half> keys);
KeyScores leverage_key_scores(const LeverageScorer& scorer, MatrixView<const BFloat16> keys);

// The threshold set of scores computed with sensitivities = true (see above); ε ∈ (0, 1].
UniversalSet key_threshold_set(const KeyScores& scores, double eps);

// The threshold set (eps > 0) or the top_k keys by score (top_k > 0, ≤ n; no guarantee): exactly one
// of the two. Throws Error{bad_input} otherwise.
UniversalSet key_universal_set(const KeyScores& scores, double eps, index_t top_k);

}  // namespace levattn
