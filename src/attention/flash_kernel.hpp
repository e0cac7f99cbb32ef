// Private interface between the exact-attention driver (exact.cpp) and its inner loops
// (flash_tile.hpp, built once portable and once for AVX-512; chosen at run time with the linalg
// layer's use_avx512()).
#pragma once

#include <cstdint>

#include "levattn/attention/exact.hpp"

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
  double p;           // power exponent
  const float* keys;  // row j at keys + j·key_stride, d floats
  index_t key_stride;
  const float* values;  // row j at values + j·value_stride, dv floats
  index_t value_stride;
  index_t d, dv;
  index_t k_begin, k_end;
  KeyMask mask;
  index_t q_first;  // index of lane 0's query (for the mask)
};

// Per-tile buffers, owned by the caller. Before run_tile: Qp holds the packed queries
// (Qp[c·kLanes + v], zero in unused lanes), m = −∞ (softmax) or 0 (power), l = 0, Ot = 0.
// After: Ot[c·kLanes + v] = Σ_j w_vj·v_j[c] with w_vj = f(s_vj)/f(m_v) and l[v] = Σ_j w_vj.
struct TileState {
  float* Qp;  // d × kLanes
  float* St;  // kKeyBlock × kLanes
  float* Ot;  // dv × kLanes
  float* m;   // kLanes
  double* l;  // kLanes
};

// One query over keys [k_begin, k_end) (decode). The same contract with a single lane.
struct SingleJob {
  ScoreKind kind;
  double p;
  const float* keys;
  index_t key_stride;
  const float* values;
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
  void (*run_tile)(const TileJob&, TileState&);
  void (*run_single)(const SingleJob&, SingleState&);
};

const FlashKernels& generic_flash_kernels();
const FlashKernels& avx512_flash_kernels();
const FlashKernels& active_flash_kernels();

}  // namespace levattn::detail
