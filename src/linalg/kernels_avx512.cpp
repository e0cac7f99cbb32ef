// AVX-512 kernels (this file alone is compiled with -mavx512f -mavx512dq -mavx512vl -mfma and
// is only entered after a run-time CPU check). Register tiles of 8 rows × 16 doubles: per step
// 2 vector loads, 8 broadcasts and 16 FMAs, all in double.
// GCC 12's own AVX-512 headers trip -Wmaybe-uninitialized (their _mm512_undefined_* idiom); clang
// has no such warning.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "linalg/kernels.hpp"

namespace levattn::kernels {

namespace {

constexpr int kTileRows = 8;

// Widens `rows` float rows into buf (rows_alloc × dpad doubles, zero padded in both directions,
// rows_alloc a multiple of kTileRows); false if any value is NaN or ±Inf.
bool widen(const float* X, index_t rows, index_t d, index_t stride, std::vector<double>& buf) {
  const index_t dpad = padded_dim(d);
  const index_t rows_alloc = (rows + kTileRows - 1) / kTileRows * kTileRows;
  buf.resize(static_cast<size_t>(rows_alloc * dpad));
  __mmask16 bad = 0;
  for (index_t r = 0; r < rows; ++r) {
    const float* x = X + r * stride;
    double* o = buf.data() + r * dpad;
    for (index_t c = 0; c < dpad; c += 16) {
      const index_t left = d - c;
      const __mmask16 m = left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1u);
      const __m512 v = _mm512_maskz_loadu_ps(m, x + c);
      bad |= _mm512_fpclass_ps_mask(v, 0x99);  // QNaN | +Inf | -Inf | SNaN
      _mm512_storeu_pd(o + c, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
      _mm512_storeu_pd(o + c + 8, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
    }
  }
  for (index_t r = rows; r < rows_alloc; ++r)
    for (index_t c = 0; c < dpad; ++c) buf[static_cast<size_t>(r * dpad + c)] = 0.0;
  return bad == 0;
}

// Pulls the `rows` rows that follow X (the caller's next block, read once it returns) into L2,
// a share at a time while this block computes, so that its widening does not wait for DRAM.
// Addresses are kept as integers, since the range may lie past the caller's buffer; a prefetch
// never faults, so touching it is harmless.
class NextBlockPrefetch {
 public:
  NextBlockPrefetch(const float* X, index_t rows, index_t stride, index_t shares) {
    const std::uintptr_t bytes = static_cast<std::uintptr_t>(rows * stride) * sizeof(float);
    next_ = reinterpret_cast<std::uintptr_t>(X) + bytes;
    end_ = next_ + bytes;
    step_ = bytes / static_cast<std::uintptr_t>(shares) + 64;
  }
  void share() {
    for (const std::uintptr_t stop = std::min(next_ + step_, end_); next_ < stop; next_ += 64)
      // NOLINTNEXTLINE(performance-no-int-to-ptr): addresses may lie past the array; only prefetched
      _mm_prefetch(reinterpret_cast<const char*>(next_), _MM_HINT_T1);
  }

 private:
  std::uintptr_t next_, end_, step_;
};

bool gram_avx512(const float* X, index_t rows, index_t d, index_t stride, double* G) {
  thread_local std::vector<double> buf;
  if (!widen(X, rows, d, stride, buf)) return false;
  const index_t dpad = padded_dim(d);
  const double* xd = buf.data();
  index_t tiles = 0;  // register tiles on or above the diagonal, one prefetch share each
  for (index_t a0 = 0; a0 < d; a0 += kTileRows) tiles += (dpad - a0 / 16 * 16) / 16;
  NextBlockPrefetch prefetch(X, rows, stride, tiles);
  for (index_t a0 = 0; a0 < d; a0 += kTileRows) {
    for (index_t b0 = a0 / 16 * 16; b0 < dpad; b0 += 16) {
      prefetch.share();
      __m512d acc[kTileRows][2];
#pragma GCC unroll 8
      for (int i = 0; i < kTileRows; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_pd();
      for (index_t r = 0; r < rows; ++r) {
        const double* x = xd + r * dpad;
        const __m512d b_lo = _mm512_loadu_pd(x + b0);
        const __m512d b_hi = _mm512_loadu_pd(x + b0 + 8);
#pragma GCC unroll 8
        for (int i = 0; i < kTileRows; ++i) {
          const __m512d a = _mm512_set1_pd(x[a0 + i]);
          acc[i][0] = _mm512_fmadd_pd(a, b_lo, acc[i][0]);
          acc[i][1] = _mm512_fmadd_pd(a, b_hi, acc[i][1]);
        }
      }
#pragma GCC unroll 8
      for (int i = 0; i < kTileRows; ++i) {
        double* g = G + (a0 + i) * dpad + b0;
        _mm512_storeu_pd(g, _mm512_add_pd(_mm512_loadu_pd(g), acc[i][0]));
        _mm512_storeu_pd(g + 8, _mm512_add_pd(_mm512_loadu_pd(g + 8), acc[i][1]));
      }
    }
  }
  return true;
}

bool trapezoid_sumsq_avx512(const float* X, index_t rows, index_t d, index_t stride, const double* Tt, index_t t_rows,
                            double* out) {
  thread_local std::vector<double> buf;
  if (!widen(X, rows, d, stride, buf)) return false;
  const index_t dpad = padded_dim(d);
  const index_t tpad = padded_dim(t_rows);
  NextBlockPrefetch prefetch(X, rows, stride, (rows + kTileRows - 1) / kTileRows);
  for (index_t r0 = 0; r0 < rows; r0 += kTileRows) {
    prefetch.share();
    const double* xd = buf.data() + r0 * dpad;
    __m512d sq[kTileRows];
#pragma GCC unroll 8
    for (int j = 0; j < kTileRows; ++j) sq[j] = _mm512_setzero_pd();
    for (index_t i0 = 0; i0 < tpad; i0 += 16) {
      __m512d acc[kTileRows][2];
#pragma GCC unroll 8
      for (int j = 0; j < kTileRows; ++j) acc[j][0] = acc[j][1] = _mm512_setzero_pd();
      // T[i][c] = 0 for c < i, so outputs i0..i0+15 only need inputs c >= i0.
      for (index_t c = i0; c < d; ++c) {
        const __m512d t_lo = _mm512_loadu_pd(Tt + c * tpad + i0);
        const __m512d t_hi = _mm512_loadu_pd(Tt + c * tpad + i0 + 8);
#pragma GCC unroll 8
        for (int j = 0; j < kTileRows; ++j) {
          const __m512d x = _mm512_set1_pd(xd[j * dpad + c]);
          acc[j][0] = _mm512_fmadd_pd(x, t_lo, acc[j][0]);
          acc[j][1] = _mm512_fmadd_pd(x, t_hi, acc[j][1]);
        }
      }
#pragma GCC unroll 8
      for (int j = 0; j < kTileRows; ++j) {
        sq[j] = _mm512_fmadd_pd(acc[j][0], acc[j][0], sq[j]);
        sq[j] = _mm512_fmadd_pd(acc[j][1], acc[j][1], sq[j]);
      }
    }
    for (int j = 0; j < kTileRows && r0 + j < rows; ++j) out[r0 + j] = _mm512_reduce_add_pd(sq[j]);
  }
  return true;
}

// Float tiles of 8 rows × 32 outputs: per input column 2 loads of Tᵀ, 8 broadcasts from the key
// rows themselves (no widening) and 16 FMAs of 16 lanes — twice the double kernel's work per
// instruction. Each tile's y is widened and squared in double.
void trapezoid_sumsq_float_avx512(const float* X, index_t rows, index_t d, index_t stride, const float* Ttf,
                                  index_t t_rows, double* out) {
  const index_t tpad = padded_dim_float(t_rows);
  NextBlockPrefetch prefetch(X, rows, stride, (rows + kTileRows - 1) / kTileRows);
  for (index_t r0 = 0; r0 < rows; r0 += kTileRows) {
    prefetch.share();
    const float* x[kTileRows];  // a short last tile repeats its last row; the copies are dropped
    for (int j = 0; j < kTileRows; ++j) x[j] = X + std::min<index_t>(r0 + j, rows - 1) * stride;
    __m512d sq[kTileRows];
#pragma GCC unroll 8
    for (int j = 0; j < kTileRows; ++j) sq[j] = _mm512_setzero_pd();
    for (index_t i0 = 0; i0 < tpad; i0 += 32) {
      __m512 acc[kTileRows][2];
#pragma GCC unroll 8
      for (int j = 0; j < kTileRows; ++j) acc[j][0] = acc[j][1] = _mm512_setzero_ps();
      // T[i][c] = 0 for c < i, so outputs i0..i0+31 only need inputs c >= i0.
      for (index_t c = i0; c < d; ++c) {
        const __m512 t_lo = _mm512_loadu_ps(Ttf + c * tpad + i0);
        const __m512 t_hi = _mm512_loadu_ps(Ttf + c * tpad + i0 + 16);
#pragma GCC unroll 8
        for (int j = 0; j < kTileRows; ++j) {
          const __m512 xb = _mm512_set1_ps(x[j][c]);
          acc[j][0] = _mm512_fmadd_ps(xb, t_lo, acc[j][0]);
          acc[j][1] = _mm512_fmadd_ps(xb, t_hi, acc[j][1]);
        }
      }
#pragma GCC unroll 8
      for (int j = 0; j < kTileRows; ++j)
        for (int h = 0; h < 2; ++h) {
          const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(acc[j][h]));
          const __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(acc[j][h], 1));
          sq[j] = _mm512_fmadd_pd(lo, lo, sq[j]);
          sq[j] = _mm512_fmadd_pd(hi, hi, sq[j]);
        }
    }
    for (int j = 0; j < kTileRows && r0 + j < rows; ++j) out[r0 + j] = _mm512_reduce_add_pd(sq[j]);
  }
}

// F16C's conversion, 16 values an instruction (exact; it quiets a signalling NaN).
void widen_half_avx512(const Half* x, index_t count, float* out) {
  index_t i = 0;
  for (; i + 16 <= count; i += 16)
    _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i))));
  if (i < count) {  // the tail through a zero-padded copy (masked 16-bit loads need AVX-512BW)
    Half tail[16] = {};
    std::copy(x + i, x + count, tail);
    const auto m = static_cast<__mmask16>((1u << (count - i)) - 1u);
    _mm512_mask_storeu_ps(out + i, m, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tail))));
  }
}

}  // namespace

const KernelSet& avx512_kernels() {
  static const KernelSet set{"avx512", gram_avx512, trapezoid_sumsq_avx512, trapezoid_sumsq_float_avx512,
                             widen_half_avx512};
  return set;
}

}  // namespace levattn::kernels
