// The bf16 tile for CPUs with AVX512_BF16 (this file alone gets -mavx512bf16; it runs only after
// the run-time CPU check): Q·Kᵀ and P·V by vdpbf16ps, which multiplies pairs of bf16 exactly and
// adds both products to a float accumulator. Everything else (the online softmax, masks, decode,
// float arithmetic) is flash_tile.hpp compiled for this instruction set.
//
// Layout: the pair dimension of Q·Kᵀ is d: the queries are packed as Qb[c/2][v] = (q_v[c],
// q_v[c+1]) and a key's pair (k[c], k[c+1]) is one 32-bit broadcast straight from a bf16 row. The
// pair dimension of P·V is the key: the weights are packed as Pb[j/2][v] = (w_v[j], w_v[j+1]) and
// the values as Vb[j/2][c] = (v_j[c], v_{j+1}[c]), one block at a time.
#define FLASH_NAMESPACE avx512_bf16_build
#include <cstring>

#include "attention/flash_tile.hpp"

namespace levattn::detail {

namespace avx512_bf16_build {
namespace {

// The bf16 nearest to each float of x (ties to even), in the low 16 bits of each 32-bit lane.
inline __m512i bf16_bits(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd));
  return _mm512_srli_epi32(rounded, 16);
}

// Pairs (lo[i], hi[i]) of bf16 from two vectors of floats.
inline __m512i pair_bits(__m512 lo, __m512 hi) {
  return _mm512_or_si512(bf16_bits(lo), _mm512_slli_epi32(bf16_bits(hi), 16));
}

// Pairs of 16-bit or float elements a[i], b[i] (b null: zeros) for i < n, n ≤ 16.
template <class T>
inline __m512i load_pairs(const T* a, const T* b, index_t n) {
  if constexpr (std::is_same_v<T, BFloat16>) {
    if (n == 16) {
      const __m512i lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)));
      if (b == nullptr) return lo;
      const __m512i hi = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b)));
      return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
    }
  } else {
    if (n == 16) return pair_bits(load16_as_float(a), b == nullptr ? _mm512_setzero_ps() : load16_as_float(b));
  }
  alignas(64) std::uint32_t tmp[16] = {};
  for (index_t i = 0; i < n; ++i) {
    const std::uint32_t lo = float_to_bf16(to_float(a[i]));
    const std::uint32_t hi = b == nullptr ? 0u : float_to_bf16(to_float(b[i]));
    tmp[i] = lo | (hi << 16);
  }
  return _mm512_load_si512(tmp);
}

// Qb[cp·kLanes + v] = (Qp[2cp][v], Qp[2cp+1][v]) as bf16, with a zero partner for odd d.
inline void pack_queries(const float* Qp, index_t d, std::uint32_t* Qb) {
  for (index_t cp = 0; cp < (d + 1) / 2; ++cp)
    for (index_t h = 0; h < kLanes; h += 16) {
      const __m512 lo = _mm512_loadu_ps(Qp + 2 * cp * kLanes + h);
      const __m512 hi = 2 * cp + 1 < d ? _mm512_loadu_ps(Qp + (2 * cp + 1) * kLanes + h) : _mm512_setzero_ps();
      _mm512_storeu_si512(Qb + cp * kLanes + h, pair_bits(lo, hi));
    }
}

// A key block as bf16 rows of dp = (d+1)/2 pairs each (Kb[j·dp + cp]), from any element type.
template <class T>
inline void pack_keys(const T* K, index_t ks, index_t d, index_t cols, std::uint32_t* Kb) {
  const index_t dp = (d + 1) / 2;
  for (index_t j = 0; j < cols; ++j) {
    const T* k = K + j * ks;
    std::uint32_t* out = Kb + j * dp;
    for (index_t cp = 0; cp < dp; ++cp) {
      const std::uint32_t lo = float_to_bf16(to_float(k[2 * cp]));
      const std::uint32_t hi = 2 * cp + 1 < d ? float_to_bf16(to_float(k[2 * cp + 1])) : 0u;
      out[cp] = lo | (hi << 16);
    }
  }
}

// The pair of key j at pair index cp: one 32-bit word of a bf16 row (the last of an odd row is
// read alone so that nothing past the row is touched).
inline std::uint32_t key_pair(const std::uint16_t* k, index_t cp, index_t d) {
  if (2 * cp + 1 < d) {
    std::uint32_t w;
    std::memcpy(&w, k + 2 * cp, sizeof w);
    return w;
  }
  return k[2 * cp];
}

// St[j][v] = Σ_c k_j[c]·q_v[c] for J keys, pairs of c per instruction. K rows are bf16 (pairs at
// k + 2cp, row stride ks in 16-bit elements, d elements) unless Kb packs them (dp pairs a row).
template <int J>
inline void scores_tile_bf16(const std::uint16_t* K, index_t ks, index_t d, const std::uint32_t* Qb, float* St) {
  __m512 a0[J], a1[J];
  for (int jj = 0; jj < J; ++jj) a0[jj] = a1[jj] = _mm512_setzero_ps();
  const index_t full = d / 2;
  for (index_t cp = 0; cp < full; ++cp) {
    const __m512bh q0 = (__m512bh)_mm512_loadu_si512(Qb + cp * kLanes);
    const __m512bh q1 = (__m512bh)_mm512_loadu_si512(Qb + cp * kLanes + 16);
#pragma GCC unroll 12
    for (int jj = 0; jj < J; ++jj) {
      std::uint32_t w;
      std::memcpy(&w, K + jj * ks + 2 * cp, sizeof w);
      const __m512bh kv = (__m512bh)_mm512_set1_epi32(static_cast<int>(w));
      a0[jj] = _mm512_dpbf16_ps(a0[jj], kv, q0);
      a1[jj] = _mm512_dpbf16_ps(a1[jj], kv, q1);
    }
  }
  if (d % 2 != 0) {
    const __m512bh q0 = (__m512bh)_mm512_loadu_si512(Qb + full * kLanes);
    const __m512bh q1 = (__m512bh)_mm512_loadu_si512(Qb + full * kLanes + 16);
    for (int jj = 0; jj < J; ++jj) {
      const __m512bh kv = (__m512bh)_mm512_set1_epi32(static_cast<int>(key_pair(K + jj * ks, full, d)));
      a0[jj] = _mm512_dpbf16_ps(a0[jj], kv, q0);
      a1[jj] = _mm512_dpbf16_ps(a1[jj], kv, q1);
    }
  }
  for (int jj = 0; jj < J; ++jj) {
    _mm512_storeu_ps(St + jj * kLanes, a0[jj]);
    _mm512_storeu_ps(St + jj * kLanes + 16, a1[jj]);
  }
}

inline void block_scores_bf16(const std::uint16_t* K, index_t ks, index_t d, index_t cols, const std::uint32_t* Qb,
                              float* St) {
  index_t j = 0;
  for (; j + kTileKeys <= cols; j += kTileKeys) scores_tile_bf16<kTileKeys>(K + j * ks, ks, d, Qb, St + j * kLanes);
  for (; j + 4 <= cols; j += 4) scores_tile_bf16<4>(K + j * ks, ks, d, Qb, St + j * kLanes);
  for (; j < cols; ++j) scores_tile_bf16<1>(K + j * ks, ks, d, Qb, St + j * kLanes);
}

// Pb[jp·kLanes + v] = (St[2jp][v], St[2jp+1][v]) as bf16, a zero partner past cols.
inline void pack_weights(const float* St, index_t cols, std::uint32_t* Pb) {
  for (index_t jp = 0; jp < (cols + 1) / 2; ++jp)
    for (index_t h = 0; h < kLanes; h += 16) {
      const __m512 lo = _mm512_loadu_ps(St + 2 * jp * kLanes + h);
      const __m512 hi = 2 * jp + 1 < cols ? _mm512_loadu_ps(St + (2 * jp + 1) * kLanes + h) : _mm512_setzero_ps();
      _mm512_storeu_si512(Pb + jp * kLanes + h, pair_bits(lo, hi));
    }
}

// Vb[jp·dv + c] = (V[2jp][c], V[2jp+1][c]) as bf16, a zero partner past cols.
template <class T>
inline void pack_values(const T* V, index_t vs, index_t dv, index_t cols, std::uint32_t* Vb) {
  for (index_t jp = 0; jp < (cols + 1) / 2; ++jp) {
    const T* lo = V + 2 * jp * vs;
    const T* hi = 2 * jp + 1 < cols ? V + (2 * jp + 1) * vs : nullptr;
    for (index_t c = 0; c < dv; c += 16) {
      const index_t n = std::min<index_t>(16, dv - c);
      const __m512i pairs = load_pairs(lo + c, hi == nullptr ? nullptr : hi + c, n);
      if (n == 16)
        _mm512_storeu_si512(Vb + jp * dv + c, pairs);
      else
        _mm512_mask_storeu_epi32(Vb + jp * dv + c, static_cast<__mmask16>((1u << n) - 1u), pairs);
    }
  }
}

// Ot[c][v] += Σ_j v_j[c]·w_v[j] for C output columns, pairs of keys per instruction.
template <int C>
inline void output_tile_bf16(const std::uint32_t* Vb, index_t dv, index_t pairs, const std::uint32_t* Pb, float* Ot) {
  __m512 a0[C], a1[C];
  for (int cc = 0; cc < C; ++cc) {
    a0[cc] = _mm512_loadu_ps(Ot + cc * kLanes);
    a1[cc] = _mm512_loadu_ps(Ot + cc * kLanes + 16);
  }
  for (index_t jp = 0; jp < pairs; ++jp) {
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(Pb + jp * kLanes);
    const __m512bh w1 = (__m512bh)_mm512_loadu_si512(Pb + jp * kLanes + 16);
#pragma GCC unroll 12
    for (int cc = 0; cc < C; ++cc) {
      const __m512bh vv = (__m512bh)_mm512_set1_epi32(static_cast<int>(Vb[jp * dv + cc]));
      a0[cc] = _mm512_dpbf16_ps(a0[cc], vv, w0);
      a1[cc] = _mm512_dpbf16_ps(a1[cc], vv, w1);
    }
  }
  for (int cc = 0; cc < C; ++cc) {
    _mm512_storeu_ps(Ot + cc * kLanes, a0[cc]);
    _mm512_storeu_ps(Ot + cc * kLanes + 16, a1[cc]);
  }
}

inline void block_output_bf16(const std::uint32_t* Vb, index_t dv, index_t cols, const std::uint32_t* Pb, float* Ot) {
  const index_t pairs = (cols + 1) / 2;
  index_t c = 0;
  for (; c + kTileCols <= dv; c += kTileCols) output_tile_bf16<kTileCols>(Vb + c, dv, pairs, Pb, Ot + c * kLanes);
  for (; c + 4 <= dv; c += 4) output_tile_bf16<4>(Vb + c, dv, pairs, Pb, Ot + c * kLanes);
  for (; c < dv; ++c) output_tile_bf16<1>(Vb + c, dv, pairs, Pb, Ot + c * kLanes);
}

// A softmax tile in bf16 arithmetic (TileJob::bf16_products): the contract of run_tile.
template <class T>
void run_tile_native(const TileJob& job, TileState& st) {
  const index_t d = job.d, dv = job.dv, dp = (d + 1) / 2;
  const T* keys = static_cast<const T*>(job.keys);
  const T* values = static_cast<const T*>(job.values);
  const float masked = -std::numeric_limits<float>::infinity();
  pack_queries(st.Qp, d, st.Qb);
  for (index_t kb = job.k_begin; kb < job.k_end; kb += kKeyBlock) {
    const index_t cols = std::min(kKeyBlock, job.k_end - kb);
    const T* K = keys + kb * job.key_stride;
    if constexpr (std::is_same_v<T, BFloat16>) {
      block_scores_bf16(reinterpret_cast<const std::uint16_t*>(K), job.key_stride, d, cols, st.Qb, st.St);
    } else {
      pack_keys(K, job.key_stride, d, cols, st.Kb);
      block_scores_bf16(reinterpret_cast<const std::uint16_t*>(st.Kb), 2 * dp, d, cols, st.Qb, st.St);
    }
    const __m512 scale = _mm512_set1_ps(job.score_scale);
    for (index_t i = 0; i < cols * kLanes; i += 16)
      _mm512_storeu_ps(st.St + i, _mm512_mul_ps(scale, _mm512_loadu_ps(st.St + i)));
    if (job.mask.any()) mask_block(st.St, cols, kb, job.q_first, job.mask, masked);
    softmax_update(st.St, cols, dv, st.m, st.l, st.Ot);
    pack_weights(st.St, cols, st.Pb);
    pack_values(values + kb * job.value_stride, job.value_stride, dv, cols, st.Vb);
    block_output_bf16(st.Vb, dv, cols, st.Pb, st.Ot);
  }
}

void run_tile_any(const TileJob& job, TileState& st) {
  if (!job.bf16_products || job.kind != ScoreKind::softmax) return run_tile(job, st);
  switch (job.type) {
    case ElementType::f32:
      return run_tile_native<float>(job, st);
    case ElementType::f16:
      return run_tile_native<Half>(job, st);
    case ElementType::bf16:
      return run_tile_native<BFloat16>(job, st);
  }
}

}  // namespace
}  // namespace avx512_bf16_build

const FlashKernels& avx512_bf16_flash_kernels() {
  static const FlashKernels set{"avx512_bf16", true, avx512_bf16_build::run_tile_any, avx512_bf16_build::run_single};
  return set;
}

}  // namespace levattn::detail
