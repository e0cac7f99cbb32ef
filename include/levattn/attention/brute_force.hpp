// The brute-force reference for x² attention: every A[i,j] through a GEMM (OpenBLAS), each row
// normalised by its own Σ_l <q_i,k_l>². O(m·n·d) time; used by --verify, the demo and benchmarks.
#pragma once

#include "levattn/attention/heavy.hpp"

namespace levattn {

// The products <q_i,k_j> of the brute force:
//   f32: float GEMM (the speed baseline of the benchmarks). A product errs by up to about
//        d·2⁻²⁴·‖q‖‖k‖, so where <q,k> ≪ ‖q‖‖k‖ (keys of condition 10⁶ and queries along their
//        small directions) entries can be off by far more than 1e-4 relative;
//   f64: double GEMM of the inputs widened exactly (slower: BENCHMARKS.md, "heavy --verify"):
//        errs by about d·2⁻⁵³·‖q‖‖k‖ — the reference verify_heavy uses.
enum class BruteForceProducts { f32, f64 };

// Every entry A[i,j] ≥ ε of the rows of queries against keys, streamed to sink in (query, key)
// order; sums of squares in double. For float products rows are scaled by powers of two before
// the GEMM, so huge and tiny inputs neither overflow nor underflow (double products need no
// scaling: products of floats and their squares lie within double's range).
HeavyStats brute_force_heavy(ConstMatrixF queries, ConstMatrixF keys, double eps, const HeavySink& sink,
                             BruteForceProducts products = BruteForceProducts::f32);
// The same for 16-bit keys (f16, bf16), read as they are: blocks of 1,024 keys are widened
// exactly into scratch for each GEMM (and scaled, for float products), so no copy of all keys is
// made; the entries are those of the keys widened to float, up to the last bits of the products.
HeavyStats brute_force_heavy(ConstMatrixF queries, MatrixView<const Half> keys, double eps, const HeavySink& sink,
                             BruteForceProducts products = BruteForceProducts::f32);
HeavyStats brute_force_heavy(ConstMatrixF queries, MatrixView<const BFloat16> keys, double eps, const HeavySink& sink,
                             BruteForceProducts products = BruteForceProducts::f32);

}  // namespace levattn
