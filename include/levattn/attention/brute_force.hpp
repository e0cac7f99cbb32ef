// The brute-force reference for x² attention: every A[i,j] through float GEMM (OpenBLAS), each
// row normalised by its own Σ_l <q_i,k_l>². O(m·n·d) time; used by --verify and benchmarks.
#pragma once

#include "levattn/attention/heavy.hpp"

namespace levattn {

// Every entry A[i,j] ≥ ε of the rows of queries against keys, streamed to sink in (query, key)
// order. Rows are scaled by powers of two before the GEMM, so huge and tiny inputs neither
// overflow nor underflow; products are float, sums of squares double.
HeavyStats brute_force_heavy(ConstMatrixF queries, ConstMatrixF keys, double eps, const HeavySink& sink);
// The same for 16-bit keys (f16, bf16), read as they are: blocks of 1,024 keys are widened
// (exactly) and scaled into scratch for each GEMM, so no float copy of all keys is made; the
// entries are those of the keys widened to float, up to the last bits of the float products.
HeavyStats brute_force_heavy(ConstMatrixF queries, MatrixView<const Half> keys, double eps, const HeavySink& sink);
HeavyStats brute_force_heavy(ConstMatrixF queries, MatrixView<const BFloat16> keys, double eps, const HeavySink& sink);

}  // namespace levattn
