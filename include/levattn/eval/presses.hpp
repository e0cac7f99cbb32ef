// KV-cache presses: at the end of a prefill over n context tokens, each key head's cache (n keys)
// is cut to a budget of k keys; later tokens attend over the kept keys only. A press scores the
// keys (larger = kept first) and keep_top_k (select/key_rules.hpp) keeps the k best, ties to the
// lower index. Key-only presses read the keys; the others also read the context's own queries
// (row i of each n×d matrix is the query of token i, one matrix per query head that reads this
// key head), and attend causally as the prefill did (query i sees keys 0..i).
//
//   leverage           τ_j = k_jᵀ(KᵀK)⁺k_j (the key rule "leverage"; its threshold set {τ ≥ ε}
//                      is the universal set, select/key_scores.hpp)
//   ridge              ridge leverage (key rule "ridge")
//   lewis              ℓ1 Lewis weights (key rule "lewis")
//   sketched-leverage  τ̂_j from a sketch of the keys (ApproxLeverageScorer, always sketched):
//                      within a factor 1 + γ of τ_j except with probability δ per key
//   key-norm           ‖k_j‖² (key rule "row-norm")
//   streaming          StreamingLLM: the first `sinks` keys and the most recent ones (key rule
//                      "sinks-window")
//   random             a random order from the seed and the head (key rule "random")
//   snapkv             SnapKV: the attention the last `window` context queries give key j, summed
//                      over those queries and the query heads, then averaged over the `pool` keys
//                      centred on j among the keys before the window (zeros beyond them); the
//                      window's own keys score above every other key, the latest highest, so they
//                      are kept first (and, when the budget is below the window, the latest)
//   h2o                H2O: the attention key j receives from every context query (causal),
//                      summed over the query heads (accumulated_attention, query_rules.hpp)
//
// The query-aware ceiling, the oracle, keeps per later query its own top k keys: it is
// oracle_attention (query_rules.hpp), not a press.
#pragma once

#include <string>
#include <vector>

#include "levattn/attention/exact.hpp"
#include "levattn/core/heads_view.hpp"
#include "levattn/core/matrix_view.hpp"
#include "levattn/scores/approx_leverage.hpp"
#include "levattn/select/key_rules.hpp"

namespace levattn {

struct PressOptions {
  AttentionOptions attention;         // snapkv, h2o: the model's f and scale (causal is implied)
  KeyRuleOptions key_rules;           // leverage, ridge, lewis, key-norm, streaming, random
  index_t window = 32;                // snapkv: observation window, ≥ 1 (min(window, n) are used)
  index_t pool = 7;                   // snapkv: pooling width, odd ≥ 1
  ApproxLeverageOptions sketch = {};  // sketched-leverage (its method is forced to sketched)
};

// Every press name, in a fixed order: leverage, ridge, lewis, sketched-leverage, key-norm,
// streaming, random, snapkv, h2o.
const std::vector<std::string>& press_names();

// True for the presses that read the context queries (snapkv, h2o).
bool press_needs_queries(const std::string& press);

// n scores for keys (n×d) of key head `head`; context_queries (each n×d) are read by snapkv and
// h2o only and may be empty for the others. Throws Error{bad_input} on an unknown press, keys with
// no rows, NaN/Inf, context queries missing or not n×d (snapkv, h2o), window < 1, an even or
// non-positive pool, softmax logits beyond float range; Error{failure} when Lewis weights do not
// converge.
std::vector<double> press_scores(const std::string& press, const std::vector<ConstMatrixF>& context_queries,
                                 ConstMatrixF keys, index_t head, const PressOptions& options = {});

// press_scores and keep_top_k for every key head of a batch: keys (B, H_kv, n, d); context queries
// (B, H_q, n, d) with H_q a multiple of H_kv (query head h reads key head h / (H_q / H_kv)), read
// by snapkv and h2o only (pass an empty view for the others). Writes kept[(b·H_kv + h)·budget + t]
// (ascending per head) and, when scores is not null, scores[(b·H_kv + h)·n + j]. Throws the errors
// of press_scores, prefixed with the batch and head when there are several, and Error{bad_input}
// when the budget is outside [1, n] or the queries do not fit the keys.
void press_heads(const std::string& press, ConstHeadsF context_queries, ConstHeadsF keys, index_t budget,
                 const PressOptions& options, index_t* kept, double* scores = nullptr);

}  // namespace levattn
