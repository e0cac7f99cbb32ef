// Exact attention and its backward under a general key mask, for operators built on the exact
// one (LevAttention runs them over gathered keys that keep their original positions, and over a
// sliding window).
#pragma once

#include "attention/flash_kernel.hpp"
#include "levattn/attention/exact.hpp"

namespace levattn::detail {

// Throws Error{bad_input} for a scale < 0 or not finite, or pow:P without 0 < P ≤ 64 — the options
// every attention operator refuses.
void check_attention_options(const AttentionOptions& options);

// attend_exact (exact.hpp) with `mask` in place of options.causal (which is ignored): key j of
// each head has position mask.position(j), ascending in j, and query i sees it iff
// i + lo_offset ≤ position ≤ i + hi_offset. Same shapes, errors and guarantees as attend_exact;
// rows that see no key get output 0 and log normaliser −∞.
void attend_masked(ConstHeadsF queries, ConstHeadsF keys, ConstHeadsF values, const AttentionOptions& options,
                   const KeyMask& mask, HeadsF out, double* log_normaliser);

// attend_masked over queries of element type Q and keys and values of element type KV (float,
// Half, BFloat16; instantiated for the pairs attend_exact accepts).
template <class Q, class KV>
void attend_masked_typed(HeadsView<const Q> queries, HeadsView<const KV> keys, HeadsView<const KV> values,
                         const AttentionOptions& options, const KeyMask& mask, HeadsF out, double* log_normaliser);

// True when attention over keys of `type` with n_q queries runs bf16 products (exact.hpp).
bool uses_bf16_products(index_t n_q, const AttentionOptions& options);

// attend_exact_backward (backward.hpp) with `mask` in place of options.causal, as attend_masked:
// the gradients of the entries the mask lets query i see, with P recomputed from log_normaliser.
// When the normaliser covers more keys than the mask shows (an operator split into disjoint
// masked parts sharing one normaliser and one output), the result is that part's share of the
// gradients: dQ, dK and dV of the whole are the sums over the parts. Same shapes, errors and
// guarantees as attend_exact_backward.
void attend_masked_backward(ConstHeadsF queries, ConstHeadsF keys, ConstHeadsF values, ConstHeadsF out,
                            const double* log_normaliser, ConstHeadsF grad_out, const AttentionOptions& options,
                            const KeyMask& mask, HeadsF grad_queries, HeadsF grad_keys, HeadsF grad_values);

}  // namespace levattn::detail
