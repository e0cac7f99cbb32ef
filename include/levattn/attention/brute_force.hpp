// The brute-force reference for x² attention: every A[i,j] through float GEMM (OpenBLAS), each
// row normalised by its own Σ_l <q_i,k_l>². O(m·n·d) time; used by --verify and benchmarks.
#pragma once

#include "levattn/attention/heavy.hpp"

namespace levattn {

// Every entry A[i,j] ≥ ε of the rows of queries against keys, streamed to sink in (query, key)
// order. Rows are scaled by powers of two before the GEMM, so huge and tiny inputs neither
// overflow nor underflow; products are float, sums of squares double.
HeavyStats brute_force_heavy(ConstMatrixF queries, ConstMatrixF keys, double eps, const HeavySink& sink);

}  // namespace levattn
