#include "levattn/attention/verify.hpp"

#include <algorithm>
#include <numeric>
#include <random>
#include <utility>

#include "levattn/attention/brute_force.hpp"

namespace levattn {

namespace {
bool before(const HeavyEntry& x, const HeavyEntry& y) { return std::pair(x.query, x.key) < std::pair(y.query, y.key); }
}  // namespace

VerifyReport compare_heavy(const std::vector<HeavyEntry>& found, const std::vector<HeavyEntry>& reference, double eps,
                           double tolerance) {
  VerifyReport report;
  report.tolerance = tolerance;
  for (const HeavyEntry& e : reference) {
    if (e.score < eps * (1.0 + tolerance)) continue;
    ++report.reference;
    report.reference_found += std::binary_search(found.begin(), found.end(), e, before) ? 1 : 0;
  }
  report.reported = static_cast<index_t>(found.size());
  for (const HeavyEntry& e : found)
    report.reported_confirmed += std::binary_search(reference.begin(), reference.end(), e, before) ? 1 : 0;
  return report;
}

namespace {
template <class T>
VerifyReport verify(const HeavySearch& search, MatrixView<const T> keys, ConstMatrixF sample, double tolerance) {
  const auto collect = [](std::vector<HeavyEntry>& into) {
    return [&into](const HeavyEntry* e, index_t count) { into.insert(into.end(), e, e + count); };
  };
  std::vector<HeavyEntry> found, reference;
  search.run(sample, collect(found));
  brute_force_heavy(sample, keys, search.eps() * (1.0 - tolerance), collect(reference), BruteForceProducts::f64);
  VerifyReport report = compare_heavy(found, reference, search.eps(), tolerance);
  report.queries = sample.rows;
  return report;
}
}  // namespace

VerifyReport verify_heavy(const HeavySearch& search, ConstMatrixF keys, ConstMatrixF sample, double tolerance) {
  return verify(search, keys, sample, tolerance);
}
VerifyReport verify_heavy(const HeavySearch& search, MatrixView<const Half> keys, ConstMatrixF sample,
                          double tolerance) {
  return verify(search, keys, sample, tolerance);
}
VerifyReport verify_heavy(const HeavySearch& search, MatrixView<const BFloat16> keys, ConstMatrixF sample,
                          double tolerance) {
  return verify(search, keys, sample, tolerance);
}

std::vector<float> sample_rows(ConstMatrixF X, index_t count, std::uint64_t seed, std::vector<index_t>& rows) {
  rows.resize(static_cast<size_t>(X.rows));
  std::iota(rows.begin(), rows.end(), index_t{0});
  if (count < X.rows) {
    std::mt19937_64 rng(seed);
    // Partial Fisher–Yates: the first `count` positions become a uniform sample.
    for (index_t i = 0; i < count; ++i) {
      std::uniform_int_distribution<index_t> pick(i, X.rows - 1);
      std::swap(rows[i], rows[pick(rng)]);
    }
    rows.resize(static_cast<size_t>(count));
    std::sort(rows.begin(), rows.end());
  }
  std::vector<float> out(rows.size() * static_cast<size_t>(X.cols));
  for (size_t i = 0; i < rows.size(); ++i)
    std::copy(X.row(rows[i]), X.row(rows[i]) + X.cols, out.begin() + static_cast<long>(i * X.cols));
  return out;
}

}  // namespace levattn
