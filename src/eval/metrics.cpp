// Capture of heavy entries, relative output error, attention over a kept key set (metrics.hpp).
#include "levattn/eval/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace levattn {

double CaptureCount::fraction(size_t t) const {
  return heavy[t] == 0 ? std::numeric_limits<double>::quiet_NaN()
                       : static_cast<double>(captured[t]) / static_cast<double>(heavy[t]);
}

void count_capture(const std::vector<WeightedEntry>& heavy, const std::vector<double>& eps,
                   const std::vector<char>& kept_key, CaptureCount& count) {
  for (const WeightedEntry& e : heavy)
    for (size_t t = 0; t < eps.size(); ++t)
      if (e.a >= eps[t]) {
        ++count.heavy[t];
        if (kept_key[e.key]) ++count.captured[t];
      }
}

void count_capture(const std::vector<WeightedEntry>& heavy, const std::vector<double>& eps,
                   const std::vector<index_t>& kept, index_t k, CaptureCount& count) {
  for (const WeightedEntry& e : heavy) {
    const auto row = kept.begin() + e.query * k;
    const bool in = std::binary_search(row, row + k, e.key);
    for (size_t t = 0; t < eps.size(); ++t)
      if (e.a >= eps[t]) {
        ++count.heavy[t];
        if (in) ++count.captured[t];
      }
  }
}

double ErrorSums::relative() const {
  if (ref2 == 0.0) return diff2 == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(diff2 / ref2);
}

std::vector<float> attend_kept(ConstMatrixF queries, ConstMatrixF keys, ConstMatrixF values,
                               const std::vector<index_t>& kept, const AttentionOptions& options,
                               const std::vector<double>& log_normaliser) {
  const index_t m = queries.rows, d = keys.cols, dv = values.cols;
  const index_t k = static_cast<index_t>(kept.size());
  require(k >= 1, "attention over kept keys: the kept set is empty");
  require(static_cast<index_t>(log_normaliser.size()) == m,
          "attention over kept keys: need one log normaliser per query");
  std::vector<float> kg(static_cast<size_t>(k * d)), vg(static_cast<size_t>(k * dv));
  for (index_t t = 0; t < k; ++t) {
    std::copy(keys.row(kept[t]), keys.row(kept[t]) + d, kg.data() + t * d);
    std::copy(values.row(kept[t]), values.row(kept[t]) + dv, vg.data() + t * dv);
  }
  std::vector<float> out(static_cast<size_t>(m * dv));
  std::vector<double> lse(static_cast<size_t>(m));
  attend_exact(queries, ConstMatrixF(kg.data(), k, d), ConstMatrixF(vg.data(), k, dv), options,
               MatrixF(out.data(), m, dv), lse.data());
  if (options.f.kind == ScoreKind::power)  // rescale to the full normaliser: the exact truncation
    for (index_t i = 0; i < m; ++i) {
      const double full = log_normaliser[i];
      const float factor =
          full == -std::numeric_limits<double>::infinity() || lse[i] == -std::numeric_limits<double>::infinity()
              ? 0.0f
              : static_cast<float>(std::exp(lse[i] - full));
      for (index_t c = 0; c < dv; ++c) out[i * dv + c] *= factor;
    }
  return out;
}

}  // namespace levattn
