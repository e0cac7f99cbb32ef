// Compiled with -mavx512f -mavx512dq -mavx512vl -mfma -mprefer-vector-width=512 (see src/CMakeLists.txt).
#include "linalg/sketch_kernels.hpp"

namespace levattn::kernels {

namespace {
bool scatter(const float* X, index_t rows, index_t stride, index_t c0, index_t w,
             const std::int32_t* target, const double* value, index_t s, double* out, index_t ld) {
  return scatter_impl(X, rows, stride, c0, w, target, value, s, out, ld);
}
}  // namespace

ScatterFn scatter_avx512() { return scatter; }

}  // namespace levattn::kernels
