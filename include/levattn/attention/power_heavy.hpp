// Every heavy entry of attention with f(x) = |x|^p, A[i,j] = |<q_i,k_j>|^p / Σ_l |<q_i,k_l>|^p,
// for any p > 0, without forming A.
//
// Method: ℓp Lewis weights (scores/lewis.hpp) give sensitivity bounds s_j ≥ A[i,j] for every
// query, so U = {j : s_j ≥ ε} holds every entry A ≥ ε, |U| ≤ r/ε (p ≤ 2) or r^{p/2}/ε (p > 2).
// Keys with s_j ≥ ε(1 − 5e-2) are scanned (absorbing the weights' residual — 1e-6, or up to 1e-3
// when rounding limits it (lewis.hpp) — and rounding). The normaliser N(q) comes from a PowerNormaliser
// (scores/power_normaliser.hpp): qᵀGq for p = 2 (relative error growing like 1e-16·cond(K)², so
// entries that close to ε can fall on either side), the fourth moments for p = 4 when affordable
// (trusted to 1e-8 per query), else estimated to (1±δ) by Lewis-weight sampling.
//
// The scan's products come from a float GEMM of power-of-two-scaled rows; a product is re-checked
// in double (HeavyStats::rechecked) whenever its float value, widened by its rigorous rounding
// bound, could clear the threshold, so the entries are those of forming every product in double.
//
// Reported: every scanned entry whose value Â = |<q,k>|^p / N̂(q) — <q,k> in double — clears
// ε/(1+δ) (ε itself for qᵀGq; ε/(1+1e-8) for the fourth moments, whose per-query rounding bound
// is trusted up to 1e-8 and widened by 1%), with Â as its score. Guarantee: when N̂(q) is
// within (1±δ) of N(q) — for each query with probability ≥ 1 − normaliser().failure() — every
// entry A ≥ ε of that query is reported (recall 1); reported entries have A ≥ ε/(1+δ)·(1−δ), so
// precision may be below 1 when estimated() (verify_power_heavy measures it). Queries with
// N(q) = 0 yield nothing (zero_queries). Queries with weight along directions below the rank
// cut-off, where the weights say nothing, are searched over all keys with the exact normaliser
// (fallback_queries). Output order and values never depend on the thread count.
//
// 16-bit keys (f16, bf16) are read as they are: the Lewis weights, the normaliser, the scan and the
// fallback products all widen rows exactly a block at a time, with no float copy of the keys. What
// is said above then holds for the ROUNDED keys, and the search (and the brute force) reports, bit
// for bit, what it reports on the keys widened to float. Queries are float32.
#pragma once

#include <functional>
#include <optional>
#include <utility>
#include <variant>
#include <vector>

#include "levattn/attention/heavy.hpp"
#include "levattn/attention/verify.hpp"
#include "levattn/core/half.hpp"
#include "levattn/scores/lewis.hpp"
#include "levattn/scores/power_normaliser.hpp"

namespace levattn {

struct PowerHeavyOptions {
  LewisOptions lewis;
  PowerNormaliserOptions normaliser;
};

class PowerHeavySearch {
 public:
  // keys: n×d, n ≥ 1, finite; the view must outlive the search. Throws Error{bad_input} on bad
  // keys, p ≤ 0 or ε ∉ (0, 1]; Error{failure} if the Lewis weights do not converge.
  PowerHeavySearch(ConstMatrixF keys, double p, double eps, const PowerHeavyOptions& options = {});
  PowerHeavySearch(MatrixView<const Half> keys, double p, double eps, const PowerHeavyOptions& options = {});
  PowerHeavySearch(MatrixView<const BFloat16> keys, double p, double eps, const PowerHeavyOptions& options = {});

  // Streams the reported entries of the rows of queries (m×d) to sink in (query, key) order.
  HeavyStats run(ConstMatrixF queries, const HeavySink& sink, const std::function<void(index_t)>& progress = {}) const;

  double p() const { return p_; }
  double eps() const { return eps_; }
  bool estimated() const { return !normaliser_.exact(); }
  // ε/((1+δ)(1+t)), t = normaliser().exact_tolerance(): ε lowered by the relative error the normaliser
  // bounds per query (nothing for qᵀGq, whose error is not bounded per query).
  double report_threshold() const {
    return eps_ / ((1.0 + normaliser_.delta()) * (1.0 + normaliser_.exact_tolerance()));
  }
  const LewisWeights& lewis() const { return lewis_; }
  const std::vector<double>& sensitivities() const { return sens_; }
  // U = {j : s_j ≥ ε} with bound Σ_j s_j/ε (= r/ε or r^{p/2}/ε).
  const UniversalSet& universal_set() const { return uset_; }
  const PowerNormaliser& normaliser() const { return normaliser_; }
  index_t scanned_keys() const { return static_cast<index_t>(cand_.size()); }

 private:
  using Keys = std::variant<ConstMatrixF, MatrixView<const Half>, MatrixView<const BFloat16>>;
  template <class T>
  PowerHeavySearch(MatrixView<const T> keys, double p, double eps, const PowerHeavyOptions& options,
                   std::in_place_t typed);

  Keys keys_;
  double p_, eps_;
  LewisWeights lewis_;
  std::vector<double> sens_;
  UniversalSet uset_;
  std::vector<index_t> cand_;
  PowerNormaliser normaliser_;
  std::optional<LeverageScorer> cut_check_;  // when the weights cut directions
};

// Every entry A[i,j] ≥ ε for f(x) = |x|^p by brute force: all products in double, exact
// normalisers. O(m·n·d). Streams to sink in (query, key) order. 16-bit keys are widened exactly a
// block at a time.
HeavyStats brute_force_power_heavy(ConstMatrixF queries, ConstMatrixF keys, double p, double eps,
                                   const HeavySink& sink);
HeavyStats brute_force_power_heavy(ConstMatrixF queries, MatrixView<const Half> keys, double p, double eps,
                                   const HeavySink& sink);
HeavyStats brute_force_power_heavy(ConstMatrixF queries, MatrixView<const BFloat16> keys, double p, double eps,
                                   const HeavySink& sink);

// Runs `search` and the brute force on the rows of `sample` and compares them: recall over true
// entries A ≥ ε(1+tolerance), precision = reported entries whose true A ≥ ε(1−tolerance). keys are
// the ones the search was built on.
VerifyReport verify_power_heavy(const PowerHeavySearch& search, ConstMatrixF keys, ConstMatrixF sample,
                                double tolerance = 1e-9);
VerifyReport verify_power_heavy(const PowerHeavySearch& search, MatrixView<const Half> keys, ConstMatrixF sample,
                                double tolerance = 1e-9);
VerifyReport verify_power_heavy(const PowerHeavySearch& search, MatrixView<const BFloat16> keys, ConstMatrixF sample,
                                double tolerance = 1e-9);

}  // namespace levattn
