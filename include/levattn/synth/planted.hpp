// The planted model: a few strong "relevant" key directions hidden among many noise keys, and
// queries aimed at the relevant directions. Leverage scores single out the relevant keys, so the
// heavy entries of x² attention sit exactly on them.
//
//   noise keys    k = a·√(n/d)·B z / √s + σ·g / √d     (n − r·c of them)
//   relevant keys k = ρ_t · u_t + σ·g / √d,             t = 1..r, c copies each, at random positions
//   queries       q = u_t + noise_q · g / √d,          t uniform in 1..r
//   values        v ~ N(0, I_{d_v})                    (only when value_dim > 0)
// with g ~ N(0, I_d), z ~ N(0, I_s), B a random orthonormal d×s basis of the "noise subspace"
// (s = noise_rank, a = noise_strength: keys *near a low-dimensional subspace*, as long as a
// relevant key or longer, so their length says nothing), u_t random unit vectors orthogonal to
// that subspace, and strengths ρ_t = strength · √(n/d) · (0.5 + U[0,1)), so a relevant key carries
// a fixed share of its direction's energy whatever n and d are. σ = key_noise is the noise level.
// With s = 0 there is no subspace (the defaults, the demo's instance).
//
// When leverage scores recover the relevant keys (docs/proofs.md §6): every relevant key that
// some query weights ≥ ε under x² is in U = {τ ≥ ε} — guaranteed, for every input; top-k with
// k = r·c is predicted (not proven) to return exactly the relevant keys when, with
// θ = (d + 2√(d ln n) + 2 ln n)/n, (strength/2)² / (c·(strength/2)² + σ²) > θ — whatever the
// subspace amplitude a, where row norms fail once a > strength/2. experiments/planted/ measures it.
// Deterministic for a given seed, whatever the thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "levattn/core/matrix_view.hpp"

namespace levattn {

struct PlantedOptions {
  index_t n = 65536;            // keys
  index_t m = 4096;             // queries
  index_t d = 64;               // dimension
  index_t directions = 16;      // r: relevant directions
  index_t copies = 2;           // c: keys along each relevant direction
  double strength = 1.0;        // relevant strength, in units of √(n/d)
  double query_noise = 0.3;     // noise_q
  double key_noise = 1.0;       // σ: isotropic noise level of every key
  index_t noise_rank = 0;       // s: dimension of the noise subspace (0: none), s + r ≤ d
  double noise_strength = 0.0;  // a: noise keys' subspace amplitude, in units of √(n/d)
  index_t value_dim = 0;        // d_v: values drawn when > 0
  std::uint64_t seed = 1;
};

struct PlantedData {
  index_t n = 0, m = 0, d = 0, value_dim = 0;
  std::vector<float> keys;               // n×d, row-major
  std::vector<float> queries;            // m×d, row-major
  std::vector<float> values;             // n×d_v, row-major (empty when value_dim = 0)
  std::vector<index_t> relevant_keys;    // ascending
  std::vector<index_t> query_direction;  // m entries: the direction each query aims at
  ConstMatrixF key_view() const { return {keys.data(), n, d}; }
  ConstMatrixF query_view() const { return {queries.data(), m, d}; }
  ConstMatrixF value_view() const { return {values.data(), n, value_dim}; }
};

// The regime above in numbers, for options o (no data drawn): the predicted smallest leverage of a
// relevant key, (strength/2)² / (c·(strength/2)² + σ²), the level θ = (d + 2√(d ln n) + 2 ln n)/n
// that the noise keys' leverage stays below with probability ≈ 1 − 1/n, and whether top-(r·c)
// leverage is predicted to return exactly the relevant keys (relevant_min > noise_max).
struct PlantedPrediction {
  double relevant_min = 0.0, noise_max = 0.0;
  bool recovers = false;
};
PlantedPrediction predict_planted(const PlantedOptions& options);

// Throws Error{bad_input} unless n ≥ directions·copies, d ≥ 1, m ≥ 0, directions ≥ 1,
// copies ≥ 1, strength > 0, query and key noise ≥ 0, value_dim ≥ 0, noise_strength ≥ 0 and
// 0 ≤ noise_rank ≤ d − directions (the relevant directions live outside the noise subspace).
PlantedData make_planted(const PlantedOptions& options);

}  // namespace levattn
