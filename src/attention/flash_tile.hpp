// The inner loops of exact attention, written once in plain C++ and compiled three times: for the
// baseline instruction set (flash_generic.cpp), for AVX2 with FMA and F16C (flash_avx2.cpp) and
// for AVX-512 (flash_avx512.cpp, 512-bit vectors); the two SIMD builds contract to FMAs and give
// the register tiles and decode loops explicit intrinsics of their width. Include only from those
// files; everything here sits in a namespace named by the including file so the builds never mix.
//
// Layout: a tile holds up to kLanes queries *in lanes*. Queries are packed transposed and scaled,
// Qp[c·kLanes + v] = c_v·q_v[c]; a key block's scores are St[j·kLanes + v] = <q_v, k_j>; the
// output is kept transposed, Ot[c·kLanes + v]. The online-softmax statistics (running maximum,
// weight sum, rescaling) are then plain element-wise operations over lanes, which vectorise
// without any horizontal work.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "attention/exp_nonpositive.hpp"
#include "attention/flash_kernel.hpp"
#include "linalg/widen_rows.hpp"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace levattn::detail::FLASH_NAMESPACE {

using detail::kKeyBlock;
using detail::kLanes;

// Widening of 16 elements to float in registers, exact (vcvtph2ps for Half, a 16-bit shift for
// BFloat16): decode's loads. Key and value blocks of a tile are widened by linalg's widen_rows.
#if defined(__AVX512F__)
inline __m512 load16_as_float(const Half* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512 load16_as_float(const BFloat16* p) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}
inline __m512 load16_as_float(const float* p) { return _mm512_loadu_ps(p); }
#elif defined(__AVX2__)
// The same for 8 elements (vcvtph2ps from F16C; a shift for BFloat16).
inline __m256 load8_as_float(const Half* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 load8_as_float(const BFloat16* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}
inline __m256 load8_as_float(const float* p) { return _mm256_loadu_ps(p); }

// The sum of the 8 lanes of x.
inline float sum_lanes(__m256 x) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
#endif

// x[0..n) rounded to the nearest bf16 (ties to even), kept as floats: the weights of bf16
// arithmetic. Finite non-negative inputs (weights); a NaN stays a NaN or becomes ±inf, both of
// which the caller's finiteness check catches.
inline void round_to_bf16(float* x, index_t n) {
  for (index_t i = 0; i < n; ++i) {
    const std::uint32_t bits = std::bit_cast<std::uint32_t>(x[i]);
    x[i] = std::bit_cast<float>((bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u);
  }
}

// St (cols × kLanes) = K[0..cols) · Qp, i.e. St[j][v] = Σ_c K[j][c]·Qp[c][v]. Register tiles of
// kTileKeys keys × kLanes lanes; K rows are read in place (row stride ks). AVX2 has 16 registers
// of 8 lanes: 3 keys × 4 vectors of accumulators.
#if defined(__AVX2__) && !defined(__AVX512F__)
constexpr int kTileKeys = 3;
#else
constexpr int kTileKeys = 12;
#endif

template <int J>
inline void scores_tile(const float* K, index_t ks, index_t d, const float* Qp, float* St) {
  float acc[J][kLanes] = {};
  for (index_t c = 0; c < d; ++c) {
    const float* qp = Qp + c * kLanes;
#pragma GCC unroll 12
    for (int jj = 0; jj < J; ++jj) {
      const float kv = K[jj * ks + c];
#pragma GCC unroll 32
      for (int v = 0; v < kLanes; ++v) acc[jj][v] += kv * qp[v];
    }
  }
  for (int jj = 0; jj < J; ++jj)
    for (int v = 0; v < kLanes; ++v) St[jj * kLanes + v] = acc[jj][v];
}

#if defined(__AVX512F__)
// The same register tile with explicit AVX-512 (2 vectors of 16 lanes × J keys accumulators).
template <int J>
inline void scores_tile_avx512(const float* K, index_t ks, index_t d, const float* Qp, float* St) {
  static_assert(kLanes == 32);
  __m512 a0[J], a1[J];
  for (int jj = 0; jj < J; ++jj) a0[jj] = a1[jj] = _mm512_setzero_ps();
  for (index_t c = 0; c < d; ++c) {
    const __m512 q0 = _mm512_loadu_ps(Qp + c * kLanes), q1 = _mm512_loadu_ps(Qp + c * kLanes + 16);
#pragma GCC unroll 12
    for (int jj = 0; jj < J; ++jj) {
      const __m512 kv = _mm512_set1_ps(K[jj * ks + c]);
      a0[jj] = _mm512_fmadd_ps(kv, q0, a0[jj]);
      a1[jj] = _mm512_fmadd_ps(kv, q1, a1[jj]);
    }
  }
  for (int jj = 0; jj < J; ++jj) {
    _mm512_storeu_ps(St + jj * kLanes, a0[jj]);
    _mm512_storeu_ps(St + jj * kLanes + 16, a1[jj]);
  }
}
#define LEVATTN_SCORES_TILE scores_tile_avx512
#elif defined(__AVX2__)
// The register tile with explicit AVX2 (4 vectors of 8 lanes × J keys accumulators).
template <int J>
inline void scores_tile_avx2(const float* K, index_t ks, index_t d, const float* Qp, float* St) {
  static_assert(kLanes == 32);
  __m256 acc[J][4];
  for (int jj = 0; jj < J; ++jj)
    for (int r = 0; r < 4; ++r) acc[jj][r] = _mm256_setzero_ps();
  for (index_t c = 0; c < d; ++c) {
    const float* qp = Qp + c * kLanes;
#pragma GCC unroll 3
    for (int jj = 0; jj < J; ++jj) {
      const __m256 kv = _mm256_broadcast_ss(K + jj * ks + c);
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) acc[jj][r] = _mm256_fmadd_ps(kv, _mm256_loadu_ps(qp + index_t{8} * r), acc[jj][r]);
    }
  }
  for (int jj = 0; jj < J; ++jj)
    for (int r = 0; r < 4; ++r) _mm256_storeu_ps(St + jj * kLanes + index_t{8} * r, acc[jj][r]);
}
#define LEVATTN_SCORES_TILE scores_tile_avx2
#else
#define LEVATTN_SCORES_TILE scores_tile
#endif

inline void block_scores(const float* K, index_t ks, index_t d, index_t cols, const float* Qp, float* St) {
  index_t j = 0;
  for (; j + kTileKeys <= cols; j += kTileKeys) LEVATTN_SCORES_TILE<kTileKeys>(K + j * ks, ks, d, Qp, St + j * kLanes);
  for (; j + 4 <= cols; j += 4) LEVATTN_SCORES_TILE<4>(K + j * ks, ks, d, Qp, St + j * kLanes);
  for (; j < cols; ++j) LEVATTN_SCORES_TILE<1>(K + j * ks, ks, d, Qp, St + j * kLanes);
}

// Ot[c][v] += Σ_j V[j][c]·St[j][v] for c < dv, in register tiles of kTileCols output columns.
#if defined(__AVX2__) && !defined(__AVX512F__)
constexpr int kTileCols = 3;
#else
constexpr int kTileCols = 12;
#endif

template <int C>
inline void output_tile(const float* V, index_t vs, index_t cols, const float* St, float* Ot) {
  float acc[C][kLanes];
  for (int cc = 0; cc < C; ++cc)
    for (int v = 0; v < kLanes; ++v) acc[cc][v] = Ot[cc * kLanes + v];
  for (index_t j = 0; j < cols; ++j) {
    const float* w = St + j * kLanes;
#pragma GCC unroll 12
    for (int cc = 0; cc < C; ++cc) {
      const float vv = V[j * vs + cc];
#pragma GCC unroll 32
      for (int v = 0; v < kLanes; ++v) acc[cc][v] += vv * w[v];
    }
  }
  for (int cc = 0; cc < C; ++cc)
    for (int v = 0; v < kLanes; ++v) Ot[cc * kLanes + v] = acc[cc][v];
}

#if defined(__AVX512F__)
template <int C>
inline void output_tile_avx512(const float* V, index_t vs, index_t cols, const float* St, float* Ot) {
  __m512 a0[C], a1[C];
  for (int cc = 0; cc < C; ++cc) {
    a0[cc] = _mm512_loadu_ps(Ot + cc * kLanes);
    a1[cc] = _mm512_loadu_ps(Ot + cc * kLanes + 16);
  }
  for (index_t j = 0; j < cols; ++j) {
    const __m512 w0 = _mm512_loadu_ps(St + j * kLanes), w1 = _mm512_loadu_ps(St + j * kLanes + 16);
#pragma GCC unroll 12
    for (int cc = 0; cc < C; ++cc) {
      const __m512 vv = _mm512_set1_ps(V[j * vs + cc]);
      a0[cc] = _mm512_fmadd_ps(vv, w0, a0[cc]);
      a1[cc] = _mm512_fmadd_ps(vv, w1, a1[cc]);
    }
  }
  for (int cc = 0; cc < C; ++cc) {
    _mm512_storeu_ps(Ot + cc * kLanes, a0[cc]);
    _mm512_storeu_ps(Ot + cc * kLanes + 16, a1[cc]);
  }
}
#define LEVATTN_OUTPUT_TILE output_tile_avx512
#elif defined(__AVX2__)
template <int C>
inline void output_tile_avx2(const float* V, index_t vs, index_t cols, const float* St, float* Ot) {
  __m256 acc[C][4];
  for (int cc = 0; cc < C; ++cc)
    for (int r = 0; r < 4; ++r) acc[cc][r] = _mm256_loadu_ps(Ot + cc * kLanes + index_t{8} * r);
  for (index_t j = 0; j < cols; ++j) {
    const float* w = St + j * kLanes;
#pragma GCC unroll 3
    for (int cc = 0; cc < C; ++cc) {
      const __m256 vv = _mm256_broadcast_ss(V + j * vs + cc);
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) acc[cc][r] = _mm256_fmadd_ps(vv, _mm256_loadu_ps(w + index_t{8} * r), acc[cc][r]);
    }
  }
  for (int cc = 0; cc < C; ++cc)
    for (int r = 0; r < 4; ++r) _mm256_storeu_ps(Ot + cc * kLanes + index_t{8} * r, acc[cc][r]);
}
#define LEVATTN_OUTPUT_TILE output_tile_avx2
#else
#define LEVATTN_OUTPUT_TILE output_tile
#endif

inline void block_output(const float* V, index_t vs, index_t dv, index_t cols, const float* St, float* Ot) {
  index_t c = 0;
  for (; c + kTileCols <= dv; c += kTileCols) LEVATTN_OUTPUT_TILE<kTileCols>(V + c, vs, cols, St, Ot + c * kLanes);
  for (; c + 4 <= dv; c += 4) LEVATTN_OUTPUT_TILE<4>(V + c, vs, cols, St, Ot + c * kLanes);
  for (; c < dv; ++c) LEVATTN_OUTPUT_TILE<1>(V + c, vs, cols, St, Ot + c * kLanes);
}

// Applies the mask to a block of scores: lane v (query q_first + v) keeps key kb + j iff
// v + q_first + lo_offset ≤ pos ≤ v + q_first + hi_offset; other scores are set to `masked`.
inline void mask_block(float* St, index_t cols, index_t kb, index_t q_first, const KeyMask& mask, float masked) {
  for (index_t j = 0; j < cols; ++j) {
    const index_t pos = mask.position(kb + j) - q_first;
    const index_t first = mask.upper ? std::clamp<index_t>(pos - mask.hi_offset, 0, kLanes) : 0;
    const index_t last = mask.lower ? std::clamp<index_t>(pos - mask.lo_offset + 1, 0, kLanes) : kLanes;
    float* s = St + j * kLanes;
    for (index_t v = 0; v < first; ++v) s[v] = masked;
    for (index_t v = std::max(first, last); v < kLanes; ++v) s[v] = masked;
  }
}

// One block of the online softmax: scores St → weights exp(St − m_new), the running maximum m and
// sum l (per lane) updated, Ot rescaled where the maximum grew.
inline void softmax_update(float* St, index_t cols, index_t dv, float* m, double* l, float* Ot) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  float m_new[kLanes], shift[kLanes], alpha[kLanes], sum[kLanes];
  for (int v = 0; v < kLanes; ++v) m_new[v] = m[v];
  for (index_t j = 0; j < cols; ++j)
    for (int v = 0; v < kLanes; ++v) m_new[v] = St[j * kLanes + v] > m_new[v] ? St[j * kLanes + v] : m_new[v];
  for (int v = 0; v < kLanes; ++v) {
    shift[v] = m_new[v] == kNegInf ? 0.0f : m_new[v];  // lane with no key yet: weights stay 0
    alpha[v] = exp_nonpositive(m[v] - shift[v]);       // m = −∞ gives 0
    sum[v] = 0.0f;
  }
  for (index_t j = 0; j < cols; ++j)
    for (int v = 0; v < kLanes; ++v) {
      const float w = exp_nonpositive(St[j * kLanes + v] - shift[v]);
      St[j * kLanes + v] = w;
      sum[v] += w;
    }
  for (int v = 0; v < kLanes; ++v) {
    l[v] = l[v] * alpha[v] + sum[v];
    m[v] = m_new[v];
  }
  for (index_t c = 0; c < dv; ++c)
    for (int v = 0; v < kLanes; ++v) Ot[c * kLanes + v] *= alpha[v];
}

// The same for |x|^p: m is the running max |score|, weights (|s|/m)^p; p = 2 is done by squaring.
inline void power_update(float* St, index_t cols, index_t dv, double p, float* m, double* l, float* Ot) {
  float m_new[kLanes], inv[kLanes], alpha[kLanes], sum[kLanes];
  for (int v = 0; v < kLanes; ++v) m_new[v] = m[v];
  for (index_t j = 0; j < cols; ++j)
    for (int v = 0; v < kLanes; ++v) {
      const float a = std::fabs(St[j * kLanes + v]);
      m_new[v] = a > m_new[v] ? a : m_new[v];
    }
  for (int v = 0; v < kLanes; ++v) {
    inv[v] = m_new[v] > 0.0f ? 1.0f / m_new[v] : 0.0f;  // all products 0 so far: weights 0
    sum[v] = 0.0f;
  }
  if (p == 2.0) {
    for (index_t j = 0; j < cols; ++j)
      for (int v = 0; v < kLanes; ++v) {
        const float y = St[j * kLanes + v] * inv[v];
        St[j * kLanes + v] = y * y;
        sum[v] += y * y;
      }
  } else {
    const float pf = static_cast<float>(p);
    for (index_t j = 0; j < cols; ++j)
      for (int v = 0; v < kLanes; ++v) {
        const float y = std::pow(std::fabs(St[j * kLanes + v]) * inv[v], pf);
        St[j * kLanes + v] = y;
        sum[v] += y;
      }
  }
  for (int v = 0; v < kLanes; ++v) {
    alpha[v] = m_new[v] > 0.0f ? static_cast<float>(std::pow(static_cast<double>(m[v] * inv[v]), p)) : 1.0f;
    l[v] = l[v] * alpha[v] + sum[v];
    m[v] = m_new[v];
  }
  for (index_t c = 0; c < dv; ++c)
    for (int v = 0; v < kLanes; ++v) Ot[c * kLanes + v] *= alpha[v];
}

// A whole tile (see flash_kernel.hpp for the contract) over keys and values of element type T;
// 16-bit blocks are widened into the tile's float scratch (Kf, Vf) first. bf16 arithmetic is
// emulated: keys and values rounded to bf16 there (the queries arrive rounded), float products
// (exact for bf16 operands), weights rounded to bf16.
template <class T>
inline void run_tile_typed(const TileJob& job, TileState& st) {
  const index_t d = job.d, dv = job.dv;
  const bool round_inputs = job.bf16_products && !std::is_same_v<T, BFloat16>;
  const bool direct = std::is_same_v<T, float> && !round_inputs;  // read float rows in place
  const T* keys = static_cast<const T*>(job.keys);
  const T* values = static_cast<const T*>(job.values);
  const bool softmax = job.kind == ScoreKind::softmax;
  const float masked = softmax ? -std::numeric_limits<float>::infinity() : 0.0f;
  for (index_t kb = job.k_begin; kb < job.k_end; kb += kKeyBlock) {
    const index_t cols = std::min(kKeyBlock, job.k_end - kb);
    const T* K = keys + kb * job.key_stride;
    const T* V = values + kb * job.value_stride;
    if (direct) {
      block_scores(reinterpret_cast<const float*>(K), job.key_stride, d, cols, st.Qp, st.St);
    } else {
      widen_rows(MatrixView<const T>(K, cols, d, job.key_stride), 0, cols, st.Kf);
      if (round_inputs) round_to_bf16(st.Kf, cols * d);
      block_scores(st.Kf, d, d, cols, st.Qp, st.St);
    }
    if (job.score_scale != 1.0f)
      for (index_t i = 0; i < cols * kLanes; ++i) st.St[i] *= job.score_scale;
    if (job.mask.any()) mask_block(st.St, cols, kb, job.q_first, job.mask, masked);
    if (softmax)
      softmax_update(st.St, cols, dv, st.m, st.l, st.Ot);
    else
      power_update(st.St, cols, dv, job.p, st.m, st.l, st.Ot);
    if (job.bf16_products) round_to_bf16(st.St, cols * kLanes);
    if (direct) {
      block_output(reinterpret_cast<const float*>(V), job.value_stride, dv, cols, st.St, st.Ot);
    } else {
      widen_rows(MatrixView<const T>(V, cols, dv, job.value_stride), 0, cols, st.Vf);
      if (round_inputs) round_to_bf16(st.Vf, cols * dv);
      block_output(st.Vf, dv, dv, cols, st.St, st.Ot);
    }
  }
}

inline void run_tile(const TileJob& job, TileState& st) {
  switch (job.type) {
    case ElementType::f32:
      return run_tile_typed<float>(job, st);
    case ElementType::f16:
      return run_tile_typed<Half>(job, st);
    case ElementType::bf16:
      return run_tile_typed<BFloat16>(job, st);
  }
}

// One query (decode): s_j = c·<q, k_j> one key at a time, then the same online update.
template <class T>
inline float dot(const T* a, const float* b, index_t n) {
  index_t c = 0;
  float s = 0.0f;
#if defined(__AVX512F__)
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  for (; c + 32 <= n; c += 32) {
    a0 = _mm512_fmadd_ps(load16_as_float(a + c), _mm512_loadu_ps(b + c), a0);
    a1 = _mm512_fmadd_ps(load16_as_float(a + c + 16), _mm512_loadu_ps(b + c + 16), a1);
  }
  for (; c + 16 <= n; c += 16) a0 = _mm512_fmadd_ps(load16_as_float(a + c), _mm512_loadu_ps(b + c), a0);
  s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
#elif defined(__AVX2__)
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  for (; c + 16 <= n; c += 16) {
    a0 = _mm256_fmadd_ps(load8_as_float(a + c), _mm256_loadu_ps(b + c), a0);
    a1 = _mm256_fmadd_ps(load8_as_float(a + c + 8), _mm256_loadu_ps(b + c + 8), a1);
  }
  for (; c + 8 <= n; c += 8) a0 = _mm256_fmadd_ps(load8_as_float(a + c), _mm256_loadu_ps(b + c), a0);
  s = sum_lanes(_mm256_add_ps(a0, a1));
#else
  float acc[16] = {};
  for (; c + 16 <= n; c += 16)
    for (int v = 0; v < 16; ++v) acc[v] += to_float(a[c + v]) * b[c + v];
  for (int v = 0; v < 16; ++v) s += acc[v];
#endif
  for (; c < n; ++c) s += to_float(a[c]) * b[c];
  return s;
}

#if defined(__AVX512F__) || defined(__AVX2__)
// Decode asks for the rows kPrefetchRows ahead of those it reads (the hardware prefetcher alone
// left a single core's 16-bit decode at 0.7× the float time where 0.5× is the bytes' ratio; with
// this, 0.53–0.56×: BENCHMARKS.md). Addresses are kept as integers, since they may lie past the
// caller's buffer; a prefetch never faults.
constexpr index_t kPrefetchRows = 48;
template <class T>
inline void prefetch_row(const T* base, index_t offset, index_t bytes) {
  const std::uintptr_t start = reinterpret_cast<std::uintptr_t>(base) + std::uintptr_t(offset) * sizeof(T);
  for (std::uintptr_t a = start; a < start + std::uintptr_t(bytes); a += 64)
    // NOLINTNEXTLINE(performance-no-int-to-ptr): addresses may lie past the array; only prefetched
    _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_T0);
}
#endif

#if defined(__AVX512F__)
// Lane u of the result is the sum of the 16 lanes of x[u] (a transposing reduction: 45 shuffles and
// adds for 16 sums).
inline __m512 sum_lanes16(const __m512* x) {
  __m512 t[4];
  for (int g = 0; g < 4; ++g) {  // t[g], 128-bit lane L: the lane-L partial sums of x[4g..4g+3]
    __m512 pair[2];
    for (int h = 0; h < 2; ++h) {
      const __m512 a = x[4 * g + 2 * h], b = x[4 * g + 2 * h + 1];
      pair[h] = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    }
    t[g] = _mm512_add_ps(_mm512_shuffle_ps(pair[0], pair[1], 0x44), _mm512_shuffle_ps(pair[0], pair[1], 0xEE));
  }
  const __m512 w01 = _mm512_add_ps(_mm512_shuffle_f32x4(t[0], t[1], 0x88), _mm512_shuffle_f32x4(t[0], t[1], 0xDD));
  const __m512 w23 = _mm512_add_ps(_mm512_shuffle_f32x4(t[2], t[3], 0x88), _mm512_shuffle_f32x4(t[2], t[3], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(w01, w23, 0x88), _mm512_shuffle_f32x4(w01, w23, 0xDD));
}
#elif defined(__AVX2__)
// Lane u of the result is the sum of the 8 lanes of x[u].
inline __m256 sum_lanes8(const __m256* x) {
  // Per 128-bit half: the half's partial sums of x[0..3] (resp. x[4..7]), one lane each.
  const __m256 h0123 = _mm256_hadd_ps(_mm256_hadd_ps(x[0], x[1]), _mm256_hadd_ps(x[2], x[3]));
  const __m256 h4567 = _mm256_hadd_ps(_mm256_hadd_ps(x[4], x[5]), _mm256_hadd_ps(x[6], x[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(h0123, h4567, 0x20), _mm256_permute2f128_ps(h0123, h4567, 0x31));
}
#endif

// s[j] = <k_j, q> for the `cols` rows of K (row stride ks, d elements each).
template <class T>
inline void block_dots(const T* K, index_t ks, index_t d, index_t cols, const float* q, float* s) {
  index_t j = 0;
#if defined(__AVX512F__)
  for (; j + 16 <= cols; j += 16) {  // 16 keys at once, reduced together
    __m512 acc[16];
    for (int u = 0; u < 16; ++u) acc[u] = _mm512_setzero_ps();
    index_t c = 0;
    for (int u = 0; u < 16; ++u) prefetch_row(K, (j + u + kPrefetchRows) * ks, d * index_t(sizeof(T)));
    for (; c + 16 <= d; c += 16) {
      const __m512 qv = _mm512_loadu_ps(q + c);
#pragma GCC unroll 16
      for (int u = 0; u < 16; ++u) acc[u] = _mm512_fmadd_ps(load16_as_float(K + (j + u) * ks + c), qv, acc[u]);
    }
    _mm512_storeu_ps(s + j, sum_lanes16(acc));
    for (; c < d; ++c)
      for (int u = 0; u < 16; ++u) s[j + u] += to_float(K[(j + u) * ks + c]) * q[c];
  }
#elif defined(__AVX2__)
  for (; j + 8 <= cols; j += 8) {  // 8 keys at once, reduced together
    __m256 acc[8];
    for (int u = 0; u < 8; ++u) acc[u] = _mm256_setzero_ps();
    index_t c = 0;
    for (int u = 0; u < 8; ++u) prefetch_row(K, (j + u + kPrefetchRows) * ks, d * index_t(sizeof(T)));
    for (; c + 8 <= d; c += 8) {
      const __m256 qv = _mm256_loadu_ps(q + c);
#pragma GCC unroll 8
      for (int u = 0; u < 8; ++u) acc[u] = _mm256_fmadd_ps(load8_as_float(K + (j + u) * ks + c), qv, acc[u]);
    }
    _mm256_storeu_ps(s + j, sum_lanes8(acc));
    for (; c < d; ++c)
      for (int u = 0; u < 8; ++u) s[j + u] += to_float(K[(j + u) * ks + c]) * q[c];
  }
#endif
  for (; j < cols; ++j) s[j] = dot(K + j * ks, q, d);
}

// o[0..dv) += Σ_j w[j]·v_j for the `cols` rows of V (row stride vs).
template <class T>
inline void block_weighted_sum(const float* w, const T* V, index_t vs, index_t dv, index_t cols, float* o) {
  index_t c = 0;
#if defined(__AVX512F__)
  for (; c + 128 <= dv; c += 128) {  // 128 outputs held in 8 registers over the whole block
    __m512 acc[8];
    for (int u = 0; u < 8; ++u) acc[u] = _mm512_loadu_ps(o + c + index_t{16} * u);
    for (index_t j = 0; j < cols; ++j) {
      prefetch_row(V, (j + kPrefetchRows) * vs + c, 128 * index_t(sizeof(T)));
      const __m512 wj = _mm512_set1_ps(w[j]);
#pragma GCC unroll 8
      for (int u = 0; u < 8; ++u)
        acc[u] = _mm512_fmadd_ps(wj, load16_as_float(V + j * vs + c + index_t{16} * u), acc[u]);
    }
    for (int u = 0; u < 8; ++u) _mm512_storeu_ps(o + c + index_t{16} * u, acc[u]);
  }
  for (; c + 16 <= dv; c += 16) {
    __m512 acc = _mm512_loadu_ps(o + c);
    for (index_t j = 0; j < cols; ++j)
      acc = _mm512_fmadd_ps(_mm512_set1_ps(w[j]), load16_as_float(V + j * vs + c), acc);
    _mm512_storeu_ps(o + c, acc);
  }
#elif defined(__AVX2__)
  for (; c + 64 <= dv; c += 64) {  // 64 outputs held in 8 registers over the whole block
    __m256 acc[8];
    for (int u = 0; u < 8; ++u) acc[u] = _mm256_loadu_ps(o + c + index_t{8} * u);
    for (index_t j = 0; j < cols; ++j) {
      prefetch_row(V, (j + kPrefetchRows) * vs + c, 64 * index_t(sizeof(T)));
      const __m256 wj = _mm256_broadcast_ss(w + j);
#pragma GCC unroll 8
      for (int u = 0; u < 8; ++u) acc[u] = _mm256_fmadd_ps(wj, load8_as_float(V + j * vs + c + index_t{8} * u), acc[u]);
    }
    for (int u = 0; u < 8; ++u) _mm256_storeu_ps(o + c + index_t{8} * u, acc[u]);
  }
  for (; c + 8 <= dv; c += 8) {
    __m256 acc = _mm256_loadu_ps(o + c);
    for (index_t j = 0; j < cols; ++j)
      acc = _mm256_fmadd_ps(_mm256_broadcast_ss(w + j), load8_as_float(V + j * vs + c), acc);
    _mm256_storeu_ps(o + c, acc);
  }
#endif
  for (index_t j = 0; j < cols; ++j)
    for (index_t cc = c; cc < dv; ++cc) o[cc] += w[j] * to_float(V[j * vs + cc]);
}

template <class T>
inline void run_single_typed(const SingleJob& job, SingleState& st) {
  const index_t d = job.d, dv = job.dv;
  const T* keys = static_cast<const T*>(job.keys);
  const T* values = static_cast<const T*>(job.values);
  const bool softmax = job.kind == ScoreKind::softmax;
  for (index_t kb = job.k_begin; kb < job.k_end; kb += kKeyBlock) {
    const index_t cols = std::min(kKeyBlock, job.k_end - kb);
    float* s = st.s;
    block_dots(keys + kb * job.key_stride, job.key_stride, d, cols, st.q, s);
    if (job.mask.any())
      for (index_t j = 0; j < cols; ++j) {
        const index_t pos = job.mask.position(kb + j);
        if ((job.mask.upper && pos > job.q_index + job.mask.hi_offset) ||
            (job.mask.lower && pos < job.q_index + job.mask.lo_offset))
          s[j] = softmax ? -std::numeric_limits<float>::infinity() : 0.0f;
      }
    float bm = softmax ? -std::numeric_limits<float>::infinity() : 0.0f;
    for (index_t j = 0; j < cols; ++j) bm = std::max(bm, softmax ? s[j] : std::fabs(s[j]));
    const float m_new = std::max(st.m, bm);
    float sum = 0.0f, alpha = 1.0f;
    if (softmax) {
      const float shift = m_new == -std::numeric_limits<float>::infinity() ? 0.0f : m_new;
      alpha = exp_nonpositive(st.m - shift);
      for (index_t j = 0; j < cols; ++j) {
        s[j] = exp_nonpositive(s[j] - shift);
        sum += s[j];
      }
    } else {
      const float inv = m_new > 0.0f ? 1.0f / m_new : 0.0f;
      alpha = m_new > 0.0f ? static_cast<float>(std::pow(static_cast<double>(st.m * inv), job.p)) : 1.0f;
      for (index_t j = 0; j < cols; ++j) {
        s[j] = job.p == 2.0 ? (s[j] * inv) * (s[j] * inv) : std::pow(std::fabs(s[j]) * inv, static_cast<float>(job.p));
        sum += s[j];
      }
    }
    // A NaN score must reach the sum even if max() skipped it.
    st.l = st.l * alpha + sum;
    st.m = m_new;
    for (index_t c = 0; c < dv; ++c) st.o[c] *= alpha;
    block_weighted_sum(s, values + kb * job.value_stride, job.value_stride, dv, cols, st.o);
  }
}

inline void run_single(const SingleJob& job, SingleState& st) {
  switch (job.type) {
    case ElementType::f32:
      return run_single_typed<float>(job, st);
    case ElementType::f16:
      return run_single_typed<Half>(job, st);
    case ElementType::bf16:
      return run_single_typed<BFloat16>(job, st);
  }
}

}  // namespace levattn::detail::FLASH_NAMESPACE
