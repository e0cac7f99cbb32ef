// Chooses the kernel set once, from what the CPU reports at run time.
#include <cstdlib>
#include <cstring>

#include "linalg/kernels.hpp"

namespace levattn::kernels {

namespace {
const KernelSet& choose() {
  const char* forced = std::getenv("LEVATTN_KERNELS");
  if (forced != nullptr && std::strcmp(forced, "generic") == 0) return generic_kernels();
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    return avx512_kernels();
  return generic_kernels();
}
}  // namespace

const KernelSet& active_kernels() {
  static const KernelSet& chosen = choose();
  return chosen;
}

}  // namespace levattn::kernels
