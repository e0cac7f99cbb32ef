// The attention backward's element-wise pass compiled for AVX2 with FMA (this file alone gets
// -mavx2 -mfma; it runs only after the run-time CPU check), what x86-64 CPUs without AVX-512 run.
// The block products stay OpenBLAS's (backward_generic.cpp), which picks its own kernels at run time.
#define FLASH_NAMESPACE backward_avx2_build
#include "attention/backward_tile.hpp"

namespace levattn::detail {

const BackwardKernels& avx2_backward_kernels() {
  static const BackwardKernels set{"avx2", backward_avx2_build::backward_block, openblas_block_gemm};
  return set;
}

}  // namespace levattn::detail
