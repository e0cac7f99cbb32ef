#include "levattn/attention/stream_heavy.hpp"

#include <string>

namespace levattn {

StreamHeavyAnswer stream_heavy(const StreamSelector& selector, ConstMatrixF queries, double eps) {
  const index_t d = selector.dim(), m = queries.rows;
  const StreamOptions& options = selector.options();
  require(queries.cols == d,
          "queries have " + std::to_string(queries.cols) + " columns but keys have " + std::to_string(d));
  check_eps(eps);
  if (options.budget == 0)
    require(eps >= options.eps, "heavy: eps must be at least the selector's ε = " + std::to_string(options.eps));

  LeverageScorer scorer(d, {0.0, options.rcond});
  scorer.fit(selector.summary());
  std::vector<double> normaliser(static_cast<size_t>(m));  // qᵀGq over every key pushed
  scorer.normalisers(queries, normaliser.data());          // refuses a NaN/Inf row, naming it

  StreamHeavyAnswer answer;
  const std::vector<double> G = selector.summary().gram();
  const double r2 = options.rcond * options.rcond;
  for (index_t i = 0; i < m; ++i) {
    if (!(normaliser[i] > 0.0)) {
      ++answer.zero_queries;
      continue;
    }
    double diag = 0.0;  // qᵀDq
    for (index_t a = 0; a < d; ++a) diag += double(queries(i, a)) * double(queries(i, a)) * G[a * d + a];
    if (options.budget > 0 || r2 * diag > normaliser[i]) answer.uncertain.push_back(i);
  }
  if (selector.count() == 0) return answer;

  // The search numbers the held keys 0, 1, … in ascending global index; entries are renumbered.
  const StreamSelector::HeldKeys held = selector.held_keys();
  const ConstMatrixF held_rows(held.keys.data(), held.rows, d);
  HeavyFallback over_held = [&](index_t qi, const float* q, std::vector<HeavyEntry>& found, HeavyStats& stats) {
    if (!(normaliser[qi] > 0.0)) {
      ++stats.zero_queries;
      return;
    }
    std::vector<double> products(static_cast<size_t>(held.rows));
    heavy_products(q, held_rows, products.data());
    for (index_t j = 0; j < held.rows; ++j)
      if (const double a = products[j] * products[j] / normaliser[qi]; a >= eps) found.push_back({qi, j, a});
  };
  HeavyScanSet scan = heavy_scan_set(scorer, held_rows, 0, eps);
  const HeavySearch search(std::move(scorer), selector.count(), eps, std::move(scan), std::move(over_held));
  search.run(queries, [&](const HeavyEntry* entries, index_t count) {
    for (index_t e = 0; e < count; ++e)
      answer.entries.push_back({entries[e].query, held.index[entries[e].key], entries[e].score});
  });
  return answer;
}

}  // namespace levattn
