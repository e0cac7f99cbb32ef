// ℓp Lewis weights of keys K (n×d), for any p > 0: the unique w ≥ 0 with
//     w_j = ( k_jᵀ (Kᵀ W^{1−2/p} K)⁺ k_j )^{p/2}         (Lewis 1978; Cohen–Peng 2015)
// (rows with w_j = 0 — zero keys — are left out of the inverse). Σ_j w_j = rank(K); for p = 2
// they are the leverage scores.
//
// Guarantee: for every query q and key j, |<q,k_j>|^p ≤ s_j · Σ_l |<q,k_l>|^p with the
// sensitivity bound
//     s_j = w_j (p ≤ 2),   s_j = r^{p/2−1}·w_j (p > 2),   r = rank(K) ≤ d,
// so U = {j : s_j ≥ ε} holds every key any query can give attention ≥ ε under f(x) = |x|^p, and
// |U| ≤ r/ε (p ≤ 2) or r^{p/2}/ε (p > 2). Proof: docs/proofs.md §4.
//
// Method: with φ(w)_j the right-hand side above (one weighted leverage-score computation), each
// iteration moves w ← w^{1−β}·φ(w)^β, β = 4/(p+2). p < 4: the Cohen–Peng iteration (β = 1 once an
// over-relaxed p < 2 step has been refused three times), with Anderson acceleration over the
// last three iterates (p ≠ 2) whose proposals are kept only when they contract at least at the
// proven rate |1 − p/2|. p ≥ 4: descent on the convex function whose minimiser the weights are,
// with an Armijo line search. Near the fixed point the error contracts by c = |p−2|/(p+2) a
// step. Why each converges: docs/proofs.md §4.
// Stop when the relative fixed-point residual max_j |φ(w)_j − w_j| / max(φ(w)_j, w_j) is at most
// the tolerance (default 1e-6); the result reports the iterations (weighted leverage-score
// evaluations, each O(n·d² + d³) like one exact leverage computation; measured evaluation counts
// and times: BENCHMARKS.md, "Issue 4") and that residual.
//
// Accuracy: each weighted Gram matrix is summed in double from rows √u_j·k_j rounded to float
// (gram.hpp), so the map φ itself carries a relative error that grows with the keys' condition
// number; the residual is measured against that map. On ill-conditioned keys it cannot fall below
// that rounding (measured: 1e-5 … 1e-4 at cond(K) = 1e5, n = 4,000, d = 32, reached within five
// evaluations). So once the residual is at most `stall_tolerance` (default 1e-3), an iteration
// that stops halving it — for max(20, 3·log 2 / −log c) accepted steps, c the contraction factor
// above — has reached the accuracy the data allow: the best iterate is returned with
// limited_by_rounding set, and `residual` says how accurate it is. Results never depend on the
// thread count.
#pragma once

#include <string>
#include <vector>

#include "levattn/core/matrix_view.hpp"
#include "levattn/linalg/gram_factors.hpp"

namespace levattn {

struct LewisOptions {
  double tolerance = 1e-6;        // stop at this relative fixed-point residual, in (0, 1)
  double stall_tolerance = 1e-3;  // accept a residual up to this when rounding stops progress,
                                  // in (0, 1)
  index_t max_iterations = 300;   // weighted leverage-score evaluations
  double rcond = kDefaultRcond;   // cut-off of each weighted pseudo-inverse (gram_factors.hpp)
  bool accelerate = true;         // Anderson acceleration for p < 4 (false: the plain steps above)
};

struct LewisWeights {
  double p = 2.0;
  std::vector<double> weights;       // w_j ≥ 0, one per key
  index_t rank = 0;                  // numerical rank of the last weighted Gram matrix
  index_t cut_directions = 0;        // d − rank
  index_t iterations = 0;            // weighted leverage-score evaluations
  double residual = 0.0;             // relative fixed-point residual of `weights`
  bool limited_by_rounding = false;  // stopped above `tolerance`: the map's rounding set the floor
  std::string method;                // "mirror descent" (p ≥ 4) or "cohen-peng (…)" naming the
                                     // accelerations used: "over-relaxed", "anderson", or "… abandoned"
                                     // when a safeguard switched one off

  // 1 for p ≤ 2, rank^{p/2−1} for p > 2.
  double sensitivity_factor() const;
  // s_j = sensitivity_factor()·w_j: bounds of |<q,k_j>|^p / Σ_l |<q,k_l>|^p over all q.
  std::vector<double> sensitivities() const;
};

// Throws Error{bad_input} "p must be finite and > 0, got …" unless p is.
void check_power_exponent(double p);

// Throws Error{bad_input} for p ≤ 0 or not finite, empty or non-finite keys (naming the row), a
// tolerance or stall_tolerance outside (0, 1) or max_iterations < 1;
// Error{failure} if after max_iterations evaluations the residual has reached neither the
// tolerance nor, stalled, the stall_tolerance (the message gives the residual).
LewisWeights lewis_weights(ConstMatrixF keys, double p, const LewisOptions& options = {});
// The same for 16-bit keys (f16, bf16), read as they are: each evaluation widens rows (exactly) a
// block at a time, and the weights equal, bit for bit, those of the keys widened to float.
LewisWeights lewis_weights(MatrixView<const Half> keys, double p, const LewisOptions& options = {});
LewisWeights lewis_weights(MatrixView<const BFloat16> keys, double p, const LewisOptions& options = {});

}  // namespace levattn
