// Private compute kernels of the linalg layer, with one portable implementation, one for AVX2 (with
// FMA and F16C) and one for AVX-512, chosen at run time. All compute in double from float input
// (every float×float product is exact in double), so results agree to double rounding whichever
// one runs.
//
// Layout: X is `rows` float rows of length d with row stride `stride`. Matrices in double are
// row-major and padded: `dpad = padded_dim(d)` columns, extra entries zero.
#pragma once

#include <cstdint>

#include "levattn/core/half.hpp"

namespace levattn::kernels {

using index_t = std::int64_t;

// Width to which kernels pad dimensions (a multiple of the AVX-512 tile width).
constexpr index_t kPad = 16;
inline index_t padded_dim(index_t d) { return (d + kPad - 1) / kPad * kPad; }

// Rows the kernels take at a time; callers split longer inputs into blocks of this size.
constexpr index_t kBlockRows = 256;

// G (dpad×dpad, row-major) += Xᵀ X over rows ≤ kBlockRows. Only the upper triangle (with the
// diagonal) is defined afterwards; entries below it may or may not be updated. Returns false
// (G untouched) if X holds a NaN or an infinity.
using GramFn = bool (*)(const float* X, index_t rows, index_t d, index_t stride, double* G);

// out[r] = ‖T x_r‖², r < rows ≤ kBlockRows, for T upper trapezoidal with `t_rows` rows
// (T[i][c] = 0 for c < i), given as Tt = Tᵀ (dpad × padded_dim(t_rows), row-major, zero
// padded). Returns false if X holds a NaN or an infinity (out is then unspecified).
using SumSqFn = bool (*)(const float* X, index_t rows, index_t d, index_t stride, const double* Tt, index_t t_rows,
                         double* out);

// Padding of the float copy of Tᵀ read by SumSqFloatFn (the AVX-512 kernel's 32-float tile).
constexpr index_t kPadFloat = 32;
inline index_t padded_dim_float(index_t n) { return (n + kPadFloat - 1) / kPadFloat * kPadFloat; }

// As SumSqFn, with y = T x_r formed in float (fused multiply-adds in a fixed order, so y carries a
// relative error of about d·2⁻²⁴·‖|T||x|‖/‖Tx‖) and ‖y‖² summed in double; Ttf = Tᵀ in float,
// dpad × padded_dim_float(t_rows), zero padded. Reports nothing: a NaN or ±Inf in X, and a float
// overflow, show as a non-finite out[r], which the caller must check.
using SumSqFloatFn = void (*)(const float* X, index_t rows, index_t d, index_t stride, const float* Ttf, index_t t_rows,
                              double* out);

// out[i] = the float equal to the f16 value x[i], i < count: exact (half_to_float's bits) for
// every finite value and infinity; a NaN stays a NaN (its payload may come back quieted).
using WidenHalfFn = void (*)(const Half* x, index_t count, float* out);

struct KernelSet {
  const char* name;
  GramFn gram;
  SumSqFn trapezoid_sumsq;
  SumSqFloatFn trapezoid_sumsq_float;
  WidenHalfFn widen_half;
};

// The portable kernels (any x86-64, any compiler flags).
const KernelSet& generic_kernels();
// The AVX2 kernels; call only when use_avx2() (or the CPU supports AVX2, FMA and F16C).
const KernelSet& avx2_kernels();
// The AVX-512 kernels; call only when the CPU supports AVX-512F/DQ/VL.
const KernelSet& avx512_kernels();
// True when the CPU supports AVX2, FMA and F16C, the AVX2 kernels are built (x86-64) and
// LEVATTN_KERNELS=generic is not set.
bool use_avx2();
// True when the CPU supports AVX-512F/DQ/VL and LEVATTN_KERNELS=generic (or =avx2) is not set:
// the one switch every layer's AVX-512 code paths follow.
bool use_avx512();
// The best kernels this CPU runs (avx512, else avx2, else generic); LEVATTN_KERNELS=generic or =avx2
// in the environment caps the choice.
const KernelSet& active_kernels();

}  // namespace levattn::kernels
