// The attention inner loops compiled for AVX-512 (this file alone gets -mavx512f/dq/vl -mfma,
// 512-bit vectors and FMA contraction; it runs only after the run-time CPU check).
#define FLASH_NAMESPACE avx512_build
#include "attention/flash_tile.hpp"

namespace levattn::detail {

const FlashKernels& avx512_flash_kernels() {
  static const FlashKernels set{"avx512", false, avx512_build::run_tile, avx512_build::run_single};
  return set;
}

}  // namespace levattn::detail
