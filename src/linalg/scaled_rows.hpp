// Power-of-two row scaling (exact, so that a float GEMM or a product of features neither overflows
// nor underflows on huge or tiny inputs), dot products of float rows in double, and the rounding
// bound of a float dot product. Shared by the heavy-entry searches, the normalisers, the Lewis
// iteration and the Gram factors: the one home of these helpers.
#pragma once

#include <algorithm>
#include <cmath>

#include "levattn/core/half.hpp"
#include "levattn/core/matrix_view.hpp"

namespace levattn::linalg {

// The e with max|x|·2^e ∈ [0.5, 1), or 0 when x is all zero (x: n floats or doubles, finite).
template <class T>
int pow2_shift(const T* x, index_t n) {
  T top = 0;
  for (index_t i = 0; i < n; ++i) top = std::max(top, std::fabs(x[i]));
  if (top == 0) return 0;
  int e = 0;
  std::frexp(top, &e);  // top = f·2^e with f ∈ [0.5, 1)
  return -e;
}

// The e with max over all rows of |x|·2^e ∈ [0.5, 1), or 0 when every row is zero (X: float,
// Half or BFloat16 elements).
template <class T>
int pow2_shift(MatrixView<T> X) {
  int shift = 0;
  bool any = false;
  for (index_t r = 0; r < X.rows; ++r) {
    float top = 0.0f;
    for (index_t c = 0; c < X.cols; ++c) top = std::max(top, std::fabs(to_float(X(r, c))));
    if (top == 0.0f) continue;
    int e = 0;
    std::frexp(top, &e);
    shift = any ? std::min(shift, -e) : -e;
    any = true;
  }
  return shift;
}

// out[i] = x[i]·2^shift (exact unless the result is subnormal). The product is formed in double,
// where every power of two a float row can need is representable.
inline void scale_copy(const float* x, index_t n, int shift, float* out) {
  const double scale = std::ldexp(1.0, shift);
  for (index_t i = 0; i < n; ++i) out[i] = static_cast<float>(static_cast<double>(x[i]) * scale);
}

// Σ a_i b_i (T float or double) with the products and the sum in double (a product of floats is
// exact), in 8 interleaved partial sums (a fixed order, so the result is reproducible, and not
// bound by add latency).
template <class T>
double dot_double(const T* a, const T* b, index_t d) {
  constexpr int kLanes = 8;
  double partial[kLanes] = {};
  index_t i = 0;
  for (; i + kLanes <= d; i += kLanes)
    for (int l = 0; l < kLanes; ++l) partial[l] += static_cast<double>(a[i + l]) * static_cast<double>(b[i + l]);
  for (; i < d; ++i) partial[0] += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  double s = 0.0;
  for (double p : partial) s += p;
  return s;
}

// Bound on |fl(Σ aᵢbᵢ) − Σ aᵢbᵢ| for a float dot product of length d in any order, with or
// without FMA, when |a|∞, |b|∞ < 1: γ_d·‖a‖‖b‖ plus one flushed/subnormal unit per product.
inline double float_dot_error_bound(index_t d, double norm_a, double norm_b) {
  const double u = std::ldexp(1.0, -24);
  if (static_cast<double>(d) * u >= 0.5) return HUGE_VAL;  // no useful bound: every product is re-checked
  const double gamma = static_cast<double>(d) * u / (1.0 - static_cast<double>(d) * u);
  return 1.01 * gamma * norm_a * norm_b + static_cast<double>(d) * std::ldexp(1.0, -124);
}

}  // namespace levattn::linalg
