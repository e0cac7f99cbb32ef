#include "levattn/attention/heavy.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "attention/scaled_rows.hpp"
#include "core/first_error.hpp"

namespace levattn {

namespace {

// Keys with τ_j ≥ ε(1 − kScanSlack) are scanned: a superset of U that absorbs rounding in τ.
constexpr double kScanSlack = 1e-2;

// Query rows per tile: the tile's float product block stays near 4 MiB.
index_t tile_rows(index_t scanned) {
  return std::clamp<index_t>((index_t{1} << 20) / std::max<index_t>(scanned, 1), 8, 256);
}

ConstMatrixF checked_keys(ConstMatrixF keys, double eps) {
  check_eps(eps);
  require(keys.rows >= 1 && keys.cols >= 1,
          "keys: need at least one key of dimension ≥ 1, got " + shape_string(keys.rows, keys.cols));
  return keys;
}

double norm(const float* x, index_t d) { return std::sqrt(detail::dot_double(x, x, d)); }

}  // namespace

HeavySearch::HeavySearch(ConstMatrixF keys, double eps, double rcond)
    : keys_(checked_keys(keys, eps)), eps_(eps), scorer_(keys.cols, LeverageOptions{0.0, rcond}) {
  scorer_.fit(keys_);
  tau_ = scorer_.scores(keys_);
  uset_ = select_by_threshold(tau_.data(), keys_.rows, eps_, static_cast<double>(scorer_.rank()));
  for (index_t j = 0; j < keys_.rows; ++j)
    if (tau_[j] >= eps_ * (1.0 - kScanSlack)) cand_.push_back(j);

  const index_t d = keys_.cols;
  cand_keys_.resize(cand_.size() * static_cast<size_t>(d));
  float top = 0.0f;
  for (index_t j : cand_)
    for (index_t c = 0; c < d; ++c) top = std::max(top, std::fabs(keys_(j, c)));
  key_shift_ = detail::pow2_shift(&top, 1);
  for (size_t i = 0; i < cand_.size(); ++i)
    detail::scale_copy(keys_.row(cand_[i]), d, key_shift_, cand_keys_.data() + i * d);
}

HeavyStats HeavySearch::run(ConstMatrixF queries, const HeavySink& sink,
                            const std::function<void(index_t)>& progress) const {
  const index_t d = keys_.cols, m = queries.rows, n = keys_.rows;
  require(queries.cols == d, "queries have " + std::to_string(queries.cols) +
                                 " columns but keys have " + std::to_string(d));
  HeavyStats total;
  total.queries = m;
  if (m == 0) return total;

  std::vector<double> normaliser(static_cast<size_t>(m)), cut(static_cast<size_t>(m), 0.0);
  scorer_.normalisers(queries, normaliser.data());
  if (scorer_.cut_directions() > 0) scorer_.cut_normalisers(queries, cut.data());

  const index_t scanned = scanned_keys();
  double key_norm_max = 0.0;
  for (index_t j = 0; j < scanned; ++j)
    key_norm_max = std::max(key_norm_max, norm(cand_keys_.data() + j * d, d));
  // A query whose cut-direction weight ρ² = C/N stays below this cannot have a heavy key
  // outside the scanned set: A[i,j] ≤ (√τ_j + ρ)², and scanned keys have τ_j ≥ ε(1 − slack).
  const double rho_max = std::sqrt(eps_) * (1.0 - std::sqrt(1.0 - kScanSlack));
  const double eps_low = eps_ * (1.0 - 1e-9);  // the filter may only err towards keeping
  const index_t tq = tile_rows(scanned);
  const index_t tiles = (m + tq - 1) / tq;
  FirstError error;

#pragma omp parallel
  {
    std::vector<float> scaled(static_cast<size_t>(tq * d));
    std::vector<float> products(static_cast<size_t>(tq * scanned));
    std::vector<int> shift(static_cast<size_t>(tq));
    std::vector<double> all_products;  // fallback rows only
    std::vector<HeavyEntry> found;
    HeavyStats tile_stats;

    const auto fallback = [&](index_t qi) {
      ++tile_stats.fallback_queries;
      all_products.resize(static_cast<size_t>(n));
      double total_sq = 0.0;
      for (index_t j = 0; j < n; ++j) {
        all_products[j] = detail::dot_double(queries.row(qi), keys_.row(j), d);
        total_sq += all_products[j] * all_products[j];
      }
      if (total_sq == 0.0) {
        ++tile_stats.zero_queries;
        return;
      }
      for (index_t j = 0; j < n; ++j) {
        const double a = all_products[j] * all_products[j] / total_sq;
        if (a >= eps_) found.push_back({qi, j, a});
      }
    };

    const auto search_tile = [&](index_t begin, index_t rows) {
      for (index_t i = 0; i < rows; ++i) {
        shift[i] = detail::pow2_shift(queries.row(begin + i), d);
        detail::scale_copy(queries.row(begin + i), d, shift[i], scaled.data() + i * d);
      }
      if (scanned > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows),
                    static_cast<int>(scanned), static_cast<int>(d), 1.0f, scaled.data(),
                    static_cast<int>(d), cand_keys_.data(), static_cast<int>(d), 0.0f,
                    products.data(), static_cast<int>(scanned));
      for (index_t i = 0; i < rows; ++i) {
        const index_t qi = begin + i;
        const double q_norm = norm(scaled.data() + i * d, d);
        if (q_norm == 0.0) {
          ++tile_stats.zero_queries;
          continue;
        }
        const double nq = normaliser[qi];
        if (!(nq > 0.0) || cut[qi] > rho_max * rho_max * nq) {
          fallback(qi);
          continue;
        }
        const double threshold =
            std::ldexp(std::sqrt(eps_low * nq), shift[i] + key_shift_) -
            detail::float_dot_error_bound(d, q_norm, key_norm_max);
        const float* row = products.data() + i * scanned;
        for (index_t j = 0; j < scanned; ++j) {
          if (std::fabs(row[j]) < threshold) continue;
          ++tile_stats.rechecked;
          const double s = detail::dot_double(queries.row(qi), keys_.row(cand_[j]), d);
          const double a = s * s / nq;
          if (a >= eps_) found.push_back({qi, cand_[j], a});
        }
      }
    };

#pragma omp for ordered schedule(static, 1)
    for (index_t t = 0; t < tiles; ++t) {
      found.clear();
      tile_stats = HeavyStats{};
      const index_t begin = t * tq;
      if (!error.failed()) {
        try {
          search_tile(begin, std::min(tq, m - begin));
        } catch (...) {
          error.capture();
        }
      }
#pragma omp ordered
      if (!error.failed()) {
        try {
          if (!found.empty()) sink(found.data(), static_cast<index_t>(found.size()));
          total.heavy_count += static_cast<index_t>(found.size());
          total.zero_queries += tile_stats.zero_queries;
          total.fallback_queries += tile_stats.fallback_queries;
          total.rechecked += tile_stats.rechecked;
          if (progress) progress(begin + std::min(tq, m - begin));
        } catch (...) {
          error.capture();
        }
      }
    }
  }
  error.rethrow_if_any();
  return total;
}

}  // namespace levattn
