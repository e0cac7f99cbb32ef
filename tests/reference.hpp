// Independent double-precision references and adversarial inputs for the tests. Nothing here
// uses the library's algorithms: leverage scores come from an SVD (or QR) of K in double, and
// attention from every <q,k> in double.
#pragma once

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
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
// A[i,j] = |<q_i,k_j>|^p / Σ_l |<q_i,k_l>|^p in double, m×n (rows of zero products are all zero).
MatD power_attention_reference(const Floats& Q, const Floats& K, double p);

// 800 × 6 keys with a direction below the rank cut-off: column 5 equals column 4, except in key 0,
// which holds 0 and 2^-20 there (exact in float16, as a subnormal, and in bfloat16).
Floats keys_with_a_cut_direction();
// 50 queries over keys: make_queries' rows, every other one (from row 0) replaced by e5 − e4,
// along keys_with_a_cut_direction()'s cut direction.
Floats queries_along_the_cut(const Floats& keys);

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

// Rows rounded to T (Half or BFloat16) in a buffer of row stride cols + pad (the padding holds
// NaNs, which must never be read), with their exact widening back to float (dense): the input of a
// reference that asks for the answer on the ROUNDED values.
template <class T>
struct RoundedRows {
  index_t rows = 0, cols = 0, stride = 0;
  std::vector<T> data;
  Floats widened;
  MatrixView<const T> view() const { return {data.data(), rows, cols, stride}; }
};

template <class T>
RoundedRows<T> round_rows(const Floats& X, index_t pad = 0) {
  RoundedRows<T> r;
  r.rows = X.rows;
  r.cols = X.cols;
  r.stride = X.cols + pad;
  r.data.assign(static_cast<size_t>(r.rows * r.stride), round_to<T>(std::numeric_limits<float>::quiet_NaN()));
  r.widened = X;
  for (index_t i = 0; i < X.rows; ++i)
    for (index_t c = 0; c < X.cols; ++c) {
      const T v = round_to<T>(X.data[i * X.cols + c]);
      r.data[i * r.stride + c] = v;
      r.widened.data[i * X.cols + c] = to_float(v);
    }
  return r;
}

// "f16" or "bf16", for messages.
template <class T>
const char* half_type_label() {
  return std::is_same_v<T, Half> ? "f16" : "bf16";
}

// Keys of `kind` (one of kinds()) made to fit the 16-bit type T: "huge" and "tiny" sit near the
// ends of the type's range (bf16 has float's exponent range, f16 is normal in [2^-14, 65504]);
// other kinds are scaled by a power of two (exact) so that |x| ≤ 2^14, which f16 holds.
template <class T>
Floats keys_in_half_range(const std::string& kind, index_t n, index_t d, std::uint64_t seed) {
  constexpr bool kHalf = std::is_same_v<T, Half>;
  if (kind == "huge") return kHalf ? normal_matrix(n, d, seed, 0x1p12) : make_keys("huge", n, d, seed);
  if (kind == "tiny") return kHalf ? normal_matrix(n, d, seed, 0x1p-14) : make_keys("tiny", n, d, seed);
  Floats K = make_keys(kind, n, d, seed);
  if (kHalf) {
    float top = 0.0f;
    for (float v : K.data) top = std::max(top, std::abs(v));
    int shift = 0;
    while (std::ldexp(top, shift) > 0x1p14f) --shift;
    for (float& v : K.data) v = std::ldexp(v, shift);
  }
  return K;
}

// X with each nonzero row scaled by a power of two (exact) so that its largest |x| lies in
// [0.5, 1): e.g. make_queries' rows (1e±20 scalings included) made to fit a 16-bit type.
inline Floats rows_scaled_to_unit(Floats X) {
  for (index_t i = 0; i < X.rows; ++i) {
    float* row = X.data.data() + i * X.cols;
    float top = 0.0f;
    for (index_t c = 0; c < X.cols; ++c) top = std::max(top, std::abs(row[c]));
    int e = 0;
    std::frexp(top, &e);
    for (index_t c = 0; c < X.cols; ++c) row[c] = std::ldexp(row[c], -e);
  }
  return X;
}

}  // namespace levattn::test
