// The exact attention of one query head against one key head, in double: the instrument the
// evaluation measures every selection rule against (eval/evaluate.hpp). Products <q_i,k_j> are
// double GEMMs of the float inputs (exact products, rounding ~1e-16 relative to ‖q‖‖k‖), weights
// are taken in the log domain, so |x|^p on huge (1e30) or tiny (1e-30) inputs neither overflows
// nor underflows.
//
//   A[i,j] = f(c·<q_i,k_j>) / Σ_l f(c·<q_i,k_l>),  f = exp (softmax) or |x|^p,
//   O = A·V (m×d_v), L_i = log Σ_l f(c·<q_i,k_l>)   (−∞ for a |x|^p row with every product 0,
//   whose attention is undefined: O row 0, no heavy entries).
//
// Cost O(m·n·(d + d_v)) time, O(block·n) memory: the m×n matrix is never stored, only the entries
// A ≥ min_eps (at most 1/min_eps a row). Results do not depend on the thread count.
#pragma once

#include <vector>

#include "levattn/attention/exact.hpp"
#include "levattn/core/matrix_view.hpp"

namespace levattn {

struct WeightedEntry {
  index_t query = 0, key = 0;
  double a = 0.0;  // A[query, key]
};

struct ExactReference {
  index_t m = 0, d_v = 0;
  std::vector<double> out;             // m × d_v, row-major
  std::vector<double> log_normaliser;  // m
  std::vector<WeightedEntry> heavy;    // every A ≥ min_eps, by (query, key)
};

// queries (m×d), keys (n×d, n ≥ 1), values (n×d_v); c = effective_scale(options, d); options.causal
// must be false. min_eps ∈ (0, 1]. Throws Error{bad_input} on shape mismatch, NaN/Inf, p ≤ 0,
// a causal mask, or min_eps outside (0, 1].
ExactReference exact_reference(ConstMatrixF queries, ConstMatrixF keys, ConstMatrixF values,
                               const AttentionOptions& options, double min_eps);

}  // namespace levattn
