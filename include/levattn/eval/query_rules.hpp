// Selection rules that need the queries (they sit above the attention layer, unlike the key-only
// rules of select/key_rules.hpp):
//
//   h2o     accumulated attention (Heavy-Hitter Oracle style): key j's score is the attention mass
//           Σ_i A[i,j] it receives, summed over every query of every query head that reads the key
//           head. The row normalisers come from the exact operator (attend_exact's log
//           normalisers); the column sums from one more pass of float GEMM products over key
//           blocks, weights in double. Costs about two exact attentions: it is the ceiling of what
//           an H2O cache could know, computed once over the whole sequence. With options.causal
//           each query adds only over the keys it sees (bottom-right aligned, as attend_exact):
//           H2O over a prefill, where query i reads keys 0..i.
//   oracle  per-query top-k: each query keeps its own k keys of largest f(c·<q,k>) (exact double
//           products, ties to the lower index). No set of k keys per query holds more of a row's
//           entries A ≥ ε, so this is the ceiling of capture at budget k. Costs O(m·n·d).
#pragma once

#include <vector>

#include "levattn/attention/exact.hpp"
#include "levattn/core/matrix_view.hpp"

namespace levattn {

// Σ_i A[i,j] over the rows of every matrix in `queries` (each m_h×d) against keys (n×d): n
// scores; with options.causal, row i of an m_h-row matrix adds over keys j ≤ i + n − m_h only.
// Throws Error{bad_input} on shape mismatch, NaN/Inf, p ≤ 0, or softmax logits beyond float
// range. |x|^p rows with every product 0 (or, causal, with no visible key) add nothing.
std::vector<double> accumulated_attention(const std::vector<ConstMatrixF>& queries, ConstMatrixF keys,
                                          const AttentionOptions& options);

struct OracleResult {
  index_t k = 0;
  std::vector<index_t> kept;  // m × k: row i holds query i's k keys, ascending
  std::vector<double> out;    // m × d_v: attention over each query's own keys (see below)
  double select_seconds = 0.0, attend_seconds = 0.0;
};

// Per-query top-k (1 ≤ k ≤ n) and the attention over those keys: softmax normalised over the kept
// keys (as LevAttention), |x|^p normalised by the full normaliser Σ_l |c·<q,k_l>|^p (so the output
// is the truncation Σ_{kept} A[i,j]·v_j). Rows whose products are all 0 under |x|^p give 0.
// Throws Error{bad_input} on the errors of accumulated_attention and k outside [1, n].
OracleResult oracle_attention(ConstMatrixF queries, ConstMatrixF keys, ConstMatrixF values,
                              const AttentionOptions& options, index_t k);

}  // namespace levattn
