// The attention inner loops for any x86-64 (baseline instruction set), and the run-time choice.
#define FLASH_NAMESPACE generic_build
#include "attention/flash_tile.hpp"
#include "linalg/kernels.hpp"

namespace levattn::detail {

const FlashKernels& generic_flash_kernels() {
  static const FlashKernels set{"generic", generic_build::run_tile, generic_build::run_single};
  return set;
}

const FlashKernels& active_flash_kernels() {
#ifdef LEVATTN_AVX512
  if (kernels::use_avx512()) return avx512_flash_kernels();
#endif
  return generic_flash_kernels();
}

}  // namespace levattn::detail
