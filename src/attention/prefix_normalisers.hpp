// Exact |x|² normalisers under a causal mask: N_i = Σ_{j ≤ i + offset} <q_i, k_j>², in double.
#pragma once

#include "levattn/core/matrix_view.hpp"

namespace levattn::detail {

// For queries (n_q×d) and keys (n_k×d): out[i] = Σ_{0 ≤ j ≤ i + offset, j < n_k} <q_i,k_j>², from a
// running Gram matrix in double (cost O((n_q + n_k)·d² + n_q·kStep·d), memory O(d²)).
void prefix_normalisers(ConstMatrixF queries, ConstMatrixF keys, index_t offset, double* out);

}  // namespace levattn::detail
