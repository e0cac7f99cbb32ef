// The attention inner loops for any x86-64 (baseline instruction set), and the run-time choice.
#define FLASH_NAMESPACE generic_build
#include <cstdlib>
#include <cstring>

#include "attention/flash_tile.hpp"
#include "linalg/kernels.hpp"

namespace levattn::detail {

const FlashKernels& generic_flash_kernels() {
  static const FlashKernels set{"generic", false, generic_build::run_tile, generic_build::run_single};
  return set;
}

namespace {
#ifdef LEVATTN_AVX512
// AVX512_BF16 on top of AVX-512, unless LEVATTN_KERNELS=avx512 (or a lower set) caps the choice.
bool choose_bf16() {
  const char* forced = std::getenv("LEVATTN_KERNELS");
  if (forced != nullptr && std::strcmp(forced, "avx512") == 0) return false;
  __builtin_cpu_init();
  return kernels::use_avx512() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16");
}
#endif

}  // namespace

const FlashKernels& active_flash_kernels() {
#ifdef LEVATTN_AVX512
  static const bool bf16 = choose_bf16();
  if (bf16) return avx512_bf16_flash_kernels();
  if (kernels::use_avx512()) return avx512_flash_kernels();
#endif
#ifdef LEVATTN_AVX2
  if (kernels::use_avx2()) return avx2_flash_kernels();
#endif
  return generic_flash_kernels();
}

}  // namespace levattn::detail
