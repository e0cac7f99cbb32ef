// LevAttention (the paper's operator): per batch and key/value head, the keys with the largest
// ℓ2 leverage scores — a budget (top-k) or a threshold ε — optionally joined with the first s keys
// ("sinks"), are gathered with their values, and attention runs over them.
//
//  * softmax: normalised over the kept keys (the paper's mechanism; no error bound exists for
//    exp: a query parallel to any one key can make that key dominate).
//  * pow:2 (|x|²): normalised by the exact full normaliser Σ_l <q,k_l>² (qᵀGq from the Gram
//    matrix), so the output is the exact truncation Σ_{j kept} A[i,j]·v_j of true attention, and
//    each row's missing mass μ_i = 1 − Σ_{j kept} A[i,j] is reported; ‖o_i − ô_i‖ ≤ μ_i·max_j‖v_j‖.
//    With a threshold ε (and no causal mask) every entry A[i,j] ≥ ε is kept, for every query
//    (the universal-set guarantee; rounding as in leverage.hpp).
//  * causal: ONE set per head, chosen from all keys, masked by position (query i sees kept keys
//    j ≤ i + n_k − n_q), plus a local window of the `window` most recent keys each query may see.
//    Why: it costs one selection per head and keeps the operator a plain masked attention.
//    What it guarantees: for pow:2 the normaliser is still exact (the prefix sum Σ_{j visible}
//    <q,k_j>²) and so is the reported missing mass; the universal-set promise does not carry over,
//    since a prefix of the keys gives larger leverage scores than the whole sequence.
//
//  * pow:P, P ≠ 2 (|x|^P): keys are ranked by their ℓP Lewis sensitivities s_j (lewis.hpp), which
//    bound A[i,j] for every query, so {s ≥ ε} is the universal set for |x|^P. The output is
//    normalised by PowerNormaliser (power_normaliser.hpp): exact for P = 4 when the fourth-moment
//    tensor is affordable, otherwise the Lewis-sampled estimate Ñ(q) ∈ (1 ± δ)·N(q) (each row
//    with probability ≥ 1 − failure). The output is then the truncation scaled by N/Ñ and the
//    reported missing mass 1 − Σ_kept |c<q,k_j>|^P / Ñ(q) is an estimate within δ/(1 − δ) of the
//    true one (report.normaliser_estimated says when). Not causal: the normaliser covers all keys.
//
// With every key kept (k = n, or ε at most the smallest score) the result equals attend_exact up
// to rounding (for an estimated pow:P normaliser: up to the factor N/Ñ). Grouped-query layouts
// share one selection among the query heads of a key head.
//
// 16-bit keys and values (Half or BFloat16, queries of the same type or float32: the layouts
// attend_exact reads) are read as they are: the leverage scores and the pow:2 normaliser come from
// the 16-bit values (exact w.r.t. the rounded keys, the bits of the keys widened to float), only
// the kept rows are gathered (in 16 bits), and attention over them is attend_exact's on 16-bit
// inputs (its AttentionOptions::arithmetic included). With f32 arithmetic the output equals, bit
// for bit, attend_lev on the inputs widened to float. The same holds for pow:P with P ≠ 2: the Lewis
// weights and the normaliser read the 16-bit keys as they are (lewis.hpp, power_normaliser.hpp).
#pragma once

#include <vector>

#include "levattn/attention/exact.hpp"
#include "levattn/core/heads_view.hpp"
#include "levattn/scores/leverage.hpp"
#include "levattn/scores/power_normaliser.hpp"

namespace levattn {

struct LevSelectOptions {
  index_t top_k = 0;             // > 0: the k keys of largest score (ties to the lower index); 1 ≤ k ≤ n
  double eps = 0.0;              // > 0 with top_k = 0: the keys with score ≥ ε, ε ∈ (0, 1]
  index_t sinks = 0;             // keys [0, sinks) are always kept
  index_t window = 0;            // causal only: each query also sees the `window` latest keys it may see
  LeverageOptions leverage;      // ridge and rank cut-off of the scores (ridge: leverage only)
  PowerNormaliserOptions power;  // pow:P, P ≠ 2: δ, failure probability and seed of the normaliser
                                 // (key head number t of batch·heads samples with seed + t)
};

// The kept keys of one head (n×d): U ∪ [0, sinks), ascending. Throws Error{bad_input} unless
// exactly one of top_k > 0 and eps > 0 is given, on k > n, ε ∉ (0,1], or bad keys.
std::vector<index_t> lev_select(ConstMatrixF keys, const LevSelectOptions& options);
// The same from 16-bit keys, read as they are (the selection of the keys widened to float).
std::vector<index_t> lev_select(MatrixView<const Half> keys, const LevSelectOptions& options);
std::vector<index_t> lev_select(MatrixView<const BFloat16> keys, const LevSelectOptions& options);

struct LevAttentionReport {
  std::vector<index_t> kept;                    // per (batch, key head): number of keys kept
  std::vector<std::vector<index_t>> kept_keys;  // per (batch, key head): the kept keys, ascending
                                                // (the window's keys of a causal run are not listed)
  index_t window = 0;                           // causal: the latest keys each query also saw (select.window)
  std::vector<double> missing_mass;             // pow:P: per (batch, query head, query); else empty
  bool normaliser_estimated = false;            // pow:P: some head's normaliser was sampled (see above)
  double normaliser_delta = 0.0;                // then: its relative accuracy δ …
  double normaliser_failure = 0.0;              // … and the failure probability of each row
  double select_seconds = 0.0;                  // leverage scores and selection
  double attend_seconds = 0.0;                  // gathering and attention
};

// Shapes as attend_exact (batches, heads, grouped queries); options.causal applies as described
// above. Throws Error{bad_input} on the errors of lev_select and attend_exact, on a window without
// the causal mask, and on pow:P with P ≠ 2 combined with the causal mask or a ridge;
// Error{failure} if the Lewis weights do not converge.
LevAttentionReport attend_lev(ConstHeadsF queries, ConstHeadsF keys, ConstHeadsF values,
                              const AttentionOptions& attention, const LevSelectOptions& select, HeadsF out);
// 16-bit keys and values (see the header's last paragraph).
LevAttentionReport attend_lev(ConstHeadsF16 queries, ConstHeadsF16 keys, ConstHeadsF16 values,
                              const AttentionOptions& attention, const LevSelectOptions& select, HeadsF out);
LevAttentionReport attend_lev(ConstHeadsBF16 queries, ConstHeadsBF16 keys, ConstHeadsBF16 values,
                              const AttentionOptions& attention, const LevSelectOptions& select, HeadsF out);
LevAttentionReport attend_lev(ConstHeadsF queries, ConstHeadsF16 keys, ConstHeadsF16 values,
                              const AttentionOptions& attention, const LevSelectOptions& select, HeadsF out);
LevAttentionReport attend_lev(ConstHeadsF queries, ConstHeadsBF16 keys, ConstHeadsBF16 values,
                              const AttentionOptions& attention, const LevSelectOptions& select, HeadsF out);

// Gradients of attend_lev with its key selection held fixed (report.kept_keys and report.window,
// as attend_lev returned them for these inputs): dQ, dK and dV of Σ dO∘O for the output `out` it
// computed, by the tiled masked backward of attend_exact_backward (backward.hpp; same accuracy and
// determinism, no n_q × n_k buffer).
//  * softmax: the backward over the keys each query saw — the kept keys (causal: at positions
//    ≤ i + n_k − n_q − window) and, causal, the window's; dK and dV are 0 for keys no query saw.
//  * pow:2: the output is normalised by the full normaliser Σ_l <q,k_l>² (causal: over the
//    visible prefix), so every key visible to a query has a gradient through it: the |x|² backward
//    over those keys with the values of the keys the query did not see set to 0 (their dV gets
//    nothing from it). Cost O(n_q·n_k·d), like exact attention.
// Shapes as attend_lev. Throws Error{bad_input} for pow:P with P ≠ 2 (normalised by an estimate),
// a window without the causal mask, or a report whose kept keys do not fit the shapes.
void attend_lev_backward(ConstHeadsF queries, ConstHeadsF keys, ConstHeadsF values, ConstHeadsF out,
                         ConstHeadsF grad_out, const AttentionOptions& attention, const LevAttentionReport& report,
                         HeadsF grad_queries, HeadsF grad_keys, HeadsF grad_values);

}  // namespace levattn
