// The element-wise pass of the attention backward (backward_kernel.hpp), written once and compiled
// three times: for the baseline instruction set (backward_generic.cpp), for AVX2 with FMA
// (backward_avx2.cpp) and for AVX-512 (backward_avx512.cpp). Include only from those files;
// FLASH_NAMESPACE names the build.
#pragma once

#include <algorithm>
#include <cmath>

#include "attention/backward_kernel.hpp"
#include "attention/exp_nonpositive.hpp"

namespace levattn::detail::FLASH_NAMESPACE {

// The keys row r sees: columns [begin, end) of the block (every column without the mask); none
// when its log normaliser is −∞.
struct Visible {
  index_t begin, end;
};

// The first column of the block whose key has position ≥ pos (cols if none).
inline index_t first_column_at(const BackwardBlock& b, index_t pos) {
  if (b.mask.positions == nullptr) return std::clamp<index_t>(pos - b.first_col, 0, b.cols);
  const index_t* first = b.mask.positions + b.first_col;
  return static_cast<index_t>(std::lower_bound(first, first + b.cols, pos) - first);
}

inline Visible visible(const BackwardBlock& b, index_t r) {
  if (!std::isfinite(b.lse[r])) return {0, 0};
  const index_t i = b.first_row + r;
  const index_t end = b.mask.upper ? first_column_at(b, i + b.mask.hi_offset + 1) : b.cols;
  const index_t begin = b.mask.lower ? std::min(end, first_column_at(b, i + b.mask.lo_offset)) : 0;
  return {begin, end};
}

// Zeroes S and dP of row r outside [v.begin, v.end).
inline void clear_hidden(const BackwardBlock& b, index_t r, Visible v) {
  float* s = b.S + r * b.ld;
  float* dp = b.dP + r * b.ld;
  std::fill(s, s + v.begin, 0.0f);
  std::fill(dp, dp + v.begin, 0.0f);
  std::fill(s + v.end, s + b.cols, 0.0f);
  std::fill(dp + v.end, dp + b.cols, 0.0f);
}

// Softmax: s already holds c·<q,k>. L is split into float parts (L = hi + lo to double rounding),
// so that s − L keeps its digits when |L| is large.
inline void softmax_row(const BackwardBlock& b, index_t r) {
  float* s = b.S + r * b.ld;
  float* dp = b.dP + r * b.ld;
  const Visible v = visible(b, r);
  const float hi = static_cast<float>(b.lse[r]), lo = static_cast<float>(b.lse[r] - static_cast<double>(hi));
  const float D = b.D[r];
#pragma omp simd
  for (index_t t = v.begin; t < v.end; ++t) {
    const float w = exp_nonpositive(std::min(0.0f, (s[t] - hi) - lo));
    s[t] = w;
    dp[t] = w * (dp[t] - D);
  }
  clear_hidden(b, r, v);
}

// Any P: in double, element by element.
inline void power_row(const BackwardBlock& b, index_t r) {
  float* s = b.S + r * b.ld;
  float* dp = b.dP + r * b.ld;
  const Visible v = visible(b, r);
  const double L = b.lse[r], D = b.D[r];
  for (index_t t = v.begin; t < v.end; ++t) {
    const double x = s[t];
    const double w = x == 0.0 ? 0.0 : std::exp(b.p * std::log(std::fabs(x)) - L);
    s[t] = static_cast<float>(w);
    dp[t] = x == 0.0 ? 0.0f : static_cast<float>(w * b.p / x * (dp[t] - D));
  }
  clear_hidden(b, r, v);
}

// |x|²: P = s²·e^{−L}, g = 2P/s·(dP − D) = 2s·e^{−L}·(dP − D) in float, when e^{−L} fits float
// comfortably (the scaled products of backward.cpp make that the rule); else power_row.
inline void square_row(const BackwardBlock& b, index_t r) {
  const double inv_d = std::exp(-b.lse[r]);
  if (!(inv_d < 1e30)) return power_row(b, r);
  float* s = b.S + r * b.ld;
  float* dp = b.dP + r * b.ld;
  const Visible v = visible(b, r);
  const float inv = static_cast<float>(inv_d), D = b.D[r];
#pragma omp simd
  for (index_t t = v.begin; t < v.end; ++t) {
    const float x = s[t];
    const float xi = x * inv;
    s[t] = x * xi;
    dp[t] = 2.0f * xi * (dp[t] - D);
  }
  clear_hidden(b, r, v);
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
