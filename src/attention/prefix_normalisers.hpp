// Exact |x|² normalisers under a causal mask: N_i = Σ_{j ≤ i + offset} <q_i, k_j>², in double.
#pragma once

#include "levattn/core/half.hpp"
#include "levattn/core/heads_view.hpp"
#include "levattn/core/matrix_view.hpp"

namespace levattn::detail {

// For G query heads (queries: batch 1, G heads of n_q×d, the heads of a GQA group) and keys
// (n_k×d): out[g·n_q + i] = Σ_{0 ≤ j ≤ i + offset, j < n_k} <q_gi,k_j>², from one running
// GramSummary of the keys shared by the G heads (cost O(n_k·d² + G·n_q·(d² + kStep·d)); memory
// O(d²·log n_k) plus 256 queries in double: the summary is built once, from the keys as stored,
// never copied whole). Error{bad_input} unless queries.batch is 1.
// Elements Q, K: float, or a 16-bit type (keys, and queries of the keys' type) widened exactly —
// the same bits as on the widened values, and for each head the same bits as with G = 1.
// Instantiated for the pairs attend_exact accepts. Keys holding NaN or ±∞ are Error{bad_input}
// (GramSummary::add).
template <class Q, class K>
void prefix_normalisers(HeadsView<const Q> queries, MatrixView<const K> keys, index_t offset, double* out);

}  // namespace levattn::detail
