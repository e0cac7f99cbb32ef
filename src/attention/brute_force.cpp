#include "levattn/attention/brute_force.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "attention/ordered_tiles.hpp"
#include "core/finite_rows.hpp"
#include "linalg/blas.hpp"
#include "linalg/scaled_rows.hpp"
#include "linalg/widen_rows.hpp"

namespace levattn {

namespace {
// Keys whose largest magnitude lies in [2⁻³⁰, 2³⁰) are used in place; others are scaled first.
bool keys_in_safe_range(int shift) { return shift > -30 && shift <= 30; }
// Keys widened (and scaled) per GEMM when they cannot be read in place.
constexpr index_t kKeyBlock = 1024;

template <class T>
HeavyStats brute_force(ConstMatrixF queries, MatrixView<const T> keys, double eps, const HeavySink& sink) {
  check_eps(eps);
  const index_t d = keys.cols, n = keys.rows, m = queries.rows;
  require(n >= 1 && d >= 1, "keys: need at least one key of dimension ≥ 1");
  require(queries.cols == d,
          "queries have " + std::to_string(queries.cols) + " columns but keys have " + std::to_string(d));
  if (m == 0) return HeavyStats{};

  require_finite_rows(keys, "keys");
  require_finite_rows(queries, "queries");

  // Power-of-two scaling changes no A[i,j] (they are ratios) but keeps the GEMM in range: keys
  // outside [2⁻³⁰, 2³⁰) are scaled (exact but for subnormal results). Float keys in range are read
  // in place; 16-bit keys and out-of-range float keys are widened (and scaled) kKeyBlock rows at
  // a time into per-thread scratch, so no copy of all keys is made.
  const int key_shift = linalg::pow2_shift(keys);
  const bool in_place = std::is_same_v<T, float> && keys_in_safe_range(key_shift);
  const int applied_shift = keys_in_safe_range(key_shift) ? 0 : key_shift;  // keys in range keep their values
  const index_t key_block = in_place ? n : std::min(kKeyBlock, n);

  // Tall query tiles amortise the GEMM packing of all n keys (up to 32 MiB of products a thread).
  const index_t tq = std::clamp<index_t>((index_t{1} << 23) / n, 1, 64);
  struct Scratch {
    std::vector<float> scaled, products, keys;
  };
  const auto make_scratch = [&] {
    return Scratch{std::vector<float>(static_cast<size_t>(tq * d)), std::vector<float>(static_cast<size_t>(tq * n)),
                   std::vector<float>(in_place ? 0 : static_cast<size_t>(key_block * d))};
  };
  // products (rows × n, row stride n) = the scaled query rows times the scaled keys.
  const auto products_of = [&](Scratch& s, index_t rows) {
    const ConstMatrixF tile(s.scaled.data(), rows, d);
    for (index_t first = 0; first < n; first += key_block) {
      const index_t count = std::min(key_block, n - first);
      ConstMatrixF block;
      if constexpr (std::is_same_v<T, float>)
        if (in_place) block = keys.rows_range(first, first + count);
      if (!in_place) {
        widen_rows(keys, first, count, s.keys.data());
        if (applied_shift != 0)
          for (index_t j = 0; j < count; ++j) linalg::scale_copy(&s.keys[j * d], d, applied_shift, &s.keys[j * d]);
        block = ConstMatrixF(s.keys.data(), count, d);
      }
      linalg::sgemm(false, true, 1.0f, tile, block, 0.0f, MatrixF(s.products.data() + first, rows, count, n));
    }
  };
  const auto search_tile = [&](Scratch& s, index_t t, std::vector<HeavyEntry>& found, HeavyStats& stats) {
    const index_t begin = t * tq, rows = std::min(tq, m - begin);
    for (index_t i = 0; i < rows; ++i) {
      const int shift = linalg::pow2_shift(queries.row(begin + i), d);
      linalg::scale_copy(queries.row(begin + i), d, shift, &s.scaled[i * d]);
    }
    products_of(s, rows);
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
}  // namespace

HeavyStats brute_force_heavy(ConstMatrixF queries, ConstMatrixF keys, double eps, const HeavySink& sink) {
  return brute_force(queries, keys, eps, sink);
}
HeavyStats brute_force_heavy(ConstMatrixF queries, MatrixView<const Half> keys, double eps, const HeavySink& sink) {
  return brute_force(queries, keys, eps, sink);
}
HeavyStats brute_force_heavy(ConstMatrixF queries, MatrixView<const BFloat16> keys, double eps, const HeavySink& sink) {
  return brute_force(queries, keys, eps, sink);
}

}  // namespace levattn
