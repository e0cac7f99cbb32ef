// Exact attention O = A·V without forming A: tiled, with the online normaliser (the n_q × n_k
// matrix never exists), multithreaded, optionally causal, for
//   softmax:   A[i,j] = exp(c·<q_i,k_j>) / Σ_l exp(c·<q_i,k_l>)   (c defaults to 1/√d)
//   |x|^p:     A[i,j] = |c·<q_i,k_j>|^p / Σ_l |c·<q_i,k_l>|^p     (p > 0; c defaults to 1)
// Each row's log normaliser L_i = log Σ_l f(c·<q_i,k_l>) can be returned, so results over
// disjoint key sets merge exactly (merge_attention).
//
// Causal mask, bottom-right aligned (as a decoder with a KV cache sees it): query i may attend
// key j iff j ≤ i + (n_k − n_q). With n_q = n_k that is j ≤ i.
//
// Rows with nothing to attend (every key masked, or |x|^p with every product 0) have no defined
// attention: their output row is 0 and L_i = −∞ (merge_attention treats them as empty).
//
// Accuracy (tests, against float64): relative error ≤ 1e-5 on float inputs. Products accumulate
// in float (FMA), weights use a polynomial exp within 2e-7, sums of weights are carried in double.
// For |x|^p, queries are rescaled by powers of two first, so huge (1e30) and tiny (1e-30) inputs
// neither overflow nor underflow.
//
// Errors: Error{bad_input} on shape mismatch, NaN/Inf in any input, softmax logits overflowing
// float (|c·<q,k>| > 3.4e38), p ≤ 0, p > 64 or non-finite, or a scale < 0.
//
// Cost: O(n_q·n_k·(d + d_v)) per head. Work units are
// (head, tile of 32 queries held in vector lanes[, key segment]); AVX-512 kernels are chosen at
// run time, with a portable fallback (measured throughput of both: BENCHMARKS.md, "Attention
// (issue 3)"). When there are too few tiles to feed the threads (decode, n_q = 1), keys are
// split into fixed segments of 4096 that are merged afterwards. The split depends on shapes
// only, so results never depend on the thread count.
#pragma once

#include <string>

#include "levattn/core/heads_view.hpp"
#include "levattn/core/matrix_view.hpp"

namespace levattn {

enum class ScoreKind { softmax, power };

struct ScoreFunction {
  ScoreKind kind = ScoreKind::softmax;
  double p = 2.0;  // exponent when kind == power

  static ScoreFunction softmax() { return {ScoreKind::softmax, 1.0}; }
  static ScoreFunction power(double p) { return {ScoreKind::power, p}; }
  // "softmax" or "pow:P"; parse_score_function reads the same spelling back (Error on junk).
  std::string name() const;
};
ScoreFunction parse_score_function(const std::string& text);

struct AttentionOptions {
  ScoreFunction f;
  double scale = 0.0;  // c; 0 chooses the default (1/√d for softmax, 1 for |x|^p)
  bool causal = false;
};

// The scale c actually used for head dimension d.
double effective_scale(const AttentionOptions& options, index_t d);

// One head: queries (n_q×d), keys (n_k×d), values (n_k×d_v) → out (n_q×d_v). log_normaliser is
// null or holds n_q doubles. out may not alias the inputs.
void attend_exact(ConstMatrixF queries, ConstMatrixF keys, ConstMatrixF values, const AttentionOptions& options,
                  MatrixF out, double* log_normaliser = nullptr);

// Batches and heads: queries (B, H_q, n_q, d), keys (B, H_kv, n_k, d), values (B, H_kv, n_k, d_v),
// out (B, H_q, n_q, d_v), with H_q a multiple of H_kv (grouped-query attention: query head h
// reads key/value head h / (H_q / H_kv)). log_normaliser is null or holds B·H_q·n_q doubles.
void attend_exact(ConstHeadsF queries, ConstHeadsF keys, ConstHeadsF values, const AttentionOptions& options,
                  HeadsF out, double* log_normaliser = nullptr);

// Merges attention over disjoint key sets, in place into (out, log_normaliser):
//   L = log(e^{L_a} + e^{L_b}),  o = e^{L_a − L}·o_a + e^{L_b − L}·o_b,
// exact up to rounding, for any f (L is the log of the row's full normaliser). Rows with
// L = −∞ on one side take the other side. Throws Error{bad_input}, changing nothing, unless the
// shapes match, every L is finite or −∞ and every output is finite.
void merge_attention(MatrixF out, double* log_normaliser, ConstMatrixF other_out, const double* other_log_normaliser);

}  // namespace levattn
