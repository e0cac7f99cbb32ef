// Chooses the kernel set once, from what the CPU reports at run time.
#include <cstdlib>
#include <cstring>

#if defined(LEVATTN_AVX2)
#include <cpuid.h>
#endif

#include "linalg/kernels.hpp"

namespace levattn::kernels {

namespace {
bool forced_to(const char* set) {
  const char* forced = std::getenv("LEVATTN_KERNELS");
  return forced != nullptr && std::strcmp(forced, set) == 0;
}

// LEVATTN_AVX512 is defined when the AVX-512 sources are built (x86-64 only; see src/CMakeLists.txt).
bool choose_avx512() {
#ifdef LEVATTN_AVX512
  if (forced_to("generic") || forced_to("avx2")) return false;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

// LEVATTN_AVX2 is defined when the AVX2 sources are built (x86-64 only). F16C is CPUID leaf 1, ECX
// bit 29 (not every compiler's __builtin_cpu_supports knows it).
bool choose_avx2() {
#ifdef LEVATTN_AVX2
  if (forced_to("generic")) return false;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0 || (ecx & bit_F16C) == 0) return false;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}
}  // namespace

bool use_avx2() {
  static const bool chosen = choose_avx2();
  return chosen;
}

bool use_avx512() {
  static const bool chosen = choose_avx512();
  return chosen;
}

const KernelSet& active_kernels() {
#ifdef LEVATTN_AVX512
  if (use_avx512()) return avx512_kernels();
#endif
#ifdef LEVATTN_AVX2
  if (use_avx2()) return avx2_kernels();
#endif
  return generic_kernels();
}

}  // namespace levattn::kernels
