// Private interface between the exact-attention driver (exact.cpp) and its inner loops
// (flash_tile.hpp, built portable, for AVX2 and for AVX-512; flash_bf16.cpp, the bf16 dot-product
// tile for CPUs with AVX512_BF16; chosen at run time, see active_flash_kernels()).
#pragma once

#include <cstdint>

#include "levattn/attention/exact.hpp"
#include "levattn/core/half.hpp"

namespace levattn::detail {

constexpr index_t kLanes = 32;      // queries per tile, held in vector lanes
constexpr index_t kKeyBlock = 256;  // keys per block inside a tile (scores fit in L1/L2)

// Which keys a query may see: key j has position pos_j (positions[j], or j when positions is
// null); query i sees it iff i + lo_offset ≤ pos_j ≤ i + hi_offset (each bound only when set).
struct KeyMask {
  const index_t* positions = nullptr;
  bool upper = false;
  index_t hi_offset = 0;
  bool lower = false;
  index_t lo_offset = 0;

  bool any() const { return upper || lower; }
  index_t position(index_t j) const { return positions != nullptr ? positions[j] : j; }
};

// A tile: up to kLanes queries of one head over keys [k_begin, k_end).
struct TileJob {
  ScoreKind kind;
  double p;          // power exponent
  ElementType type;  // of keys and values: float, Half or BFloat16 elements
  const void* keys;  // row j at keys + j·key_stride elements, d of them
  index_t key_stride;
  const void* values;  // row j at values + j·value_stride elements, dv of them
  index_t value_stride;
  index_t d, dv;
  index_t k_begin, k_end;
  KeyMask mask;
  index_t q_first;  // index of lane 0's query (for the mask)
  // bf16 arithmetic (softmax only): the packed queries are bf16 values, each score is multiplied
  // by score_scale after the products (so the products of bf16 queries and keys stay exact), and
  // the weights are rounded to bf16 before P·V. Otherwise score_scale is 1 (folded into Qp).
  bool bf16_products;
  float score_scale;
};

// Per-tile buffers, owned by the caller. Before run_tile: Qp holds the packed queries
// (Qp[c·kLanes + v], zero in unused lanes), m = −∞ (softmax) or 0 (power), l = 0, Ot = 0.
// After: Ot[c·kLanes + v] = Σ_j w_vj·v_j[c] with w_vj = f(s_vj)/f(m_v) and l[v] = Σ_j w_vj
// (w_vj rounded to bf16 in the sum over j when bf16_products is set; l sums them unrounded).
struct TileState {
  float* Qp;  // d × kLanes
  float* St;  // kKeyBlock × kLanes
  float* Ot;  // dv × kLanes
  float* m;   // kLanes
  double* l;  // kLanes
  // Scratch for 16-bit inputs: a key block and a value block widened to float (kKeyBlock × d and
  // kKeyBlock × dv floats), and the bf16 tile's pair-packed operands: queries ((d+1)/2 × kLanes
  // pairs), a key block (kKeyBlock × (d+1)/2 pairs), weights ((kKeyBlock/2) × kLanes pairs) and a
  // value block ((kKeyBlock/2) × dv pairs); a pair is two bf16 in one 32-bit word.
  float* Kf;
  float* Vf;
  std::uint32_t* Qb;
  std::uint32_t* Kb;
  std::uint32_t* Pb;
  std::uint32_t* Vb;
};

// One query over keys [k_begin, k_end) (decode). The same contract with a single lane.
// Decode computes in float whatever the element type: it is bound by memory, not arithmetic.
struct SingleJob {
  ScoreKind kind;
  double p;
  ElementType type;
  const void* keys;
  index_t key_stride;
  const void* values;
  index_t value_stride;
  index_t d, dv;
  index_t k_begin, k_end;
  KeyMask mask;
  index_t q_index;  // the query's index (for the mask)
};
struct SingleState {
  const float* q;  // d floats, already scaled
  float* s;        // kKeyBlock
  float* o;        // dv, zero before the call
  float m;
  double l;
};

struct FlashKernels {
  const char* name;
  bool native_bf16;  // bf16 products by vdpbf16ps (else emulated: bf16-rounded operands, float FMA)
  void (*run_tile)(const TileJob&, TileState&);
  void (*run_single)(const SingleJob&, SingleState&);
};

const FlashKernels& generic_flash_kernels();
const FlashKernels& avx2_flash_kernels();
const FlashKernels& avx512_flash_kernels();
const FlashKernels& avx512_bf16_flash_kernels();
// The best set this CPU runs: avx512_bf16 where the CPU has AVX512_BF16, else avx512 where it has
// AVX-512F/DQ/VL, else avx2 where it has AVX2, FMA and F16C, else generic. LEVATTN_KERNELS=generic,
// =avx2 or =avx512 in the environment caps the choice (so that every path can be tested on a
// machine that has them all).
const FlashKernels& active_flash_kernels();

}  // namespace levattn::detail
