// AVX2 kernels with FMA and F16C (this file alone is compiled with -mavx2 -mfma -mf16c and is only
// entered after a run-time CPU check): the AVX-512 kernels' register tiles at half the width, for
// x86-64 CPUs without AVX-512. Tiles of 4 rows × 8 doubles (or 16 floats): per step 2 vector
// loads, 4 broadcasts and 8 FMAs. Each Gram entry is summed over the rows in the same order as the
// AVX-512 kernel sums it, so the two give the same bits.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "linalg/kernels.hpp"

namespace levattn::kernels {

namespace {

constexpr int kTileRows = 4;

// Lanes [0, count) of 8 set (count ≤ 0: none), as a maskload/maskstore mask.
__m256i first_lanes(index_t count) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const auto n = static_cast<int>(std::clamp<index_t>(count, 0, 8));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
}

// Widens `rows` float rows into buf (rows_alloc × dpad doubles, zero padded in both directions,
// rows_alloc a multiple of kTileRows); false if any value is NaN or ±Inf.
bool widen(const float* X, index_t rows, index_t d, index_t stride, std::vector<double>& buf) {
  const index_t dpad = padded_dim(d);
  const index_t rows_alloc = (rows + kTileRows - 1) / kTileRows * kTileRows;
  buf.resize(static_cast<size_t>(rows_alloc * dpad));
  __m256 bad = _mm256_setzero_ps();
  for (index_t r = 0; r < rows; ++r) {
    const float* x = X + r * stride;
    double* o = buf.data() + r * dpad;
    for (index_t c = 0; c < dpad; c += 8) {
      const __m256 v = d - c >= 8 ? _mm256_loadu_ps(x + c) : _mm256_maskload_ps(x + c, first_lanes(d - c));
      bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_sub_ps(v, v), _mm256_setzero_ps(), _CMP_NEQ_UQ));  // NaN, ±Inf
      _mm256_storeu_pd(o + c, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
      _mm256_storeu_pd(o + c + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
  }
  for (index_t r = rows; r < rows_alloc; ++r)
    for (index_t c = 0; c < dpad; ++c) buf[static_cast<size_t>(r * dpad + c)] = 0.0;
  return _mm256_movemask_ps(bad) == 0;
}

// The sum of the 4 lanes of x.
double sum_lanes(__m256d x) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(x), _mm256_extractf128_pd(x, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

bool gram_avx2(const float* X, index_t rows, index_t d, index_t stride, double* G) {
  thread_local std::vector<double> buf;
  if (!widen(X, rows, d, stride, buf)) return false;
  const index_t dpad = padded_dim(d);
  const double* xd = buf.data();
  for (index_t a0 = 0; a0 < d; a0 += kTileRows) {
    for (index_t b0 = a0 / 8 * 8; b0 < dpad; b0 += 8) {
      __m256d acc[kTileRows][2];
      for (int i = 0; i < kTileRows; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_pd();
      for (index_t r = 0; r < rows; ++r) {
        const double* x = xd + r * dpad;
        const __m256d b_lo = _mm256_loadu_pd(x + b0);
        const __m256d b_hi = _mm256_loadu_pd(x + b0 + 4);
#pragma GCC unroll 4
        for (int i = 0; i < kTileRows; ++i) {
          const __m256d a = _mm256_broadcast_sd(x + a0 + i);
          acc[i][0] = _mm256_fmadd_pd(a, b_lo, acc[i][0]);
          acc[i][1] = _mm256_fmadd_pd(a, b_hi, acc[i][1]);
        }
      }
      // Rows a0 + i ≥ d of the last tile are padding (zero products): not stored.
      for (int i = 0; i < kTileRows && a0 + i < d; ++i) {
        double* g = G + (a0 + i) * dpad + b0;
        _mm256_storeu_pd(g, _mm256_add_pd(_mm256_loadu_pd(g), acc[i][0]));
        _mm256_storeu_pd(g + 4, _mm256_add_pd(_mm256_loadu_pd(g + 4), acc[i][1]));
      }
    }
  }
  return true;
}

bool trapezoid_sumsq_avx2(const float* X, index_t rows, index_t d, index_t stride, const double* Tt, index_t t_rows,
                          double* out) {
  thread_local std::vector<double> buf;
  if (!widen(X, rows, d, stride, buf)) return false;
  const index_t dpad = padded_dim(d);
  const index_t tpad = padded_dim(t_rows);
  for (index_t r0 = 0; r0 < rows; r0 += kTileRows) {
    const double* xd = buf.data() + r0 * dpad;
    __m256d sq[kTileRows];
    for (int j = 0; j < kTileRows; ++j) sq[j] = _mm256_setzero_pd();
    for (index_t i0 = 0; i0 < tpad; i0 += 8) {
      __m256d acc[kTileRows][2];
      for (int j = 0; j < kTileRows; ++j) acc[j][0] = acc[j][1] = _mm256_setzero_pd();
      // T[i][c] = 0 for c < i, so outputs i0..i0+7 only need inputs c >= i0.
      for (index_t c = i0; c < d; ++c) {
        const __m256d t_lo = _mm256_loadu_pd(Tt + c * tpad + i0);
        const __m256d t_hi = _mm256_loadu_pd(Tt + c * tpad + i0 + 4);
#pragma GCC unroll 4
        for (int j = 0; j < kTileRows; ++j) {
          const __m256d x = _mm256_broadcast_sd(xd + j * dpad + c);
          acc[j][0] = _mm256_fmadd_pd(x, t_lo, acc[j][0]);
          acc[j][1] = _mm256_fmadd_pd(x, t_hi, acc[j][1]);
        }
      }
      for (int j = 0; j < kTileRows; ++j) {
        sq[j] = _mm256_fmadd_pd(acc[j][0], acc[j][0], sq[j]);
        sq[j] = _mm256_fmadd_pd(acc[j][1], acc[j][1], sq[j]);
      }
    }
    for (int j = 0; j < kTileRows && r0 + j < rows; ++j) out[r0 + j] = sum_lanes(sq[j]);
  }
  return true;
}

// Float tiles of 4 rows × 16 outputs, broadcasts from the key rows themselves (no widening); each
// tile's y is widened and squared in double.
void trapezoid_sumsq_float_avx2(const float* X, index_t rows, index_t d, index_t stride, const float* Ttf,
                                index_t t_rows, double* out) {
  const index_t tpad = padded_dim_float(t_rows);
  for (index_t r0 = 0; r0 < rows; r0 += kTileRows) {
    const float* x[kTileRows];  // a short last tile repeats its last row; the copies are dropped
    for (int j = 0; j < kTileRows; ++j) x[j] = X + std::min<index_t>(r0 + j, rows - 1) * stride;
    __m256d sq[kTileRows];
    for (int j = 0; j < kTileRows; ++j) sq[j] = _mm256_setzero_pd();
    for (index_t i0 = 0; i0 < tpad; i0 += 16) {
      __m256 acc[kTileRows][2];
      for (int j = 0; j < kTileRows; ++j) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
      // T[i][c] = 0 for c < i, so outputs i0..i0+15 only need inputs c >= i0.
      for (index_t c = i0; c < d; ++c) {
        const __m256 t_lo = _mm256_loadu_ps(Ttf + c * tpad + i0);
        const __m256 t_hi = _mm256_loadu_ps(Ttf + c * tpad + i0 + 8);
#pragma GCC unroll 4
        for (int j = 0; j < kTileRows; ++j) {
          const __m256 xb = _mm256_broadcast_ss(x[j] + c);
          acc[j][0] = _mm256_fmadd_ps(xb, t_lo, acc[j][0]);
          acc[j][1] = _mm256_fmadd_ps(xb, t_hi, acc[j][1]);
        }
      }
      for (int j = 0; j < kTileRows; ++j)
        for (int h = 0; h < 2; ++h) {
          const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(acc[j][h]));
          const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(acc[j][h], 1));
          sq[j] = _mm256_fmadd_pd(lo, lo, sq[j]);
          sq[j] = _mm256_fmadd_pd(hi, hi, sq[j]);
        }
    }
    for (int j = 0; j < kTileRows && r0 + j < rows; ++j) out[r0 + j] = sum_lanes(sq[j]);
  }
}

// F16C's conversion, 8 values an instruction (exact; it quiets a signalling NaN); the tail as
// half.hpp widens it.
void widen_half_avx2(const Half* x, index_t count, float* out) {
  index_t i = 0;
  for (; i + 8 <= count; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
  for (; i < count; ++i) out[i] = to_float(x[i]);
}

}  // namespace

const KernelSet& avx2_kernels() {
  static const KernelSet set{"avx2", gram_avx2, trapezoid_sumsq_avx2, trapezoid_sumsq_float_avx2, widen_half_avx2};
  return set;
}

}  // namespace levattn::kernels
