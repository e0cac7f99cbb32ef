#include "levattn/attention/brute_force.hpp"

#include <algorithm>
#include <cmath>

#include "attention/ordered_tiles.hpp"
#include "core/finite_rows.hpp"
#include "linalg/blas.hpp"
#include "linalg/scaled_rows.hpp"

namespace levattn {

namespace {
// Keys whose largest magnitude lies in [2⁻³⁰, 2³⁰) are used in place; others are scaled first.
bool keys_in_safe_range(int shift) { return shift > -30 && shift <= 30; }
}  // namespace

HeavyStats brute_force_heavy(ConstMatrixF queries, ConstMatrixF keys, double eps, const HeavySink& sink) {
  check_eps(eps);
  const index_t d = keys.cols, n = keys.rows, m = queries.rows;
  require(n >= 1 && d >= 1, "keys: need at least one key of dimension ≥ 1");
  require(queries.cols == d,
          "queries have " + std::to_string(queries.cols) + " columns but keys have " + std::to_string(d));
  if (m == 0) return HeavyStats{};

  require_finite_rows(keys, "keys");
  require_finite_rows(queries, "queries");

  // Power-of-two scaling changes no A[i,j] (they are ratios) but keeps the GEMM in range.
  const int key_shift = linalg::pow2_shift(keys);
  std::vector<float> scaled_keys;
  const float* kdata = keys.data;
  index_t kstride = keys.stride;
  if (!keys_in_safe_range(key_shift)) {
    scaled_keys.resize(static_cast<size_t>(n * d));
    for (index_t j = 0; j < n; ++j) linalg::scale_copy(keys.row(j), d, key_shift, &scaled_keys[j * d]);
    kdata = scaled_keys.data();
    kstride = d;
  }

  // Tall query tiles amortise the GEMM packing of all n keys (up to 32 MiB of products a thread).
  const index_t tq = std::clamp<index_t>((index_t{1} << 23) / n, 1, 64);
  struct Scratch {
    std::vector<float> scaled, products;
  };
  const auto make_scratch = [&] {
    return Scratch{std::vector<float>(static_cast<size_t>(tq * d)), std::vector<float>(static_cast<size_t>(tq * n))};
  };
  const auto search_tile = [&](Scratch& s, index_t t, std::vector<HeavyEntry>& found, HeavyStats& stats) {
    const index_t begin = t * tq, rows = std::min(tq, m - begin);
    for (index_t i = 0; i < rows; ++i) {
      const int shift = linalg::pow2_shift(queries.row(begin + i), d);
      linalg::scale_copy(queries.row(begin + i), d, shift, &s.scaled[i * d]);
    }
    linalg::sgemm(false, true, 1.0f, ConstMatrixF(s.scaled.data(), rows, d), ConstMatrixF(kdata, n, d, kstride), 0.0f,
                  MatrixF(s.products.data(), rows, n));
    for (index_t i = 0; i < rows; ++i) {
      const float* row = &s.products[i * n];
      const double total_sq = linalg::dot_double(row, row, n);
      if (total_sq == 0.0) {
        ++stats.zero_queries;
        continue;
      }
      const double cut = eps * total_sq;
      // A float pre-filter a little below the cut, then the exact test in double.
      const float near = static_cast<float>(std::sqrt(cut) * (1.0 - 1e-5));
      for (index_t j = 0; j < n; ++j) {
        if (std::fabs(row[j]) < near) continue;
        const double sq = static_cast<double>(row[j]) * row[j];
        if (sq >= cut) found.push_back({begin + i, j, sq / total_sq});
      }
    }
  };
  HeavyStats total = detail::search_tiles_in_order((m + tq - 1) / tq, make_scratch, search_tile, sink, [](index_t) {});
  total.queries = m;
  return total;
}

}  // namespace levattn
