#include "levattn/select/universal_set.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

namespace levattn {

void check_eps(double eps) {
  std::ostringstream msg;
  msg << "eps must lie in (0, 1], got " << eps;
  require(eps > 0.0 && eps <= 1.0, msg.str());  // false for NaN too
}

UniversalSet select_by_threshold(const double* scores, index_t n, double eps, double rank) {
  check_eps(eps);
  UniversalSet out;
  for (index_t j = 0; j < n; ++j)
    if (scores[j] >= eps) {
      out.indices.push_back(j);
      out.scores.push_back(scores[j]);
    }
  out.bound = rank / eps;
  // Σ τ = rank holds to rounding; allow that rounding before calling the bound broken.
  out.within_bound = static_cast<double>(out.size()) <= out.bound * (1.0 + 1e-9) + 1e-9;
  return out;
}

UniversalSet select_top_k(const double* scores, index_t n, index_t k) {
  require(k >= 1 && k <= n, "top-k must lie in [1, n] = [1, " + std::to_string(n) + "], got " + std::to_string(k));
  std::vector<index_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), index_t{0});
  const auto better = [scores](index_t a, index_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  };
  std::nth_element(order.begin(), order.begin() + (k - 1), order.end(), better);
  order.resize(static_cast<size_t>(k));
  std::sort(order.begin(), order.end());
  UniversalSet out;
  out.indices = order;
  for (index_t j : order) out.scores.push_back(scores[j]);
  out.bound = static_cast<double>(k);
  return out;
}

}  // namespace levattn
