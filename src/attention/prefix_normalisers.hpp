// Exact |x|² normalisers under a causal mask: N_i = Σ_{j ≤ i + offset} <q_i, k_j>², in double.
#pragma once

#include "levattn/core/half.hpp"
#include "levattn/core/matrix_view.hpp"

namespace levattn::detail {

// For queries (n_q×d) and keys (n_k×d): out[i] = Σ_{0 ≤ j ≤ i + offset, j < n_k} <q_i,k_j>², from a
// running GramSummary of the keys (cost O((n_q + n_k)·d² + n_q·kStep·d); memory O(d²·log n_k) plus
// 256 queries in double: keys are read as stored, never copied whole). Elements Q, K: float, or a
// 16-bit type (keys, and queries of the keys' type) widened exactly — the same bits as on the
// widened values. Instantiated for the pairs attend_exact accepts. Keys holding NaN or ±∞ are
// Error{bad_input} (GramSummary::add).
template <class Q, class K>
void prefix_normalisers(MatrixView<const Q> queries, MatrixView<const K> keys, index_t offset, double* out);

}  // namespace levattn::detail
