// Private interface between the attention backward driver (backward.cpp) and its element-wise
// block pass (backward_tile.hpp, compiled once portable and once for AVX-512; chosen at run time).
#pragma once

#include "levattn/attention/exact.hpp"

namespace levattn::detail {

// One block of rows × cols (query i = first_row + r, key j = first_col + t), row-major with
// leading dimension ld. On entry S holds s_rt = <q_i, k_j> (of the scaled queries and keys for
// |x|^P) and dP holds <dO_i, v_j>; on exit S holds P_rt and dP holds the gradient factor g_rt of
// backward.hpp (for |x|^P: with respect to the scaled s). Keys the causal mask hides, and rows with
// log normaliser −∞, get P = g = 0.
struct BackwardBlock {
  ScoreKind kind;
  double p;             // |x|^P exponent
  float scale;          // softmax: c
  index_t rows, cols, ld;
  float* S;
  float* dP;
  const double* lse;    // per row: L_i (|x|^P: of the scaled products, see backward.cpp)
  const float* D;       // per row: Σ_c dO[i,c]·O[i,c]
  bool causal;
  index_t first_row, first_col, offset;  // visible iff first_col + t ≤ first_row + r + offset
};

// C = op(A)·op(B) (+ C when accumulate), op(X) = Xᵀ when its flag is set. The portable set calls
// OpenBLAS (linalg/blas.hpp); the AVX-512 set runs Eigen's GEMM compiled for AVX-512 in its own
// file, single-threaded (Debian's OpenBLAS 0.3.21 picks its AVX2 kernels on AMD Zen 4, half the
// speed). Either way the call runs on the calling thread, so results never depend on the thread
// count.
using BlockGemm = void (*)(bool transpose_a, bool transpose_b, ConstMatrixF a, ConstMatrixF b, bool accumulate,
                           MatrixF c);

struct BackwardKernels {
  const char* name;
  void (*block)(const BackwardBlock&);
  BlockGemm gemm;
};

const BackwardKernels& generic_backward_kernels();
const BackwardKernels& avx512_backward_kernels();
const BackwardKernels& active_backward_kernels();

}  // namespace levattn::detail
