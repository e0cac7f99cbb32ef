// Gradients of exact attention (exact.hpp) for training: given Q, K, V, the output O, its log
// normaliser L (both from attend_exact) and dO = ∂loss/∂O, computes dQ, dK and dV tiled like the
// forward — the weights P = A are recomputed block by block from L and the n_q × n_k matrix never
// exists.
//
//   D_i = Σ_c dO[i,c]·O[i,c],  P_ij = f(c·s_ij)/e^{L_i},  dP_ij = <dO_i, v_j>,
//   g_ij = ∂loss/∂s_ij = P_ij·(dP_ij − D_i)·c            (softmax)
//                      = P_ij·(dP_ij − D_i)·P/s_ij        (|x|^P; 0 where s_ij = 0)
//   dV_j = Σ_i P_ij·dO_i,   dK_j = Σ_i g_ij·q_i,   dQ_i = Σ_j g_ij·k_j.
//
// Shapes as attend_exact: queries, out, grad_out and grad_queries (B, H_q, n_q, ·); keys, values,
// grad_keys and grad_values (B, H_kv, n_k, ·) with H_q a multiple of H_kv (dK and dV sum over the
// query heads that share a key head); log_normaliser holds B·H_q·n_q doubles; options.causal is
// the forward's bottom-right mask. Rows with L = −∞ (nothing attended) contribute nothing.
//
// Accuracy (tests, against float64 gradients): relative 1e-4. Products come from float block
// products (Eigen compiled for AVX-512, or OpenBLAS through one checked wrapper, chosen at run
// time), weights from a polynomial exp within 2e-7, D in double; softmax queries are multiplied
// by c before the products, as in the forward; for |x|^P queries (per row) and keys (per head) are
// scaled by powers of two first.
//
// Cost: 5 products of n_q·n_k·d (S, dP, dV, dK, dQ), 10·n_q·n_k·d FLOPs with d = d_v, in blocks of
// 256 queries × 512 keys. Work units are (batch, key head, chunk of keys) — at most 16 chunks a
// key head, fewer when its partial dQs would pass 512 MB — each owning its dK and dV rows and a
// partial dQ; partials are summed in chunk order, so results never depend on the thread count.
// Memory: the partial dQs (at most 512 MB, or one key head's group × n_q × d floats if more).
//
// Errors: Error{bad_input} on mismatched shapes, d = 0, NaN/Inf in any input (naming the row), a
// log normaliser that is NaN or +∞, the options attend_exact refuses, or gradients that overflow
// float.
#pragma once

#include "levattn/attention/exact.hpp"
#include "levattn/core/heads_view.hpp"

namespace levattn {

void attend_exact_backward(ConstHeadsF queries, ConstHeadsF keys, ConstHeadsF values, ConstHeadsF out,
                           const double* log_normaliser, ConstHeadsF grad_out, const AttentionOptions& options,
                           HeadsF grad_queries, HeadsF grad_keys, HeadsF grad_values);

}  // namespace levattn
