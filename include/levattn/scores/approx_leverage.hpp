// Fast approximate ℓ2 leverage scores (the Drineas–Magdon-Ismail–Mahoney–Woodruff 2012 scheme):
// a sketch S gives R with SK = QR, and τ̂_j = c·‖k_j R⁻¹ Π‖², Π a random projection.
//
// Here R⁻¹ is represented by the factor T of (SK)ᵀ(SK) = RᵀR (see gram_factors.hpp:
// ‖T k‖² = kᵀ((SK)ᵀSK)⁺k, with the same equilibration and rank cut-off as the exact scores), and Π is
// √(r/k)·(k columns of a Haar-random r×r orthogonal matrix), r the rank. With k = r the projection
// is the identity and τ̂_j = c·‖T k_j‖².
//
// Guarantee. For every key j and in exact arithmetic,
//     P( τ̂_j ∉ [τ_j/(1+γ_s), (1+γ_s)·τ_j] ) ≤ failure() ≤ δ,
// where (1+γ_s)(1+γ/20) = 1+γ (γ/20 is reserved for rounding, below) and failure() is the sum of
// the probability δ_R that the sketch's distortion on the column space of K exceeds the η the plan
// assumes and the probability that the projection misses (an exact Beta tail). That δ_R is a
// theorem for the gaussian sketch; for sparse_sign, count_sketch and srht it is the behaviour the
// tests observe, not a proof. With the rounding inside its reserve the computed τ̂_j then lies in
// [τ/(1+γ), (1+γ)τ] ⊂ (1±γ)·τ. Proof and the plan's quantities: docs/proofs.md §5.
//
// Universal sets: if τ_j ≥ ε then, unless key j fails, τ̂_j ≥ ε/(1+γ); so
// U = {j : τ̂_j ≥ ε/(1+γ)} holds every key whose attention can reach ε, each with probability
// ≥ 1 − failure(), and |U| ≤ (1+γ)²·rank/ε when no key fails (docs/proofs.md §5).
//
// Rounding: the sketch is summed in double; the scores are formed in float — the projection
// K·(TᵀΠ) as a float GEMM (k < r), T·k_j with a float kernel (k = r) — which adds a relative
// error of about 2·d·2⁻²⁴·cond(T) (plan().rounding, an estimate, not a bound). The plan reserves
// γ/20 of the budget for it: the sketch and projection are planned for γ_s with
// (1 + γ_s)(1 + γ/20) = 1 + γ. With k = r, scores fall back to double when the estimate exceeds
// γ/20 (cond(T) above ≈ 2·10⁴/d at γ = 0.5).
//
// Cost: O(n·d·s) to sketch (s nonzeros per key) + O(m·d²) + O(n·d·k) float (O(n·d²/2) float when
// k = r, double if cond(T) is too large for float). When no (m, k) is predicted to cost at most
// 0.8× the exact scores (a margin for the cost model's error across CPUs), method automatic
// computes the exact scores instead (plan().sketched == false), which meet any γ with failure 0.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "levattn/core/matrix_view.hpp"
#include "levattn/linalg/gram_factors.hpp"
#include "levattn/linalg/sketch.hpp"
#include "levattn/scores/leverage.hpp"

namespace levattn {

enum class ApproxMethod {
  automatic,  // a sketch meeting (γ, δ) when predicted ≤ 0.8× the exact cost, else the exact scores
  sketched,   // always sketch (the plan may then need m > n)
  exact,      // exact scores (failure 0)
};

struct ApproxLeverageOptions {
  double gamma = 0.5;     // γ > 0: τ̂ within a factor 1+γ of τ
  double failure = 0.05;  // δ ∈ (0, 1): per-key probability of missing that
  std::uint64_t seed = 1;
  double rcond = kDefaultRcond;
  SketchKind sketch = SketchKind::sparse_sign;
  index_t nonzeros = 2;  // s for sparse_sign (2 suffices at the m ≥ 25·r the plan asks for)
  ApproxMethod method = ApproxMethod::automatic;
  index_t sketch_rows = 0;  // m; 0 lets the plan choose
  index_t jl_columns = 0;   // k; 0 lets the plan choose (k ≥ rank means no projection)
};

struct ApproxLeveragePlan {
  bool sketched = false;
  index_t sketch_rows = 0;          // m
  index_t jl_columns = 0;           // k (== rank: no projection)
  double distortion = 0.0;          // η assumed of the sketch
  double sketch_failure = 0.0;      // δ_R
  double projection_failure = 0.0;  // δ_J = P(X ∉ [A/c, B/c])
  double scale = 1.0;               // c
  bool float_scores = false;        // scores formed in float (k < r always; k = r when rounding fits)
  double rounding = 0.0;            // estimated relative score error of float arithmetic (0: double)
  double failure() const { return sketch_failure + projection_failure; }
};

class ApproxLeverageScorer {
 public:
  // Throws Error{bad_input} unless d ≥ 1, γ > 0, δ ∈ (0, 1) and the overrides are ≥ 0.
  explicit ApproxLeverageScorer(index_t d, ApproxLeverageOptions options = {});

  // Plans for n = keys.rows, sketches the keys in row blocks, factors. keys finite (n×d, n ≥ 1);
  // throws Error{bad_input} naming the first bad row, or when the plan cannot meet (γ, δ).
  ApproxLeverageScorer& fit(ConstMatrixF keys);
  // The same for 16-bit keys (f16, bf16), read as they are: the sketch widens them exactly to float
  // a chunk at a time (Sketch::add), the scores 1,024 rows at a time. With the default sparse_sign
  // sketch (and count_sketch) the fit and the scores equal, bit for bit, those of the keys widened
  // to float; with gaussian and srht sketches the last bits may differ.
  ApproxLeverageScorer& fit(MatrixView<const Half> keys);
  ApproxLeverageScorer& fit(MatrixView<const BFloat16> keys);

  // τ̂_j for each row (the guarantee above holds for the fitted keys, and for any row chosen
  // independently of the seed). Throws Error{bad_input} on NaN/Inf or wrong width.
  void scores(ConstMatrixF keys, double* out) const;
  std::vector<double> scores(ConstMatrixF keys) const;
  // The same for 16-bit rows, widened a tile at a time (bits as on the widened rows).
  void scores(MatrixView<const Half> keys, double* out) const;
  std::vector<double> scores(MatrixView<const Half> keys) const;
  void scores(MatrixView<const BFloat16> keys, double* out) const;
  std::vector<double> scores(MatrixView<const BFloat16> keys) const;

  index_t dim() const { return d_; }
  index_t rank() const { return rank_; }
  const ApproxLeveragePlan& plan() const { return plan_; }
  const ApproxLeverageOptions& options() const { return options_; }

 private:
  index_t d_;
  ApproxLeverageOptions options_;
  ApproxLeveragePlan plan_;
  index_t rank_ = 0;
  LeverageScorer exact_;           // plan_.sketched == false
  TrapezoidalForm root_;           // T, when k == rank
  std::vector<float> projection_;  // TᵀΠ (d × k, float), when k < rank

  template <class Elem>
  ApproxLeverageScorer& fit_rows(MatrixView<const Elem> keys);
  template <class Elem>
  void scores_rows(MatrixView<const Elem> keys, double* out) const;
};

// The plan for n keys of dimension d (rank assumed d): exposed for reports and tests.
ApproxLeveragePlan plan_approx_leverage(index_t n, index_t d, const ApproxLeverageOptions& options);

}  // namespace levattn
