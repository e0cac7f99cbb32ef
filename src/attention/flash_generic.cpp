// The attention inner loops for any x86-64 (baseline instruction set), and the run-time choice.
#define FLASH_NAMESPACE generic_build
#include <cstdlib>
#include <cstring>

#if defined(LEVATTN_AVX2)
#include <cpuid.h>
#endif

#include "attention/flash_tile.hpp"
#include "linalg/kernels.hpp"

namespace levattn::detail {

const FlashKernels& generic_flash_kernels() {
  static const FlashKernels set{"generic", false, generic_build::run_tile, generic_build::run_single};
  return set;
}

namespace {
const char* forced_kernels() { return std::getenv("LEVATTN_KERNELS"); }

#ifdef LEVATTN_AVX512
// AVX512_BF16 on top of AVX-512, unless LEVATTN_KERNELS=avx512 (or a lower set) caps the choice.
bool choose_bf16() {
  const char* forced = forced_kernels();
  if (forced != nullptr && std::strcmp(forced, "avx512") == 0) return false;
  __builtin_cpu_init();
  return kernels::use_avx512() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16");
}
#endif

#ifdef LEVATTN_AVX2
// AVX2, FMA and F16C (CPUID leaf 1, ECX bit 29: not every compiler's __builtin_cpu_supports knows
// it), unless LEVATTN_KERNELS=generic.
bool choose_avx2() {
  const char* forced = forced_kernels();
  if (forced != nullptr && std::strcmp(forced, "generic") == 0) return false;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0 || (ecx & bit_F16C) == 0) return false;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
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
  static const bool avx2 = choose_avx2();
  if (avx2) return avx2_flash_kernels();
#endif
  return generic_flash_kernels();
}

}  // namespace levattn::detail
