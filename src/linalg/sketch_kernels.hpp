// The inner loop of count_sketch / sparse_sign sketches, written once and compiled three times: for
// the baseline instruction set (sketch_kernels_generic.cpp), for AVX2 with FMA
// (sketch_kernels_avx2.cpp) and for AVX-512 (sketch_kernels_avx512.cpp), each entered only when
// kernels::active_kernels() is the matching set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace levattn::kernels {

using index_t = std::int64_t;

// For each nonzero e < count, in order: out[target[e]·d + c] += value[e] · X[key[e]][c], c < d
// (X: float rows of length d, row stride `stride`). Returns false (out partly updated) if a row
// read holds a NaN or ±Inf.
using ScatterFn = bool (*)(const float* X, index_t stride, index_t d, const std::int32_t* key,
                           const std::int32_t* target, const double* value, index_t count, double* out);

ScatterFn scatter_generic();
ScatterFn scatter_avx2();
ScatterFn scatter_avx512();

// Internal linkage: each translation unit keeps its own copy, compiled with its own flags.
namespace {
inline bool scatter_impl(const float* X, index_t stride, index_t d, const std::int32_t* key, const std::int32_t* target,
                         const double* value, index_t count, double* out) {
  std::uint32_t bad = 0;         // nonzero once an exponent field is all ones (NaN or ±Inf)
  constexpr index_t kAhead = 8;  // key rows are gathered at random: fetch them early
  for (index_t e = 0; e < count; ++e) {
    if (e + kAhead < count) {
      const char* next = reinterpret_cast<const char*>(X + static_cast<index_t>(key[e + kAhead]) * stride);
      for (index_t byte = 0; byte < d * static_cast<index_t>(sizeof(float)); byte += 64)
        __builtin_prefetch(next + byte);
    }
    const float* src = X + static_cast<index_t>(key[e]) * stride;
    double* o = out + static_cast<index_t>(target[e]) * d;
    const double v = value[e];
    for (index_t c = 0; c < d; ++c) {
      const float x = src[c];
      std::uint32_t bits;
      std::memcpy(&bits, &x, sizeof bits);
      bad |= static_cast<std::uint32_t>((bits & 0x7F800000u) == 0x7F800000u);
      o[c] += v * static_cast<double>(x);
    }
  }
  return bad == 0;
}
}  // namespace

}  // namespace levattn::kernels
