// The element-wise pass of the attention backward (backward_kernel.hpp), written once and compiled
// twice: for the baseline instruction set (backward_generic.cpp) and for AVX-512
// (backward_avx512.cpp). Include only from those two files; FLASH_NAMESPACE names the build.
#pragma once

#include <algorithm>
#include <cmath>

#include "attention/backward_kernel.hpp"
#include "attention/exp_nonpositive.hpp"

namespace levattn::detail::FLASH_NAMESPACE {

// Visible keys of row r: t < end (all cols without the mask).
inline index_t visible_end(const BackwardBlock& b, index_t r) {
  if (!b.causal) return b.cols;
  return std::clamp<index_t>(b.first_row + r + b.offset - b.first_col + 1, 0, b.cols);
}

// Softmax: s already holds c·<q,k>. L is split into float parts (L = hi + lo to double rounding),
// so that s − L keeps its digits when |L| is large.
inline void softmax_row(const BackwardBlock& b, index_t r) {
  float* s = b.S + r * b.ld;
  float* dp = b.dP + r * b.ld;
  const index_t end = std::isfinite(b.lse[r]) ? visible_end(b, r) : 0;
  const float hi = static_cast<float>(b.lse[r]), lo = static_cast<float>(b.lse[r] - static_cast<double>(hi));
  const float D = b.D[r];
#pragma omp simd
  for (index_t t = 0; t < end; ++t) {
    const float w = exp_nonpositive(std::min(0.0f, (s[t] - hi) - lo));
    s[t] = w;
    dp[t] = w * (dp[t] - D);
  }
  std::fill(s + end, s + b.cols, 0.0f);
  std::fill(dp + end, dp + b.cols, 0.0f);
}

// Any P: in double, element by element.
inline void power_row(const BackwardBlock& b, index_t r) {
  float* s = b.S + r * b.ld;
  float* dp = b.dP + r * b.ld;
  const index_t end = std::isfinite(b.lse[r]) ? visible_end(b, r) : 0;
  const double L = b.lse[r], D = b.D[r];
  for (index_t t = 0; t < end; ++t) {
    const double x = s[t];
    const double w = x == 0.0 ? 0.0 : std::exp(b.p * std::log(std::fabs(x)) - L);
    s[t] = static_cast<float>(w);
    dp[t] = x == 0.0 ? 0.0f : static_cast<float>(w * b.p / x * (dp[t] - D));
  }
  std::fill(s + end, s + b.cols, 0.0f);
  std::fill(dp + end, dp + b.cols, 0.0f);
}

// |x|²: P = s²·e^{−L}, g = 2P/s·(dP − D) = 2s·e^{−L}·(dP − D) in float, when e^{−L} fits float
// comfortably (the scaled products of backward.cpp make that the rule); else power_row.
inline void square_row(const BackwardBlock& b, index_t r) {
  const double inv_d = std::exp(-b.lse[r]);
  if (!(inv_d < 1e30)) return power_row(b, r);
  float* s = b.S + r * b.ld;
  float* dp = b.dP + r * b.ld;
  const index_t end = std::isfinite(b.lse[r]) ? visible_end(b, r) : 0;
  const float inv = static_cast<float>(inv_d), D = b.D[r];
#pragma omp simd
  for (index_t t = 0; t < end; ++t) {
    const float x = s[t];
    const float xi = x * inv;
    s[t] = x * xi;
    dp[t] = 2.0f * xi * (dp[t] - D);
  }
  std::fill(s + end, s + b.cols, 0.0f);
  std::fill(dp + end, dp + b.cols, 0.0f);
}

inline void backward_block(const BackwardBlock& b) {
  for (index_t r = 0; r < b.rows; ++r) {
    if (b.kind == ScoreKind::softmax)
      softmax_row(b, r);
    else if (b.p == 2.0)
      square_row(b, r);
    else
      power_row(b, r);
  }
}

}  // namespace levattn::detail::FLASH_NAMESPACE
