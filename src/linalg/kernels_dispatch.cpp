// Chooses the kernel set once, from what the CPU reports at run time.
#include <cstdlib>
#include <cstring>

#include "linalg/kernels.hpp"

namespace levattn::kernels {

namespace {
// LEVATTN_AVX512 is defined when the AVX-512 sources are built (x86-64 only; see src/CMakeLists.txt).
bool choose_avx512() {
#ifdef LEVATTN_AVX512
  const char* forced = std::getenv("LEVATTN_KERNELS");
  // (=avx2 caps the attention kernels at AVX2; linalg has no AVX2 set, so it runs the generic one.)
  if (forced != nullptr && (std::strcmp(forced, "generic") == 0 || std::strcmp(forced, "avx2") == 0)) return false;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}
}  // namespace

bool use_avx512() {
  static const bool chosen = choose_avx512();
  return chosen;
}

const KernelSet& active_kernels() {
#ifdef LEVATTN_AVX512
  if (use_avx512()) return avx512_kernels();
#endif
  return generic_kernels();
}

}  // namespace levattn::kernels
