// Compiled with -mavx2 -mfma (see src/CMakeLists.txt).
#include "linalg/sketch_kernels.hpp"

namespace levattn::kernels {

namespace {
bool scatter(const float* X, index_t stride, index_t d, const std::int32_t* key, const std::int32_t* target,
             const double* value, index_t count, double* out) {
  return scatter_impl(X, stride, d, key, target, value, count, out);
}
}  // namespace

ScatterFn scatter_avx2() { return scatter; }

}  // namespace levattn::kernels
