// What the evaluation measures for a selection: the capture of heavy entries and the relative
// output error, against the exact reference (exact_reference.hpp).
//
//   capture(ε) = #{(i,j) : A[i,j] ≥ ε, key j kept for query i} / #{(i,j) : A[i,j] ≥ ε}
//   error      = ‖O − Ô‖_F / ‖O‖_F, summed over every row of every head evaluated
// Ô is attention over the kept keys computed by the exact kernel on the gathered keys (as
// LevAttention gathers them): softmax normalised over the kept keys; |x|^p normalised by the full
// normaliser Σ_l |c·<q,k_l>|^p (the reference's, exact), so Ô is the truncation Σ_{kept} A·v.
#pragma once

#include <vector>

#include "levattn/attention/exact.hpp"
#include "levattn/eval/exact_reference.hpp"

namespace levattn {

struct CaptureCount {
  std::vector<index_t> heavy, captured;  // per ε of the list it was made for
  explicit CaptureCount(size_t thresholds = 0) : heavy(thresholds, 0), captured(thresholds, 0) {}
  // captured / heavy for threshold t; NaN when there are no heavy entries at all (nothing to capture).
  double fraction(size_t t) const;
};

// Adds the entries of `heavy` (by query) with A ≥ eps[t]. kept_key[j] != 0 when key j is kept
// (one set for every query). Entries' keys must index kept_key.
void count_capture(const std::vector<WeightedEntry>& heavy, const std::vector<double>& eps,
                   const std::vector<char>& kept_key, CaptureCount& count);
// The same with a set per query: query i keeps kept[i·k, (i+1)·k), ascending.
void count_capture(const std::vector<WeightedEntry>& heavy, const std::vector<double>& eps,
                   const std::vector<index_t>& kept, index_t k, CaptureCount& count);

struct ErrorSums {
  double diff2 = 0.0, ref2 = 0.0;  // Σ (O − Ô)², Σ O²
  template <class T>
  void add(const std::vector<double>& reference, const T* approx) {
    for (size_t e = 0; e < reference.size(); ++e) {
      const double diff = reference[e] - static_cast<double>(approx[e]);
      diff2 += diff * diff;
      ref2 += reference[e] * reference[e];
    }
  }
  // ‖O − Ô‖_F / ‖O‖_F; 0 when both are 0, +∞ when only O is.
  double relative() const;
};

// Ô (m×d_v, row-major) for the kept keys (ascending, non-empty) of keys/values, as described
// above; log_normaliser is the reference's (m entries, used by |x|^p only). Throws the errors of
// attend_exact.
std::vector<float> attend_kept(ConstMatrixF queries, ConstMatrixF keys, ConstMatrixF values,
                               const std::vector<index_t>& kept, const AttentionOptions& options,
                               const std::vector<double>& log_normaliser);

}  // namespace levattn
