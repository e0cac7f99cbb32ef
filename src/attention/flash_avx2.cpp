// The attention inner loops compiled for AVX2 with FMA and F16C (this file alone gets -mavx2 -mfma
// -mf16c and FMA contraction; it runs only after the run-time CPU check): what x86-64 CPUs without
// AVX-512 run.
#define FLASH_NAMESPACE avx2_build
#include "attention/flash_tile.hpp"

namespace levattn::detail {

const FlashKernels& avx2_flash_kernels() {
  static const FlashKernels set{"avx2", false, avx2_build::run_tile, avx2_build::run_single};
  return set;
}

}  // namespace levattn::detail
