// Portable kernels: straightforward loops in double, written so the compiler can vectorise them
// for the baseline instruction set.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include "linalg/kernels.hpp"

namespace levattn::kernels {

namespace {

// Copies rows of X into a dense double buffer (rows × dpad, zero padded); false on NaN/Inf.
bool widen(const float* X, index_t rows, index_t d, index_t stride, double* out) {
  const index_t dpad = padded_dim(d);
  bool finite = true;
  for (index_t r = 0; r < rows; ++r) {
    const float* x = X + r * stride;
    double* o = out + r * dpad;
    for (index_t c = 0; c < d; ++c) {
      o[c] = x[c];
      finite &= std::isfinite(x[c]);
    }
    for (index_t c = d; c < dpad; ++c) o[c] = 0.0;
  }
  return finite;
}

// half_to_float without branches, so that the loop vectorises with plain SSE2; the same bits for
// every pattern. Normal numbers and inf/NaN rebias the exponent in integers (inf/NaN by a second
// 112, reaching 255); subnormals and zeros are mantissa·2⁻²⁴, formed exactly from an integer
// conversion and a power-of-two product whose result is a normal float (or zero).
void widen_half_generic(const Half* x, index_t count, float* out) {
  for (index_t i = 0; i < count; ++i) {
    const std::uint32_t h = x[i].bits;
    const std::uint32_t exponent = h & 0x7c00u;
    const std::uint32_t inf_nan = 0u - std::uint32_t(exponent == 0x7c00u);  // all ones or zero
    const std::uint32_t subnormal_or_zero = 0u - std::uint32_t(exponent == 0u);
    const std::uint32_t normal = ((h & 0x7fffu) << 13) + 0x38000000u + (inf_nan & 0x38000000u);
    const std::uint32_t subnormal = std::bit_cast<std::uint32_t>(float(std::int32_t(h & 0x3ffu)) * 0x1p-24f);
    const std::uint32_t sign = (h & 0x8000u) << 16;
    out[i] = std::bit_cast<float>(sign | (subnormal_or_zero & subnormal) | (~subnormal_or_zero & normal));
  }
}

bool gram_generic(const float* X, index_t rows, index_t d, index_t stride, double* G) {
  const index_t dpad = padded_dim(d);
  std::vector<double> xd(static_cast<size_t>(rows * dpad));
  if (!widen(X, rows, d, stride, xd.data())) return false;
  // Sum the block on its own first, then add it to G once: G's entries then see one addition a
  // block, not one a row, which keeps rounding independent of n.
  std::vector<double> block(static_cast<size_t>(dpad));
  for (index_t a = 0; a < d; ++a) {
    std::fill(block.begin(), block.end(), 0.0);
    for (index_t r = 0; r < rows; ++r) {
      const double* x = xd.data() + r * dpad;
      const double xa = x[a];
      for (index_t b = a; b < d; ++b) block[b] += xa * x[b];
    }
    for (index_t b = a; b < d; ++b) G[a * dpad + b] += block[b];
  }
  return true;
}

bool trapezoid_sumsq_generic(const float* X, index_t rows, index_t d, index_t stride, const double* Tt, index_t t_rows,
                             double* out) {
  const index_t dpad = padded_dim(d);
  const index_t tpad = padded_dim(t_rows);
  std::vector<double> xd(static_cast<size_t>(rows * dpad));
  if (!widen(X, rows, d, stride, xd.data())) return false;
  std::vector<double> y(static_cast<size_t>(tpad));
  for (index_t r = 0; r < rows; ++r) {
    const double* x = xd.data() + r * dpad;
    for (index_t i = 0; i < tpad; ++i) y[i] = 0.0;
    for (index_t c = 0; c < d; ++c) {
      const double* t = Tt + c * tpad;  // row c of Tᵀ: T[i][c] for every i ≤ c
      const index_t upto = c + 1 < t_rows ? c + 1 : t_rows;
      for (index_t i = 0; i < upto; ++i) y[i] += t[i] * x[c];
    }
    double s = 0.0;
    for (index_t i = 0; i < t_rows; ++i) s += y[i] * y[i];
    out[r] = s;
  }
  return true;
}

void trapezoid_sumsq_float_generic(const float* X, index_t rows, index_t d, index_t stride, const float* Ttf,
                                   index_t t_rows, double* out) {
  const index_t tpad = padded_dim_float(t_rows);
  std::vector<float> y(static_cast<size_t>(tpad));
  for (index_t r = 0; r < rows; ++r) {
    const float* x = X + r * stride;
    std::fill(y.begin(), y.end(), 0.0f);
    for (index_t c = 0; c < d; ++c) {
      const float* t = Ttf + c * tpad;  // row c of Tᵀ: T[i][c] for every i ≤ c
      const index_t upto = c + 1 < t_rows ? c + 1 : t_rows;
      for (index_t i = 0; i < upto; ++i) y[i] = std::fma(t[i], x[c], y[i]);
    }
    double s = 0.0;
    for (index_t i = 0; i < t_rows; ++i) s += static_cast<double>(y[i]) * y[i];
    out[r] = s;
  }
}

}  // namespace

const KernelSet& generic_kernels() {
  static const KernelSet set{"generic", gram_generic, trapezoid_sumsq_generic, trapezoid_sumsq_float_generic,
                             widen_half_generic};
  return set;
}

}  // namespace levattn::kernels
