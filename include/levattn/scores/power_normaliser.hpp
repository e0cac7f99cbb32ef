// PowerNormaliser — the row normaliser N(q) = Σ_l |<q,k_l>|^p of attention with f(x) = |x|^p,
// for many queries at once, exact where that is cheap and estimated by Lewis-weight sampling
// otherwise. This is the function `levattn attend --f pow:P` is meant to call for its
// normaliser: A[i,j] = |<q_i,k_j>|^p / N(q_i), with missing mass bounded by delta() when estimated.
//
// Contract
//   * Results are natural logarithms, ln N(q) (−∞ when N(q) = 0, e.g. q = 0), so that no input
//     scale overflows: rows are pre-scaled by exact powers of two internally.
//   * exact_gram (p = 2): N(q) = qᵀGq from the Gram matrix in double (leverage.hpp); its relative
//     error grows like 1e-16·cond(K)² (heavy.hpp), with no per-query bound.
//   * exact_moments (p = 4): N(q) = φ(q)ᵀ M φ(q) with φ(k) the d(d+1)/2 degree-2 monomials of k
//     (off-diagonal ones times √2, so <φ(q),φ(k)> = <q,k>²) and M = Σ_l φ(k_l)φ(k_l)ᵀ, the
//     fourth-moment tensor of the keys, in double. Costs O(n·D²) to build, O(D²) a query,
//     D = d(d+1)/2; offered for D ≤ 4096 (d ≤ 90). Its rounding grows with the cancellation in
//     φ(q)ᵀMφ(q): for a query with most of its weight where the keys have almost none (keys of
//     low rank plus rounding noise) φ(q)ᵀMφ(q) can be off by orders of magnitude, or ≤ 0. So each
//     query's rounding error is bounded, |N̂ − N| ≤ γ_c·(Σ_a |φ_a(q)|·√M_aa)² (|Φ|ᵀ|Φ| ≤
//     √diag(M)·√diag(M)ᵀ entrywise by Cauchy–Schwarz; γ_c = c·u/(1 − c·u), u = 2⁻⁵³,
//     c = n + 2D + 16 for the sums of M and of φ(q)ᵀMφ(q) and the features' own rounding, widened
//     by 1%), in O(D); where the bound exceeds 1e-8·N̂, N(q) is summed directly over every key in
//     double instead, O(n·d) (the keys are then read again: the view must outlive this object).
//   * sampled (any p): key j is kept with probability π_j = min(1, β·s_j), independently
//     (decided by a counter-based hash of (seed, j)), and weighted 1/π_j:
//     Ñ(q) = Σ_{j kept} |<q,k_j>|^p / π_j, with s_j the Lewis-weight sensitivities of lewis.hpp.
//     For any query fixed independently of the seed (proof: docs/proofs.md §7),
//         P( |Ñ(q) − N(q)| > δ·N(q) ) ≤ 2·exp(−β δ² / (2(1 + δ/3))) ≤ failure,
//     with β = 2(1 + δ/3)·ln(2/failure)/δ². For m such queries all m rows hold with probability
//     ≥ 1 − m·failure (union bound). Expected sample size Σ_j π_j ≤ β·Σ_j s_j (≤ β·r for p ≤ 2,
//     β·r^{p/2} for p > 2). (Cohen–Peng 2015 show that O(d·log(d)/δ²)-type oversampling makes the
//     sample an ℓp subspace embedding — every q at once — but with unstated constants; the
//     per-query bound above is the one whose constants we can state.)
//   * Products <q,k> are formed in double from the float inputs.
//   * 16-bit keys (f16, bf16) are read as they are (widened exactly, a row or block at a time,
//     never copied whole): the normaliser is that of the rounded keys, bit for bit what it is on the keys
//     widened to float. Only the sampled keys are kept, in double.
// Results never depend on the thread count.
#pragma once

#include <cstdint>
#include <variant>
#include <vector>

#include "levattn/core/half.hpp"
#include "levattn/core/matrix_view.hpp"
#include "levattn/scores/leverage.hpp"

namespace levattn {

enum class NormaliserKind { exact_gram, exact_moments, sampled };
const char* normaliser_kind_name(NormaliserKind kind);  // "exact_gram", "exact_moments", "sampled"

enum class NormaliserPolicy {
  automatic,  // exact for p = 2; exact_moments for p = 4 when n·D² ≤ moment_budget; else sampled
  exact,      // exact (p must be 2 or 4; p = 4 needs D ≤ 4096)
  sampled,    // sampled, for any p
};

struct PowerNormaliserOptions {
  double delta = 0.1;     // δ ∈ (0, 1): relative accuracy of the sampled normaliser
  double failure = 1e-6;  // per-query failure probability ∈ (0, 1)
  std::uint64_t seed = 1;
  NormaliserPolicy policy = NormaliserPolicy::automatic;
  double moment_budget = 2e10;  // multiply-adds allowed for the fourth-moment tensor (automatic)
};

class PowerNormaliser {
 public:
  // keys: n×d, n ≥ 1, finite; the view must outlive this object (exact_moments reads it again
  // for the queries its rounding bound does not vouch for). sensitivities: n
  // values ≥ 0 with |<q,k_j>|^p ≤ s_j·N(q) for all q (LewisWeights::sensitivities()); needed only
  // when the normaliser samples (may be empty otherwise). Throws Error{bad_input} on bad
  // parameters or a non-finite key row (naming it).
  PowerNormaliser(ConstMatrixF keys, double p, const std::vector<double>& sensitivities,
                  const PowerNormaliserOptions& options = {});
  PowerNormaliser(MatrixView<const Half> keys, double p, const std::vector<double>& sensitivities,
                  const PowerNormaliserOptions& options = {});
  PowerNormaliser(MatrixView<const BFloat16> keys, double p, const std::vector<double>& sensitivities,
                  const PowerNormaliserOptions& options = {});

  // out[i] = ln N(q_i) (or ln Ñ(q_i)) for every row of queries (cols == d, finite; Error{bad_input}
  // naming the row otherwise). 16-bit queries are widened exactly, 64 rows at a time: the bits of
  // the queries widened to float.
  void log_normalisers(ConstMatrixF queries, double* out) const;
  void log_normalisers(MatrixView<const Half> queries, double* out) const;
  void log_normalisers(MatrixView<const BFloat16> queries, double* out) const;

  double p() const { return p_; }
  NormaliserKind kind() const { return kind_; }
  bool exact() const { return kind_ != NormaliserKind::sampled; }
  double delta() const { return exact() ? 0.0 : options_.delta; }  // 0 when exact
  // The relative error an exact normaliser vouches for: kMomentTrust for exact_moments (each
  // query's rounding bound is at most that, or the query is summed over the keys), else 0.
  double exact_tolerance() const { return kind_ == NormaliserKind::exact_moments ? kMomentTrust : 0.0; }
  static constexpr double kMomentTrust = 1e-8;  // largest relative rounding bound of φ(q)ᵀMφ(q) used as N(q)
  double failure() const { return exact() ? 0.0 : options_.failure; }  // per query; 0 when exact
  double oversampling() const { return beta_; }                        // β (sampled)
  index_t sample_size() const { return static_cast<index_t>(sample_.size()); }
  double expected_sample_size() const { return expected_size_; }

 private:
  template <class T>
  void build(MatrixView<const T> keys, const std::vector<double>& sensitivities);
  template <class T>
  void build_moments(MatrixView<const T> keys);
  template <class T>
  void build_sample(MatrixView<const T> keys, const std::vector<double>& sensitivities);
  template <class T>
  void log_normalisers_of(MatrixView<const T> queries, double* out) const;

  // ln N(q) summed directly over the keys in double (q: d floats, the unscaled query).
  double log_normaliser_over_keys(const float* q) const;

  std::variant<ConstMatrixF, MatrixView<const Half>, MatrixView<const BFloat16>> keys_;
  index_t dim_;  // d
  double p_;
  PowerNormaliserOptions options_;
  NormaliserKind kind_ = NormaliserKind::sampled;
  int key_shift_ = 0;                 // keys are used as k·2^key_shift_
  LeverageScorer gram_;               // exact_gram
  index_t features_ = 0;              // D, exact_moments
  std::vector<double> moments_;       // D × D, exact_moments
  std::vector<double> moment_scale_;  // √M_aa, exact_moments
  double moment_rounding_ = 0.0;      // γ_c of the rounding bound, widened by 1%
  double beta_ = 0.0, expected_size_ = 0.0;
  std::vector<index_t> sample_;      // kept keys, ascending
  std::vector<double> sample_keys_;  // their rows ·2^key_shift_, in double (sample × d)
  std::vector<double> inverse_pi_;   // 1/π_j
};

}  // namespace levattn
