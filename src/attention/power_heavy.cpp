#include "levattn/attention/power_heavy.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "attention/ordered_tiles.hpp"
#include "levattn/core/finite_rows.hpp"
#include "linalg/scaled_rows.hpp"

namespace levattn {

namespace {

constexpr double kScanSlack = 5e-2;  // scan s_j ≥ ε(1 − slack) ⊇ U
constexpr double kCutShare = 1e-8;   // cut-direction share of qᵀGq that triggers the fallback
constexpr index_t kQueryTile = 64;

ConstMatrixF checked(ConstMatrixF keys, double eps) {
  check_eps(eps);
  require(keys.rows >= 1 && keys.cols >= 1,
          "keys: need at least one key of dimension ≥ 1, got " + shape_string(keys.rows, keys.cols));
  return keys;
}

// ln |x|^p (−∞ for x = 0).
double log_power(double x, double p) { return x == 0.0 ? -INFINITY : p * std::log(std::fabs(x)); }

// Every key of query q in double with the exact normaliser; entries with A ≥ eps into found.
void all_keys(const float* q, ConstMatrixF keys, double p, double eps, index_t qi, std::vector<double>& scratch,
              std::vector<HeavyEntry>& found, HeavyStats& stats) {
  const index_t n = keys.rows, d = keys.cols;
  scratch.resize(static_cast<size_t>(n));
  double top = 0.0;
  for (index_t j = 0; j < n; ++j) {
    scratch[j] = linalg::dot_double(q, keys.row(j), d);
    top = std::max(top, std::fabs(scratch[j]));
  }
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

}  // namespace

PowerHeavySearch::PowerHeavySearch(ConstMatrixF keys, double p, double eps, const PowerHeavyOptions& options)
    : keys_(checked(keys, eps)),
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

HeavyStats PowerHeavySearch::run(ConstMatrixF queries, const HeavySink& sink,
                                 const std::function<void(index_t)>& progress) const {
  const index_t d = keys_.cols, m = queries.rows;
  require(queries.cols == d,
          "queries have " + std::to_string(queries.cols) + " columns but keys have " + std::to_string(d));
  if (m == 0) return HeavyStats{};
  require_finite_rows(queries, "queries");  // here, so that messages carry row numbers of `queries`
  const double log_threshold = std::log(report_threshold()) * (1.0 + 1e-15);
  struct Scratch {
    std::vector<double> log_n, cut, total, all;
  };
  const auto make_scratch = [] {
    return Scratch{
        std::vector<double>(kQueryTile), std::vector<double>(kQueryTile), std::vector<double>(kQueryTile), {}};
  };
  const auto search_tile = [&](Scratch& s, index_t t, std::vector<HeavyEntry>& found, HeavyStats& stats) {
    const index_t begin = t * kQueryTile, rows = std::min(kQueryTile, m - begin);
    const ConstMatrixF tile = queries.rows_range(begin, begin + rows);
    normaliser_.log_normalisers(tile, s.log_n.data());
    if (cut_check_) {
      cut_check_->normalisers(tile, s.total.data());
      cut_check_->cut_normalisers(tile, s.cut.data());
    }
    for (index_t i = 0; i < rows; ++i) {
      const index_t qi = begin + i;
      const float* q = queries.row(qi);
      if (cut_check_ && s.cut[i] > kCutShare * s.total[i]) {
        ++stats.fallback_queries;
        all_keys(q, keys_, p_, eps_, qi, s.all, found, stats);
        continue;
      }
      if (s.log_n[i] == -INFINITY) {
        ++stats.zero_queries;
        continue;
      }
      for (const index_t j : cand_) {
        ++stats.rechecked;
        const double log_a = log_power(linalg::dot_double(q, keys_.row(j), d), p_) - s.log_n[i];
        if (log_a >= log_threshold) found.push_back({qi, j, std::exp(log_a)});
      }
    }
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

VerifyReport verify_power_heavy(const PowerHeavySearch& search, ConstMatrixF keys, ConstMatrixF sample,
                                double tolerance) {
  const auto collect = [](std::vector<HeavyEntry>& into) {
    return [&into](const HeavyEntry* e, index_t count) { into.insert(into.end(), e, e + count); };
  };
  std::vector<HeavyEntry> found, reference;
  search.run(sample, collect(found));
  brute_force_power_heavy(sample, keys, search.p(), search.eps() * (1.0 - tolerance), collect(reference));
  VerifyReport report = compare_heavy(found, reference, search.eps(), tolerance);
  report.queries = sample.rows;
  return report;
}

}  // namespace levattn
