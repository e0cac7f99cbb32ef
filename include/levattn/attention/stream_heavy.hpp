// Heavy entries of x² attention over the keys a StreamSelector has seen so far, at any point of
// the stream: for each query, every held key (StreamSelector::held_keys()) with
// A = <q,k>²/qᵀGq ≥ eps, qᵀGq the exact normaliser over ALL keys pushed.
//
// Method: HeavySearch (heavy.hpp) with a LeverageScorer fitted on the selector's summary (its
// rcond, no ridge) and the held keys as the keys it holds; its fallback rows are searched over
// every held key with the same normaliser. The scores, scan set and filter are HeavySearch's, so
// for a query none of whose heavy keys was evicted the answer is the one HeavySearch over all
// keys pushed gives, with the same rounding guarantee (heavy.hpp), bit for bit unless the query
// falls back (HeavySearch then normalises by Σ_l <q,k_l>² over its keys, here by the scorer's
// qᵀGq).
//
// Evicted keys: in threshold mode, with eps ≥ ε, the answer is complete for every query with
// ρ(q) = rcond²·qᵀDq / qᵀGq ≤ 1 (D = diag G); queries with ρ(q) > 1 (almost orthogonal to every
// key, in the equilibrated sense) are listed as uncertain — in budget mode, every query with
// qᵀGq > 0 is. Proof: docs/proofs.md §3.
//
// Cost: O(d³ + (n_held + m)·d² + m·|scan|·d), plus n_held·d per fallback row. Errors
// (Error{bad_input}): queries.cols ≠ d, a NaN/Inf in a query (named by its row), eps outside
// (0, 1], or eps < ε in threshold mode. The output does not depend on the thread count.
#pragma once

#include <vector>

#include "levattn/attention/heavy.hpp"
#include "levattn/select/stream_selector.hpp"

namespace levattn {

struct StreamHeavyAnswer {
  std::vector<HeavyEntry> entries;  // by (query, key); query: row of queries, key: global index
  index_t zero_queries = 0;         // qᵀGq = 0: no row of A, no entries
  std::vector<index_t> uncertain;   // queries whose entries on evicted keys are not ruled out
};

StreamHeavyAnswer stream_heavy(const StreamSelector& selector, ConstMatrixF queries, double eps);

}  // namespace levattn
