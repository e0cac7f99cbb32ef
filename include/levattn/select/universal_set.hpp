// Universal sets: the keys that any heavy attention entry must use.
//
// By threshold: U = {j : τ_j ≥ ε}. With τ the x² leverage scores, every entry A[i,j] ≥ ε of every
// query has j ∈ U, and |U| ≤ rank/ε because Σ τ_j = rank — up to the rounding in τ (see
// leverage.hpp): a key whose score lies within that rounding of ε may fall either way.
// HeavySearch scans a slightly larger set for that reason. By budget: the k keys with the largest
// scores (ties to the lower index) — no guarantee beyond "these are the k most influential".
#pragma once

#include <vector>

#include "levattn/core/matrix_view.hpp"

namespace levattn {

struct UniversalSet {
  std::vector<index_t> indices;  // ascending
  std::vector<double> scores;    // scores[i] belongs to indices[i]
  double bound = 0.0;            // rank/ε for a threshold set, k for a budget set
  bool within_bound = true;      // |U| ≤ bound (a threshold set exceeding it signals a bug)
  index_t size() const { return static_cast<index_t>(indices.size()); }
};

// {j : scores[j] ≥ eps} for eps in (0, 1]; `rank` (the scores' sum, ≥ 0) sets the bound rank/eps.
// Throws Error{bad_input} if eps is outside (0, 1] or not a number.
UniversalSet select_by_threshold(const double* scores, index_t n, double eps, double rank);

// The k largest scores (1 ≤ k ≤ n), ties broken towards the lower index; indices ascending.
// Throws Error{bad_input} if k < 1 or k > n.
UniversalSet select_top_k(const double* scores, index_t n, index_t k);

// Checks eps ∈ (0, 1]; throws Error{bad_input} "eps must lie in (0, 1], got …" otherwise.
void check_eps(double eps);

}  // namespace levattn
