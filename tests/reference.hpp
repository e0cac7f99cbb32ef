// Independent double-precision references and adversarial inputs for the tests. Nothing here
// uses the library's algorithms: leverage scores come from an SVD (or QR) of K in double, and
// attention from every <q,k> in double.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "levattn/attention/exact.hpp"
#include "levattn/core/half.hpp"
#include "levattn/core/matrix_view.hpp"

namespace levattn::test {

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A float matrix that owns its data.
struct Floats {
  index_t rows = 0, cols = 0;
  std::vector<float> data;
  ConstMatrixF view() const { return {data.data(), rows, cols}; }
  MatD to_double() const;
};

// rows × cols entries drawn from N(0, scale²) by std::mt19937_64(seed).
Floats normal_matrix(index_t rows, index_t cols, std::uint64_t seed, double scale = 1.0);

// Keys of every kind the acceptance criteria name. `kind` is one of kinds().
Floats make_keys(const std::string& kind, index_t n, index_t d, std::uint64_t seed);
const std::vector<std::string>& kinds();
// Numerical rank the kind is built with (d when full rank).
index_t built_rank(const std::string& kind, index_t d);
// K = U diag(σ) Vᵀ with σ log-spaced from 1 down to 1/cond, U, V random orthonormal.
Floats make_conditioned(index_t n, index_t d, double cond, std::uint64_t seed);

// Queries that stress the heavy search against keys K: random, copies of keys, the maximisers
// G⁺k_j, a zero row, and rows scaled by 1e±20.
Floats make_queries(const Floats& keys, index_t m, std::uint64_t seed);

// Leverage scores of K in double from a thin SVD, keeping singular values > rcond·σ_max (or the
// top `rank` when rank ≥ 0).
std::vector<double> leverage_reference(const Floats& K, double rcond, index_t rank = -1);
// Ridge scores k_jᵀ(KᵀK + λI)⁻¹k_j from a QR of [K; √λ·I] in double.
std::vector<double> ridge_reference(const Floats& K, double lambda);
// ℓp Lewis weights for 0 < p < 4 by the plain Cohen–Peng iteration w ← (k_jᵀ(KᵀW^{1−2/p}K)⁻¹k_j)^{p/2}
// in double with an LDLᵀ solve, run to convergence (K of full column rank).
std::vector<double> lewis_reference(const Floats& K, double p);
// A[i,j] = <q_i,k_j>² / Σ_l <q_i,k_l>² in double, m×n (rows with a zero sum are all zero).
MatD attention_reference(const Floats& Q, const Floats& K);

// Attention outputs in double, row by row, for the rows listed in `rows`: weights w_ij =
// exp(c·s_ij) (softmax) or |c·s_ij|^p over the keys `visible(i, j)` allows, with s_ij = <q_i,k_j>
// summed in double. Each output row is Σ_{kept} w_ij v_j / Σ_{visible} w_ij where `kept(i, j)`
// (default: every visible key) picks the keys whose terms are summed; lse is log Σ_{kept} w_ij
// and kept_mass Σ_{kept} w / Σ_{visible} w. Rows with Σ_{visible} w = 0 are 0 with lse = −∞.
struct AttentionRows {
  MatD out;  // rows.size() × d_v
  std::vector<double> lse, kept_mass;
};
struct AttentionSpec {
  bool softmax = true;
  double p = 2.0;
  double scale = 1.0;
  std::function<bool(index_t, index_t)> visible;  // null: every key
  std::function<bool(index_t, index_t)> kept;     // null: every visible key
  bool normalise_over_kept = true;                // false: divide by Σ over visible keys
};
AttentionRows attention_rows_reference(const Floats& Q, const Floats& K, const Floats& V,
                                       const std::vector<index_t>& rows, const AttentionSpec& spec);

// The spec of attend_exact under options o for head dimension d (the effective scale; the causal
// mask bottom-right aligned for n_q queries over n_k keys).
AttentionSpec attention_spec(const AttentionOptions& o, index_t d, index_t n_q, index_t n_k);

// Up to about `count` rows spread evenly over [0, n), always the first and the last.
std::vector<index_t> sample_rows(index_t n, index_t count = 48);

// x rounded to the nearest T (Half or BFloat16), ties to even.
template <class T>
T round_to(float x) {
  if constexpr (std::is_same_v<T, Half>)
    return to_half(x);
  else
    return to_bfloat16(x);
}

}  // namespace levattn::test
