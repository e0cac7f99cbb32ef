// The attention backward's element-wise pass for any x86-64, and the run-time choice.
#define FLASH_NAMESPACE backward_generic_build
#include "attention/backward_tile.hpp"
#include "linalg/blas.hpp"
#include "linalg/kernels.hpp"

namespace levattn::detail {

void openblas_block_gemm(bool transpose_a, bool transpose_b, ConstMatrixF a, ConstMatrixF b, bool accumulate,
                         MatrixF c) {
  linalg::sgemm(transpose_a, transpose_b, 1.0f, a, b, accumulate ? 1.0f : 0.0f, c);
}

const BackwardKernels& generic_backward_kernels() {
  static const BackwardKernels set{"generic", backward_generic_build::backward_block, openblas_block_gemm};
  return set;
}

const BackwardKernels& active_backward_kernels() {
#ifdef LEVATTN_AVX512
  if (kernels::use_avx512()) return avx512_backward_kernels();
#endif
#ifdef LEVATTN_AVX2
  if (kernels::use_avx2()) return avx2_backward_kernels();
#endif
  return generic_backward_kernels();
}

}  // namespace levattn::detail
