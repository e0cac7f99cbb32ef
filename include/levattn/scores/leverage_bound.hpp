// LeverageBound — scores that, computed on the summary of the keys seen so far, bound from above
// the leverage score every one of those keys will have once more keys arrive. They are what a
// one-pass selector may safely evict by.
//
// With G the Gram matrix of the keys seen so far and D = diag(G), the bound score of a key k is
//     s(k) = kᵀ (G + r²·D)⁺ k,        r = rcond (the cut-off of gram_factors.hpp),
// i.e. the ridge score of the equilibrated G̃ = D^{-1/2} G D^{-1/2} with ridge r², nothing cut.
//
// Guarantee (exact arithmetic). Let G_f ⪰ G be the Gram matrix after any further keys, and
// τ_f(k) the leverage score that LeverageScorer (rcond r, no ridge) computes from G_f, for a key
// k among those seen so far. Then τ_f(k) ≤ kFactor · s(k) with kFactor = 2. Proof:
// τ_f = Σ_kept (vᵢᵀk̃)²/λᵢ over the eigenpairs of G̃_f with λᵢ > r²·λ_max ≥ r² (λ_max ≥ 1: G̃_f
// has unit diagonal on its non-zero columns), and for those λᵢ, 1/λᵢ ≤ 2/(λᵢ + r²); adding the
// cut directions only adds non-negative terms, so τ_f ≤ 2·k̃ᵀ(G̃_f + r²I)⁻¹k̃ = 2·kᵀ(G_f + r²D_f')⁻¹k,
// D_f' = diag(G_f) with zero entries set to 1. Since G_f + r²D_f' ⪰ G + r²D and k lies in the
// range of G + r²D (k is one of its rows' keys, so k is zero on G's zero columns),
// kᵀ(G_f + r²D_f')⁻¹k ≤ kᵀ(G + r²D)⁺k = s(k). The same Cauchy–Schwarz step bounds attention:
// for any query q, <q,k>² ≤ s(k) · (qᵀGq + r²·qᵀDq) ≤ s(k) · (qᵀG_f q + r²·qᵀD_f q).
//
// Rounding: s is computed from a double eigendecomposition of G̃ + r²I, whose smallest
// denominators are ≥ r² ≈ 2.3e-13 against absolute eigenvalue errors of order 1e-16·λ_max, so for
// d up to a few hundred the computed s is within a few per cent of the exact one; callers keep a
// further factor of 2 in reserve (see stream_selector.hpp).
//
// Cost: fit O(d³); bounds O(d²/2) per key (the same kernel as LeverageScorer::scores).
#pragma once

#include "levattn/core/matrix_view.hpp"
#include "levattn/linalg/gram.hpp"
#include "levattn/linalg/gram_factors.hpp"

namespace levattn {

class LeverageBound {
 public:
  // τ_f ≤ kFactor · s for every key already summarised (see above).
  static constexpr double kFactor = 2.0;

  // rcond in (0, 1): the cut-off the final LeverageScorer will use.
  LeverageBound(index_t d, double rcond = kDefaultRcond);

  // Factors the summary (O(d³)).
  void fit(const GramSummary& summary);
  // s(k) for each row of keys (keys.cols == d); out has keys.rows entries. Throws
  // Error{bad_input} on NaN/Inf or a wrong width.
  void bounds(ConstMatrixF keys, double* out) const;

  index_t dim() const { return d_; }
  double rcond() const { return rcond_; }

 private:
  index_t d_;
  double rcond_;
  TrapezoidalForm form_;  // ‖T k‖² = s(k)
};

}  // namespace levattn
