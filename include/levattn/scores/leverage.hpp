// LeverageScorer — exact ℓ2 leverage scores τ_j = k_jᵀ (KᵀK)⁺ k_j and ridge scores
// k_jᵀ (KᵀK + λI)⁻¹ k_j, fit once on keys and then asked for scores and normalisers.
//
// Guarantee (p = 2): for every query q and key j, <q, k_j>² ≤ τ_j · qᵀGq, so τ_j is the largest
// attention A[i,j] = <q,k_j>² / Σ_l <q,k_l>² any query can give key j, and Σ_j τ_j = rank(K).
// Proof: docs/proofs.md §1.
//
// Accuracy: the Gram matrix is summed in double from exact products and the scores are sums of
// squares in double, so against a float64 SVD of the same float keys the relative error grows
// like 1e-16·cond(K)²; the tests hold it to 1e-4 for cond(K) ≤ 1e3 and 1e-2 for cond(K) ≤ 1e6
// (column scaling does not count: G is equilibrated first). Directions
// below the cut-off (see gram_factors.hpp) count as absent, so on rank-deficient keys the scores
// sum to the numerical rank.
//
// 16-bit keys (f16, bf16): fit, scores and normalisers also take MatrixView<const Half> and
// MatrixView<const BFloat16>, read as they are (half the bytes, no float copy of the input: blocks
// of 256 rows are widened, exactly, into a small scratch). Everything above then holds with
// respect to the rounded keys, and the results equal, bit for bit, those of the float overloads on
// the keys widened to float. Figures: BENCHMARKS.md, "Leverage scores on 16-bit keys".
//
// Cost: fit O(n·d² + d³); scores O(n·d²/2) — both near the speed of one float GEMM on KᵀK.
#pragma once

#include <vector>

#include "levattn/core/matrix_view.hpp"
#include "levattn/linalg/gram.hpp"
#include "levattn/linalg/gram_factors.hpp"

namespace levattn {

struct LeverageOptions {
  double ridge = 0.0;            // λ ≥ 0; 0 gives plain leverage scores
  double rcond = kDefaultRcond;  // relative singular-value cut-off, see gram_factors.hpp
};

class LeverageScorer {
 public:
  explicit LeverageScorer(index_t d, LeverageOptions options = {});

  // Summarises keys (n×d, finite) and factors the summary. Returns *this.
  LeverageScorer& fit(ConstMatrixF keys);
  LeverageScorer& fit(MatrixView<const Half> keys);
  LeverageScorer& fit(MatrixView<const BFloat16> keys);
  // Adopts a summary built elsewhere (merged from threads, streams or machines) and factors it.
  LeverageScorer& fit(const GramSummary& summary);
  // Adds another scorer's keys to this one's and refactors: scores over the union.
  LeverageScorer& merge(const LeverageScorer& other);

  // τ_j for each row of keys (rows need not be the fitted ones: for any vector k this is
  // kᵀ(G+λI)⁺k). out has keys.rows entries. Throws Error{bad_input} on NaN/Inf or wrong width.
  void scores(ConstMatrixF keys, double* out) const;
  std::vector<double> scores(ConstMatrixF keys) const;
  void scores(MatrixView<const Half> keys, double* out) const;
  std::vector<double> scores(MatrixView<const Half> keys) const;
  void scores(MatrixView<const BFloat16> keys, double* out) const;
  std::vector<double> scores(MatrixView<const BFloat16> keys) const;

  // qᵀ G q = Σ_l <q, k_l>² for each row of queries: the exact x² attention normaliser.
  void normalisers(ConstMatrixF queries, double* out) const;
  void normalisers(MatrixView<const Half> queries, double* out) const;
  void normalisers(MatrixView<const BFloat16> queries, double* out) const;
  // An upper bound on the part of qᵀGq that lies along directions below the cut-off (each charged
  // the cut level, since their computed eigenvalues are rounding); 0 when nothing is cut.
  void cut_normalisers(ConstMatrixF queries, double* out) const;

  index_t dim() const { return summary_.dim(); }
  index_t count() const { return summary_.count(); }
  // Numerical rank of G (of G + λI with a ridge); the scores sum to it when λ = 0.
  index_t rank() const { return factors_.rank; }
  // Number of directions cut from G (λ = 0 counting), d − rank when λ = 0.
  index_t cut_directions() const { return factors_.cut_root.rows(); }
  const LeverageOptions& options() const { return options_; }
  const GramSummary& summary() const { return summary_; }
  // Eigenvalues of the equilibrated G̃ + λD⁻¹, descending (for reports: cond, spectrum).
  const std::vector<double>& eigenvalues() const { return factors_.eigenvalues; }

 private:
  void refactor();
  template <class T>
  LeverageScorer& fit_rows(MatrixView<const T> keys);
  template <class T>
  std::vector<double> score_vector(MatrixView<const T> keys) const;

  LeverageOptions options_;
  GramSummary summary_;
  GramFactors factors_;
};

}  // namespace levattn
