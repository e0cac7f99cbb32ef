#include "levattn/attention/heavy.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "attention/ordered_tiles.hpp"
#include "levattn/core/finite_rows.hpp"
#include "linalg/blas.hpp"
#include "linalg/scaled_rows.hpp"
#include "linalg/widen_rows.hpp"

namespace levattn {

namespace {

// Keys with τ_j ≥ ε(1 − kScanSlack) are scanned: a superset of U that absorbs rounding in τ
// (5× the worst relative error the tests allow at cond(K) = 1e6; the extra keys cost little).
constexpr double kScanSlack = 5e-2;

// Query rows per tile: the tile's float product block stays near 4 MiB.
index_t tile_rows(index_t scanned) {
  return std::clamp<index_t>((index_t{1} << 20) / std::max<index_t>(scanned, 1), 8, 1024);
}

template <class T>
MatrixView<const T> checked_keys(MatrixView<const T> keys, double eps) {
  check_eps(eps);
  require(keys.rows >= 1 && keys.cols >= 1,
          "keys: need at least one key of dimension ≥ 1, got " + shape_string(keys.rows, keys.cols));
  return keys;
}

double norm(const float* x, index_t d) { return std::sqrt(linalg::dot_double(x, x, d)); }

// The products of one query with every row of keys, in double; 16-bit rows are widened exactly,
// a block at a time, so the bits are those of the float path on the widened keys.
template <class T>
void products_of(const float* query, MatrixView<const T> keys, double* out) {
  const index_t d = keys.cols;
  if constexpr (std::is_same_v<T, float>) {
    for (index_t j = 0; j < keys.rows; ++j) out[j] = linalg::dot_double(query, keys.row(j), d);
  } else {
    constexpr index_t kBlock = 64;
    std::vector<float> block(static_cast<size_t>(std::min(kBlock, keys.rows) * d));
    for (index_t begin = 0; begin < keys.rows; begin += kBlock) {
      const index_t rows = std::min(kBlock, keys.rows - begin);
      widen_rows(keys, begin, rows, block.data());
      for (index_t r = 0; r < rows; ++r) out[begin + r] = linalg::dot_double(query, block.data() + r * d, d);
    }
  }
}

template <class T>
HeavyScanSet scan_set_of(const LeverageScorer& fitted, MatrixView<const T> keys, index_t first, double eps) {
  const std::vector<double> tau = fitted.scores(keys);
  const double low = heavy_scan_threshold(eps);
  const index_t d = keys.cols;
  HeavyScanSet scan;
  for (index_t j = 0; j < keys.rows; ++j) {
    if (!(tau[j] >= low)) continue;
    scan.index.push_back(first + j);
    scan.tau.push_back(tau[j]);
    scan.rows.resize(scan.rows.size() + static_cast<size_t>(d));
    widen_rows(keys, j, 1, scan.rows.data() + scan.rows.size() - d);
  }
  return scan;
}

// The fallback of a search that holds its keys: every product, in double.
template <class T>
HeavyFallback over_all_keys(MatrixView<const T> keys, double eps) {
  return [keys, eps](index_t qi, const float* q, std::vector<HeavyEntry>& found, HeavyStats& stats) {
    std::vector<double> products(static_cast<size_t>(keys.rows));
    products_of(q, keys, products.data());
    if (!heavy_entries_from_products(qi, products.data(), keys.rows, eps, found)) ++stats.zero_queries;
  };
}

}  // namespace

double heavy_scan_threshold(double eps) { return eps * (1.0 - kScanSlack); }

HeavyScanSet heavy_scan_set(const LeverageScorer& fitted, ConstMatrixF keys, index_t first, double eps) {
  return scan_set_of(fitted, keys, first, eps);
}
HeavyScanSet heavy_scan_set(const LeverageScorer& fitted, MatrixView<const Half> keys, index_t first, double eps) {
  return scan_set_of(fitted, keys, first, eps);
}
HeavyScanSet heavy_scan_set(const LeverageScorer& fitted, MatrixView<const BFloat16> keys, index_t first, double eps) {
  return scan_set_of(fitted, keys, first, eps);
}

void heavy_products(const float* query, ConstMatrixF keys, double* out) { products_of(query, keys, out); }
void heavy_products(const float* query, MatrixView<const Half> keys, double* out) { products_of(query, keys, out); }
void heavy_products(const float* query, MatrixView<const BFloat16> keys, double* out) { products_of(query, keys, out); }

bool heavy_entries_from_products(index_t query, const double* products, index_t n, double eps,
                                 std::vector<HeavyEntry>& found) {
  double total_sq = 0.0;
  for (index_t j = 0; j < n; ++j) total_sq += products[j] * products[j];
  if (total_sq == 0.0) return false;
  for (index_t j = 0; j < n; ++j) {
    const double a = products[j] * products[j] / total_sq;
    if (a >= eps) found.push_back({query, j, a});
  }
  return true;
}

HeavySearch::HeavySearch(ConstMatrixF keys, double eps, double rcond)
    : n_(checked_keys(keys, eps).rows), eps_(eps), scorer_(keys.cols, LeverageOptions{0.0, rcond}) {
  fit_on(keys);
}

HeavySearch::HeavySearch(MatrixView<const Half> keys, double eps, double rcond)
    : n_(checked_keys(keys, eps).rows), eps_(eps), scorer_(keys.cols, LeverageOptions{0.0, rcond}) {
  fit_on(keys);
}

HeavySearch::HeavySearch(MatrixView<const BFloat16> keys, double eps, double rcond)
    : n_(checked_keys(keys, eps).rows), eps_(eps), scorer_(keys.cols, LeverageOptions{0.0, rcond}) {
  fit_on(keys);
}

template <class T>
void HeavySearch::fit_on(MatrixView<const T> keys) {
  scorer_.fit(keys);  // refuses a NaN/Inf row, naming it
  fallback_ = over_all_keys(keys, eps_);
  prepare_scan(scan_set_of(scorer_, keys, 0, eps_));
}

HeavySearch::HeavySearch(LeverageScorer fitted, index_t n, double eps, HeavyScanSet scan, HeavyFallback fallback)
    : n_(n), eps_(eps), scorer_(std::move(fitted)), fallback_(std::move(fallback)) {
  check_eps(eps);
  require(n >= 1 && n == scorer_.count(), "heavy search: the scorer was fitted on " + std::to_string(scorer_.count()) +
                                              " keys, not n = " + std::to_string(n));
  const auto m = static_cast<index_t>(scan.index.size());
  require(scan.tau.size() == scan.index.size() && scan.rows.size() == scan.index.size() * size_t(scorer_.dim()),
          "heavy search: the scan set's indices, scores and rows disagree in length");
  for (index_t i = 0; i < m; ++i)
    require(scan.index[i] >= 0 && scan.index[i] < n && (i == 0 || scan.index[i - 1] < scan.index[i]),
            "heavy search: scan-set indices must ascend within [0, n)");
  prepare_scan(std::move(scan));
}

void HeavySearch::prepare_scan(HeavyScanSet scan) {
  uset_ = select_by_threshold(scan.tau.data(), static_cast<index_t>(scan.tau.size()), eps_,
                              static_cast<double>(scorer_.rank()));
  for (index_t& j : uset_.indices) j = scan.index[static_cast<size_t>(j)];
  cand_ = std::move(scan.index);
  cand_rows_ = std::move(scan.rows);

  const index_t d = scorer_.dim();
  key_shift_ = linalg::pow2_shift(cand_rows_.data(), static_cast<index_t>(cand_rows_.size()));
  cand_keys_.resize(cand_rows_.size());
  for (size_t i = 0; i < cand_.size(); ++i) {
    float* scaled = cand_keys_.data() + i * d;
    linalg::scale_copy(cand_rows_.data() + i * d, d, key_shift_, scaled);
    cand_norm_max_ = std::max(cand_norm_max_, norm(scaled, d));
  }
}

index_t HeavySearch::query_tile_rows() const { return tile_rows(scanned_keys()); }

HeavyStats HeavySearch::run(ConstMatrixF queries, const HeavySink& sink,
                            const std::function<void(index_t)>& progress) const {
  const index_t d = scorer_.dim(), m = queries.rows;
  require(queries.cols == d,
          "queries have " + std::to_string(queries.cols) + " columns but keys have " + std::to_string(d));
  if (m == 0) return HeavyStats{};

  const index_t scanned = scanned_keys();
  // A query whose cut-direction weight ρ² = C/N stays below this cannot have a heavy key
  // outside the scanned set: A[i,j] ≤ (√τ_j + ρ)², and scanned keys have τ_j ≥ ε(1 − slack).
  const double rho_max = std::sqrt(eps_) * (1.0 - std::sqrt(1.0 - kScanSlack));
  const double eps_low = eps_ * (1.0 - 1e-9);  // the filter may only err towards keeping
  const index_t tq = query_tile_rows();
  struct Scratch {
    std::vector<float> scaled, products;
    std::vector<int> shift;
    std::vector<double> normaliser, cut;  // qᵀGq and its part along cut directions
  };
  const auto make_scratch = [&] {
    return Scratch{std::vector<float>(static_cast<size_t>(tq * d)),
                   std::vector<float>(static_cast<size_t>(tq * scanned)), std::vector<int>(static_cast<size_t>(tq)),
                   std::vector<double>(static_cast<size_t>(tq)), std::vector<double>(static_cast<size_t>(tq), 0.0)};
  };
  // Normalisers of a tile while its rows are in cache; a non-finite value is reported with its
  // row number in `queries`.
  const auto tile_normalisers = [&](Scratch& s, index_t begin, index_t rows) {
    const ConstMatrixF tile = queries.rows_range(begin, begin + rows);
    try {
      scorer_.normalisers(tile, s.normaliser.data());
      if (scorer_.cut_directions() > 0) scorer_.cut_normalisers(tile, s.cut.data());
    } catch (const Error&) {
      throw Error(ErrorKind::bad_input, nonfinite_row_message("queries", begin + first_nonfinite_row(tile)));
    }
  };

  const auto search_tile = [&](Scratch& s, index_t t, std::vector<HeavyEntry>& found, HeavyStats& stats) {
    const index_t begin = t * tq, rows = std::min(tq, m - begin);
    tile_normalisers(s, begin, rows);
    for (index_t i = 0; i < rows; ++i) {
      s.shift[i] = linalg::pow2_shift(queries.row(begin + i), d);
      linalg::scale_copy(queries.row(begin + i), d, s.shift[i], s.scaled.data() + i * d);
    }
    linalg::sgemm(false, true, 1.0f, ConstMatrixF(s.scaled.data(), rows, d),
                  ConstMatrixF(cand_keys_.data(), scanned, d), 0.0f, MatrixF(s.products.data(), rows, scanned));
    for (index_t i = 0; i < rows; ++i) {
      const index_t qi = begin + i;
      const double q_norm = norm(s.scaled.data() + i * d, d);
      if (q_norm == 0.0) {
        ++stats.zero_queries;
        continue;
      }
      const double nq = s.normaliser[i];
      if (!(nq > 0.0) || s.cut[i] > rho_max * rho_max * nq) {
        ++stats.fallback_queries;
        fallback_(qi, queries.row(qi), found, stats);
        continue;
      }
      const double threshold = std::ldexp(std::sqrt(eps_low * nq), s.shift[i] + key_shift_) -
                               linalg::float_dot_error_bound(d, q_norm, cand_norm_max_);
      const float* row = s.products.data() + i * scanned;
      for (index_t j = 0; j < scanned; ++j) {
        if (std::fabs(row[j]) < threshold) continue;
        ++stats.rechecked;
        const double p = linalg::dot_double(queries.row(qi), cand_rows_.data() + j * d, d);
        const double a = p * p / nq;
        if (a >= eps_) found.push_back({qi, cand_[j], a});
      }
    }
  };

  HeavyStats total = detail::search_tiles_in_order((m + tq - 1) / tq, make_scratch, search_tile, sink, [&](index_t t) {
    if (progress) progress(std::min(m, (t + 1) * tq));
  });
  total.queries = m;
  return total;
}

}  // namespace levattn
