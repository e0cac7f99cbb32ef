#include "levattn/attention/heavy.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "attention/scaled_rows.hpp"
#include "attention/ordered_tiles.hpp"

namespace levattn {

namespace {

// Keys with τ_j ≥ ε(1 − kScanSlack) are scanned: a superset of U that absorbs rounding in τ
// (5× the worst relative error the tests allow at cond(K) = 1e6; the extra keys cost little).
constexpr double kScanSlack = 5e-2;

// Query rows per tile: the tile's float product block stays near 4 MiB.
index_t tile_rows(index_t scanned) {
  return std::clamp<index_t>((index_t{1} << 20) / std::max<index_t>(scanned, 1), 8, 1024);
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
  for (size_t i = 0; i < cand_.size(); ++i) {
    float* scaled = cand_keys_.data() + i * d;
    detail::scale_copy(keys_.row(cand_[i]), d, key_shift_, scaled);
    cand_norm_max_ = std::max(cand_norm_max_, norm(scaled, d));
  }
}

HeavyStats HeavySearch::run(ConstMatrixF queries, const HeavySink& sink,
                            const std::function<void(index_t)>& progress) const {
  const index_t d = keys_.cols, m = queries.rows, n = keys_.rows;
  require(queries.cols == d, "queries have " + std::to_string(queries.cols) +
                                 " columns but keys have " + std::to_string(d));
  if (m == 0) return HeavyStats{};

  const index_t scanned = scanned_keys();
  // A query whose cut-direction weight ρ² = C/N stays below this cannot have a heavy key
  // outside the scanned set: A[i,j] ≤ (√τ_j + ρ)², and scanned keys have τ_j ≥ ε(1 − slack).
  const double rho_max = std::sqrt(eps_) * (1.0 - std::sqrt(1.0 - kScanSlack));
  const double eps_low = eps_ * (1.0 - 1e-9);  // the filter may only err towards keeping
  const index_t tq = tile_rows(scanned);
  struct Scratch {
    std::vector<float> scaled, products;
    std::vector<int> shift;
    std::vector<double> normaliser, cut;  // qᵀGq and its part along cut directions
    std::vector<double> all_products;     // fallback rows only
  };
  const auto make_scratch = [&] {
    return Scratch{std::vector<float>(static_cast<size_t>(tq * d)),
                   std::vector<float>(static_cast<size_t>(tq * scanned)),
                   std::vector<int>(static_cast<size_t>(tq)),
                   std::vector<double>(static_cast<size_t>(tq)),
                   std::vector<double>(static_cast<size_t>(tq), 0.0), {}};
  };
  // Normalisers of a tile while its rows are in cache; a non-finite value is reported with its
  // row number in `queries`.
  const auto tile_normalisers = [&](Scratch& s, index_t begin, index_t rows) {
    const ConstMatrixF tile = queries.rows_range(begin, begin + rows);
    try {
      scorer_.normalisers(tile, s.normaliser.data());
      if (scorer_.cut_directions() > 0) scorer_.cut_normalisers(tile, s.cut.data());
    } catch (const Error&) {
      index_t r = 0;
      while (r < rows && std::all_of(tile.row(r), tile.row(r) + d, [](float v) { return std::isfinite(v); }))
        ++r;
      throw Error(ErrorKind::bad_input,
                  "queries: row " + std::to_string(begin + r) + " holds a NaN or an infinity");
    }
  };

  // Every key for query qi, in double (see the header: rows the universal set cannot vouch for).
  const auto fallback = [&](Scratch& s, index_t qi, std::vector<HeavyEntry>& found, HeavyStats& stats) {
    ++stats.fallback_queries;
    s.all_products.resize(static_cast<size_t>(n));
    double total_sq = 0.0;
    for (index_t j = 0; j < n; ++j) {
      s.all_products[j] = detail::dot_double(queries.row(qi), keys_.row(j), d);
      total_sq += s.all_products[j] * s.all_products[j];
    }
    if (total_sq == 0.0) {
      ++stats.zero_queries;
      return;
    }
    for (index_t j = 0; j < n; ++j) {
      const double a = s.all_products[j] * s.all_products[j] / total_sq;
      if (a >= eps_) found.push_back({qi, j, a});
    }
  };

  const auto search_tile = [&](Scratch& s, index_t t, std::vector<HeavyEntry>& found, HeavyStats& stats) {
    const index_t begin = t * tq, rows = std::min(tq, m - begin);
    tile_normalisers(s, begin, rows);
    for (index_t i = 0; i < rows; ++i) {
      s.shift[i] = detail::pow2_shift(queries.row(begin + i), d);
      detail::scale_copy(queries.row(begin + i), d, s.shift[i], s.scaled.data() + i * d);
    }
    if (scanned > 0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows),
                  static_cast<int>(scanned), static_cast<int>(d), 1.0f, s.scaled.data(),
                  static_cast<int>(d), cand_keys_.data(), static_cast<int>(d), 0.0f,
                  s.products.data(), static_cast<int>(scanned));
    for (index_t i = 0; i < rows; ++i) {
      const index_t qi = begin + i;
      const double q_norm = norm(s.scaled.data() + i * d, d);
      if (q_norm == 0.0) {
        ++stats.zero_queries;
        continue;
      }
      const double nq = s.normaliser[i];
      if (!(nq > 0.0) || s.cut[i] > rho_max * rho_max * nq) {
        fallback(s, qi, found, stats);
        continue;
      }
      const double threshold = std::ldexp(std::sqrt(eps_low * nq), s.shift[i] + key_shift_) -
                               detail::float_dot_error_bound(d, q_norm, cand_norm_max_);
      const float* row = s.products.data() + i * scanned;
      for (index_t j = 0; j < scanned; ++j) {
        if (std::fabs(row[j]) < threshold) continue;
        ++stats.rechecked;
        const double p = detail::dot_double(queries.row(qi), keys_.row(cand_[j]), d);
        const double a = p * p / nq;
        if (a >= eps_) found.push_back({qi, cand_[j], a});
      }
    }
  };

  HeavyStats total = detail::search_tiles_in_order(
      (m + tq - 1) / tq, make_scratch, search_tile, sink,
      [&](index_t t) { if (progress) progress(std::min(m, (t + 1) * tq)); });
  total.queries = m;
  return total;
}

}  // namespace levattn
