// The inner loop of count_sketch / sparse_sign sketches, written once and compiled twice: for the
// baseline instruction set (sketch_kernels_generic.cpp) and for AVX-512 (sketch_kernels_avx512.cpp,
// entered only when kernels::active_kernels() is the AVX-512 set).
#pragma once

#include <cstdint>

namespace levattn::kernels {

using index_t = std::int64_t;

// Widest column tile the scatter kernel takes.
constexpr index_t kScatterTile = 64;

// For each key r < rows (row r of X, stride `stride`), columns [c0, c0 + w), w ≤ kScatterTile:
//   out[target[r·s + t]·ld + c0 + c] += value[r·s + t] · X[r][c0 + c]   for t < s, in (r, t) order.
// Returns false (out partly updated) if any value read is NaN or ±Inf.
using ScatterFn = bool (*)(const float* X, index_t rows, index_t stride, index_t c0, index_t w,
                           const std::int32_t* target, const double* value, index_t s,
                           double* out, index_t ld);

ScatterFn scatter_generic();
ScatterFn scatter_avx512();

// Internal linkage: each translation unit keeps its own copy, compiled with its own flags.
namespace {
inline bool scatter_impl(const float* X, index_t rows, index_t stride, index_t c0, index_t w,
                         const std::int32_t* target, const double* value, index_t s, double* out,
                         index_t ld) {
  double x[kScatterTile];
  double poison = 0.0;  // becomes NaN if any x is NaN or ±Inf (Inf·0 = NaN)
  for (index_t r = 0; r < rows; ++r) {
    const float* src = X + r * stride + c0;
    for (index_t c = 0; c < w; ++c) {
      x[c] = src[c];
      poison += x[c] * 0.0;
    }
    for (index_t t = 0; t < s; ++t) {
      double* o = out + static_cast<index_t>(target[r * s + t]) * ld + c0;
      const double v = value[r * s + t];
      for (index_t c = 0; c < w; ++c) o[c] += v * x[c];
    }
  }
  return poison == 0.0;
}
}  // namespace

}  // namespace levattn::kernels
