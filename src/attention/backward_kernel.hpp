// Private interface between the attention backward driver (backward.cpp) and its element-wise
// block pass (backward_tile.hpp, compiled portable, for AVX2 and for AVX-512; chosen at run time).
#pragma once

#include "attention/flash_kernel.hpp"
#include "levattn/attention/exact.hpp"

namespace levattn::detail {

// One block of rows × cols (query i = first_row + r, key j = first_col + t), row-major with
// leading dimension ld. On entry S holds s_rt = <q̃_i, k̃_j> of the scaled queries and keys
// (backward.cpp: softmax c·q_i and k_j; |x|^P powers of two) and dP holds <dO_i, v_j>; on exit S
// holds P_rt and dP the gradient with respect to that scaled product: P·(dP − D) (softmax) or
// P·(dP − D)·P/s̃ (|x|^P). Keys the mask hides (key j = first_col + t, see KeyMask), and rows with
// log normaliser −∞, get 0.
struct BackwardBlock {
  ScoreKind kind = ScoreKind::softmax;
  double p = 2.0;  // |x|^P exponent
  index_t rows = 0, cols = 0, ld = 0;
  float* S = nullptr;
  float* dP = nullptr;
  const double* lse = nullptr;  // per row: L_i (|x|^P: of the scaled products, see backward.cpp)
  const float* D = nullptr;     // per row: Σ_c dO[i,c]·O[i,c]
  KeyMask mask;                 // which keys each query sees; positions index the whole key head
  index_t first_row = 0, first_col = 0;
};

// C = op(A)·op(B) (+ C when accumulate), op(X) = Xᵀ when its flag is set. The portable and AVX2
// sets call OpenBLAS (openblas_block_gemm, linalg/blas.hpp); the AVX-512 set runs Eigen's GEMM
// compiled for AVX-512 in its own file, single-threaded (why: BENCHMARKS.md, "Backward"). All
// three are called only inside the driver's parallel region, where each product runs on one
// thread, so the bits of C never depend on the thread count.
using BlockGemm = void (*)(bool transpose_a, bool transpose_b, ConstMatrixF a, ConstMatrixF b, bool accumulate,
                           MatrixF c);

struct BackwardKernels {
  const char* name;
  void (*block)(const BackwardBlock&);
  BlockGemm gemm;
};

// The shape checks of attend_exact_backward (backward.hpp), for the operators built on it.
void check_backward_shapes(ConstHeadsF queries, ConstHeadsF keys, ConstHeadsF values, ConstHeadsF out,
                           ConstHeadsF grad_out, HeadsF grad_queries, HeadsF grad_keys, HeadsF grad_values);

// The BlockGemm of the portable and AVX2 sets: linalg::sgemm (OpenBLAS).
void openblas_block_gemm(bool transpose_a, bool transpose_b, ConstMatrixF a, ConstMatrixF b, bool accumulate,
                         MatrixF c);

const BackwardKernels& generic_backward_kernels();
const BackwardKernels& avx2_backward_kernels();
const BackwardKernels& avx512_backward_kernels();
const BackwardKernels& active_backward_kernels();

}  // namespace levattn::detail
