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
// 16-bit inputs (Half or BFloat16 keys and values, with queries of the same type or float) are
// read in place, a block at a time, never copied whole. Their arithmetic (AttentionOptions::
// arithmetic) is either
//   f32:  every element widened exactly to float, then the float kernels above — the same 1e-5
//         against float64 attention of the same 16-bit inputs;
//   bf16: softmax only (|x|^p always runs f32), prefill only (a single query, decode, is bound by
//         memory and always runs f32). Queries and keys rounded to bf16 (exact for bf16 inputs),
//         Q·Kᵀ as exact products summed in float, the scale c applied to each score afterwards,
//         weights and values rounded to bf16 for P·V, sums of weights in double. On CPUs with
//         AVX512_BF16 the products are vdpbf16ps, which reads subnormal bf16 operands as zero;
//         elsewhere the same rounding is emulated with float FMAs. Accuracy: BENCHMARKS.md and
//         README (tests bound the relative output error by 1e-2 and the log normaliser by 1e-3).
// f32 is the default: on the Intel Xeon (Sapphire Rapids) this was measured on, vdpbf16ps issues
// at half the rate of the two float FMA pipes, so bf16 products are no faster there (BENCHMARKS.md).
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

#include "levattn/core/half.hpp"
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

// The arithmetic of attention over 16-bit inputs (see the header comment).
enum class Arithmetic { f32, bf16 };

struct AttentionOptions {
  ScoreFunction f;
  double scale = 0.0;  // c; 0 chooses the default (1/√d for softmax, 1 for |x|^p)
  bool causal = false;
  Arithmetic arithmetic = Arithmetic::f32;
};

// What attend_exact runs on this CPU for n_q queries under `options`: the kernel set ("generic",
// "avx2", "avx512" or "avx512_bf16", capped by LEVATTN_KERNELS=generic|avx2|avx512) and whether
// the products are bf16 (else float).
struct AttentionKernel {
  const char* name;
  bool bf16_products;
};
AttentionKernel attention_kernel(index_t n_q, const AttentionOptions& options);

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

// The same over 16-bit keys and values, with queries of the same type or float (a float query over
// a 16-bit KV cache). Same shapes, errors and guarantees; the arithmetic as stated above.
void attend_exact(ConstHeadsF16 queries, ConstHeadsF16 keys, ConstHeadsF16 values, const AttentionOptions& options,
                  HeadsF out, double* log_normaliser = nullptr);
void attend_exact(ConstHeadsBF16 queries, ConstHeadsBF16 keys, ConstHeadsBF16 values, const AttentionOptions& options,
                  HeadsF out, double* log_normaliser = nullptr);
void attend_exact(ConstHeadsF queries, ConstHeadsF16 keys, ConstHeadsF16 values, const AttentionOptions& options,
                  HeadsF out, double* log_normaliser = nullptr);
void attend_exact(ConstHeadsF queries, ConstHeadsBF16 keys, ConstHeadsBF16 values, const AttentionOptions& options,
                  HeadsF out, double* log_normaliser = nullptr);

// Merges attention over disjoint key sets, in place into (out, log_normaliser):
//   L = log(e^{L_a} + e^{L_b}),  o = e^{L_a − L}·o_a + e^{L_b − L}·o_b,
// exact up to rounding, for any f (L is the log of the row's full normaliser). Rows with
// L = −∞ on one side take the other side. Throws Error{bad_input}, changing nothing, unless the
// shapes match, every L is finite or −∞ and every output is finite.
void merge_attention(MatrixF out, double* log_normaliser, ConstMatrixF other_out, const double* other_log_normaliser);

}  // namespace levattn
