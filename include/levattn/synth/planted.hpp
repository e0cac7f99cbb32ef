// The planted model: a few strong "relevant" key directions hidden among many noise keys, and
// queries aimed at the relevant directions. Leverage scores single out the relevant keys, so the
// heavy entries of x² attention sit exactly on them.
//
//   noise keys    k = g / √d,                      g ~ N(0, I_d)          (n − r·c of them)
//   relevant keys k = s_t · u_t + g / √d,          t = 1..r, c copies each, at random positions
//   queries       q = u_t + noise_q · g / √d,      t uniform in 1..r
// with u_t random unit vectors and strengths s_t = strength · √(n/d) · (0.5 + U[0,1)), so that a
// relevant key carries a fixed share of its direction's energy whatever n and d are.
// Deterministic for a given seed, whatever the thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "levattn/core/matrix_view.hpp"

namespace levattn {

struct PlantedOptions {
  index_t n = 65536;        // keys
  index_t m = 4096;         // queries
  index_t d = 64;           // dimension
  index_t directions = 16;  // r: relevant directions
  index_t copies = 2;       // c: keys along each relevant direction
  double strength = 1.0;    // relevant strength, in units of √(n/d)
  double query_noise = 0.3; // noise_q
  std::uint64_t seed = 1;
};

struct PlantedData {
  index_t n = 0, m = 0, d = 0;
  std::vector<float> keys;              // n×d, row-major
  std::vector<float> queries;           // m×d, row-major
  std::vector<index_t> relevant_keys;   // ascending
  std::vector<index_t> query_direction; // m entries: the direction each query aims at
  ConstMatrixF key_view() const { return {keys.data(), n, d}; }
  ConstMatrixF query_view() const { return {queries.data(), m, d}; }
};

// Throws Error{bad_input} unless n ≥ directions·copies, d ≥ 1, m ≥ 0, directions ≥ 1, copies ≥ 1.
PlantedData make_planted(const PlantedOptions& options);

}  // namespace levattn
