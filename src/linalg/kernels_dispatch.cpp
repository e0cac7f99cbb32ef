// Chooses the kernel set once, from what the CPU reports at run time.
#include <cstdlib>
#include <cstring>

#include "linalg/kernels.hpp"

namespace levattn::kernels {

namespace {
bool choose_avx512() {
  const char* forced = std::getenv("LEVATTN_KERNELS");
  if (forced != nullptr && std::strcmp(forced, "generic") == 0) return false;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl");
}
}  // namespace

bool use_avx512() {
  static const bool chosen = choose_avx512();
  return chosen;
}

const KernelSet& active_kernels() { return use_avx512() ? avx512_kernels() : generic_kernels(); }

}  // namespace levattn::kernels
