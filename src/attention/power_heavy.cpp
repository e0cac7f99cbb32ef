#include "levattn/attention/power_heavy.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>
#include <variant>

#include "attention/ordered_tiles.hpp"
#include "levattn/core/finite_rows.hpp"
#include "linalg/blas.hpp"
#include "linalg/scaled_rows.hpp"
#include "linalg/widen_rows.hpp"

namespace levattn {

namespace {

constexpr double kScanSlack = 5e-2;  // scan s_j ≥ ε(1 − slack) ⊇ U
constexpr double kCutShare = 1e-8;   // cut-direction share of qᵀGq that triggers the fallback
constexpr index_t kQueryTile = 64;
constexpr index_t kKeyBlock = 256;  // scanned keys gathered (widened) once and used by a whole query tile

template <class T>
MatrixView<const T> checked(MatrixView<const T> keys, double eps) {
  check_eps(eps);
  require(keys.rows >= 1 && keys.cols >= 1,
          "keys: need at least one key of dimension ≥ 1, got " + shape_string(keys.rows, keys.cols));
  return keys;
}

// ln |x|^p (−∞ for x = 0).
double log_power(double x, double p) { return x == 0.0 ? -INFINITY : p * std::log(std::fabs(x)); }

// Every key of query q in double with the exact normaliser; entries with A ≥ eps into found.
template <class T>
void all_keys(const float* q, MatrixView<const T> keys, double p, double eps, index_t qi, std::vector<double>& scratch,
              std::vector<HeavyEntry>& found, HeavyStats& stats) {
  const index_t n = keys.rows;
  scratch.resize(static_cast<size_t>(n));
  heavy_products(q, keys, scratch.data());  // 16-bit rows widened exactly
  double top = 0.0;
  for (index_t j = 0; j < n; ++j) top = std::max(top, std::fabs(scratch[j]));
  if (top == 0.0) {
    ++stats.zero_queries;
    return;
  }
  double total = 0.0;  // Σ (|x|/top)^p
  for (index_t j = 0; j < n; ++j) total += std::pow(std::fabs(scratch[j]) / top, p);
  for (index_t j = 0; j < n; ++j) {
    const double a = std::pow(std::fabs(scratch[j]) / top, p) / total;
    if (a >= eps) found.push_back({qi, j, a});
  }
}

// out (count × keys.cols, dense) = the rows index[0..count) of keys, widened exactly to float.
template <class T>
void gather_widened(MatrixView<const T> keys, const index_t* index, index_t count, float* out) {
  for (index_t r = 0; r < count; ++r) widen_rows(keys, index[r], 1, out + r * keys.cols);
}

// The scaled copies of a tile's scanned queries: row t of `scaled` is the t-th scanned query times
// 2^shift[t], with |·|∞ ∈ [0.5, 1) (zero rows stay zero), and norm[t] its Euclidean norm.
struct ScaledQueries {
  std::vector<float> scaled;
  std::vector<int> shift;
  std::vector<double> norm;
};

// Scans one block of `count` keys (widened, `block`, count × d) for the rows `scan` of a query tile
// (queries `tile`, log normalisers `log_n`, scaled copies `q`): every entry with
// log|<q,k>|^p − ln N̂(q) ≥ log_threshold goes to `found`, its value computed in double. A float
// GEMM of the scaled rows screens the products first: a product whose float value, widened by its
// rigorous rounding bound (float_dot_error_bound), cannot reach the threshold is skipped, so the
// entries are exactly those of computing every product in double. `scaled_block` and `products`
// are scratch (count × d and |scan| × count floats).
void scan_block(ConstMatrixF tile, const std::vector<index_t>& scan, const double* log_n, const ScaledQueries& q,
                const float* block, const index_t* keys_of_block, index_t count, double p, double log_threshold,
                float* scaled_block, float* products, std::vector<HeavyEntry>& found, index_t query_offset,
                HeavyStats& stats) {
  const index_t d = tile.cols, rows = static_cast<index_t>(scan.size());
  const int key_shift = linalg::pow2_shift(ConstMatrixF(block, count, d));
  linalg::scale_copy(block, count * d, key_shift, scaled_block);
  double key_norm = 0.0;
  for (index_t r = 0; r < count; ++r)
    key_norm = std::max(key_norm, linalg::dot_double(scaled_block + r * d, scaled_block + r * d, d));
  key_norm = std::sqrt(key_norm);
  linalg::sgemm(false, true, 1.0f, ConstMatrixF(q.scaled.data(), rows, d), ConstMatrixF(scaled_block, count, d), 0.0f,
                MatrixF(products, rows, count));
  for (index_t t = 0; t < rows; ++t) {
    const index_t i = scan[static_cast<size_t>(t)];
    // |<q,k>| must reach exp((log_threshold + ln N̂)/p); in the scaled units of the GEMM, lowered in
    // the exponent by the logarithms' rounding (relative to their size, divided by p) plus 1e-9 for
    // exp, and by the float product's error bound.
    const double log_slack = 1e-9 + 8.0 * std::numeric_limits<double>::epsilon() *
                                        (std::fabs(log_threshold) + std::fabs(log_n[i]) + 1.0) / p;
    const double need =
        std::exp((log_threshold + log_n[i]) / p + (q.shift[t] + key_shift) * std::log(2.0) - log_slack) -
        linalg::float_dot_error_bound(d, q.norm[t], key_norm);
    const float* row = products + t * count;
    const float* query = tile.row(i);
    for (index_t r = 0; r < count; ++r) {
      if (static_cast<double>(std::fabs(row[r])) < need) continue;
      ++stats.rechecked;
      const double log_a = log_power(linalg::dot_double(query, block + r * d, d), p) - log_n[i];
      if (log_a >= log_threshold) found.push_back({query_offset + i, keys_of_block[r], std::exp(log_a)});
    }
  }
}

template <class T>
HeavyStats brute_force_on(ConstMatrixF queries, MatrixView<const T> keys, double p, double eps, const HeavySink& sink) {
  check_eps(eps);
  check_power_exponent(p);
  require(keys.rows >= 1 && keys.cols >= 1, "keys: need at least one key of dimension ≥ 1");
  require(queries.cols == keys.cols,
          "queries have " + std::to_string(queries.cols) + " columns but keys have " + std::to_string(keys.cols));
  require_finite_rows(keys, "keys");
  require_finite_rows(queries, "queries");
  const index_t m = queries.rows;
  const auto make_scratch = [] { return std::vector<double>(); };
  const auto search_tile = [&](std::vector<double>& s, index_t t, std::vector<HeavyEntry>& found, HeavyStats& stats) {
    const index_t end = std::min(m, (t + 1) * kQueryTile);
    for (index_t i = t * kQueryTile; i < end; ++i) all_keys(queries.row(i), keys, p, eps, i, s, found, stats);
  };
  HeavyStats total =
      detail::search_tiles_in_order((m + kQueryTile - 1) / kQueryTile, make_scratch, search_tile, sink, [](index_t) {});
  total.queries = m;
  return total;
}

template <class T>
VerifyReport verify_on(const PowerHeavySearch& search, MatrixView<const T> keys, ConstMatrixF sample,
                       double tolerance) {
  const auto collect = [](std::vector<HeavyEntry>& into) {
    return [&into](const HeavyEntry* e, index_t count) { into.insert(into.end(), e, e + count); };
  };
  std::vector<HeavyEntry> found, reference;
  search.run(sample, collect(found));
  brute_force_on(sample, keys, search.p(), search.eps() * (1.0 - tolerance), collect(reference));
  VerifyReport report = compare_heavy(found, reference, search.eps(), tolerance);
  report.queries = sample.rows;
  return report;
}

}  // namespace

template <class T>
PowerHeavySearch::PowerHeavySearch(MatrixView<const T> keys, double p, double eps, const PowerHeavyOptions& options,
                                   std::in_place_t /*typed*/)
    : keys_(std::in_place_type<MatrixView<const T>>, checked(keys, eps)),
      p_(p),
      eps_(eps),
      lewis_(lewis_weights(keys, p, options.lewis)),
      sens_(lewis_.sensitivities()),
      uset_(select_by_threshold(sens_.data(), keys.rows, eps, std::accumulate(sens_.begin(), sens_.end(), 0.0))),
      normaliser_(keys, p, sens_, options.normaliser) {
  for (index_t j = 0; j < keys.rows; ++j)
    if (sens_[j] >= eps * (1.0 - kScanSlack)) cand_.push_back(j);
  if (lewis_.cut_directions > 0) {
    cut_check_.emplace(keys.cols, LeverageOptions{0.0, options.lewis.rcond});
    cut_check_->fit(keys);
  }
}

PowerHeavySearch::PowerHeavySearch(ConstMatrixF keys, double p, double eps, const PowerHeavyOptions& options)
    : PowerHeavySearch(keys, p, eps, options, std::in_place) {}
PowerHeavySearch::PowerHeavySearch(MatrixView<const Half> keys, double p, double eps, const PowerHeavyOptions& options)
    : PowerHeavySearch(keys, p, eps, options, std::in_place) {}
PowerHeavySearch::PowerHeavySearch(MatrixView<const BFloat16> keys, double p, double eps,
                                   const PowerHeavyOptions& options)
    : PowerHeavySearch(keys, p, eps, options, std::in_place) {}

HeavyStats PowerHeavySearch::run(ConstMatrixF queries, const HeavySink& sink,
                                 const std::function<void(index_t)>& progress) const {
  const index_t d = std::visit([](auto keys) { return keys.cols; }, keys_), m = queries.rows;
  require(queries.cols == d,
          "queries have " + std::to_string(queries.cols) + " columns but keys have " + std::to_string(d));
  if (m == 0) return HeavyStats{};
  require_finite_rows(queries, "queries");  // here, so that messages carry row numbers of `queries`
  const double log_threshold = std::log(report_threshold()) * (1.0 + 1e-15);
  const index_t scanned = scanned_keys();
  const index_t block_rows = std::min(kKeyBlock, scanned);
  struct Scratch {
    std::vector<double> log_n, cut, total, all;
    std::vector<index_t> scan;  // the tile's rows searched over the scanned keys
    ScaledQueries q;            // their scaled copies
    std::vector<float> block, scaled_block, products;
  };
  const auto make_scratch = [&] {
    Scratch s;
    s.log_n.resize(kQueryTile);
    s.cut.resize(kQueryTile);
    s.total.resize(kQueryTile);
    s.q = {std::vector<float>(static_cast<size_t>(kQueryTile * d)), std::vector<int>(kQueryTile),
           std::vector<double>(kQueryTile)};
    s.block.resize(static_cast<size_t>(block_rows * d));
    s.scaled_block.resize(static_cast<size_t>(block_rows * d));
    s.products.resize(static_cast<size_t>(kQueryTile * block_rows));
    return s;
  };
  const auto search_tile = [&](Scratch& s, index_t t, std::vector<HeavyEntry>& found, HeavyStats& stats) {
    const index_t begin = t * kQueryTile, rows = std::min(kQueryTile, m - begin);
    const ConstMatrixF tile = queries.rows_range(begin, begin + rows);
    normaliser_.log_normalisers(tile, s.log_n.data());
    if (cut_check_) {
      cut_check_->normalisers(tile, s.total.data());
      cut_check_->cut_normalisers(tile, s.cut.data());
    }
    s.scan.clear();
    for (index_t i = 0; i < rows; ++i) {
      const index_t qi = begin + i;
      if (cut_check_ && s.cut[i] > kCutShare * s.total[i]) {
        ++stats.fallback_queries;
        std::visit([&](auto keys) { all_keys(queries.row(qi), keys, p_, eps_, qi, s.all, found, stats); }, keys_);
      } else if (s.log_n[i] == -INFINITY) {
        ++stats.zero_queries;
      } else {
        s.scan.push_back(i);
      }
    }
    for (size_t r = 0; r < s.scan.size(); ++r) {
      const float* q = tile.row(s.scan[r]);
      float* scaled = s.q.scaled.data() + r * d;
      s.q.shift[r] = linalg::pow2_shift(q, d);
      linalg::scale_copy(q, d, s.q.shift[r], scaled);
      s.q.norm[r] = std::sqrt(linalg::dot_double(scaled, scaled, d));
    }
    for (index_t first = 0; first < scanned && !s.scan.empty(); first += kKeyBlock) {
      const index_t count = std::min(kKeyBlock, scanned - first);
      std::visit([&](auto keys) { gather_widened(keys, cand_.data() + first, count, s.block.data()); }, keys_);
      scan_block(tile, s.scan, s.log_n.data(), s.q, s.block.data(), cand_.data() + first, count, p_, log_threshold,
                 s.scaled_block.data(), s.products.data(), found, begin, stats);
    }
    // Blocks of keys ran outside the rows: put the entries in (query, key) order (stable: each row's
    // entries are already in key order).
    std::stable_sort(found.begin(), found.end(),
                     [](const HeavyEntry& a, const HeavyEntry& b) { return a.query < b.query; });
  };
  HeavyStats total =
      detail::search_tiles_in_order((m + kQueryTile - 1) / kQueryTile, make_scratch, search_tile, sink, [&](index_t t) {
        if (progress) progress(std::min(m, (t + 1) * kQueryTile));
      });
  total.queries = m;
  return total;
}

HeavyStats brute_force_power_heavy(ConstMatrixF queries, ConstMatrixF keys, double p, double eps,
                                   const HeavySink& sink) {
  return brute_force_on(queries, keys, p, eps, sink);
}
HeavyStats brute_force_power_heavy(ConstMatrixF queries, MatrixView<const Half> keys, double p, double eps,
                                   const HeavySink& sink) {
  return brute_force_on(queries, keys, p, eps, sink);
}
HeavyStats brute_force_power_heavy(ConstMatrixF queries, MatrixView<const BFloat16> keys, double p, double eps,
                                   const HeavySink& sink) {
  return brute_force_on(queries, keys, p, eps, sink);
}

VerifyReport verify_power_heavy(const PowerHeavySearch& search, ConstMatrixF keys, ConstMatrixF sample,
                                double tolerance) {
  return verify_on(search, keys, sample, tolerance);
}
VerifyReport verify_power_heavy(const PowerHeavySearch& search, MatrixView<const Half> keys, ConstMatrixF sample,
                                double tolerance) {
  return verify_on(search, keys, sample, tolerance);
}
VerifyReport verify_power_heavy(const PowerHeavySearch& search, MatrixView<const BFloat16> keys, ConstMatrixF sample,
                                double tolerance) {
  return verify_on(search, keys, sample, tolerance);
}

}  // namespace levattn
