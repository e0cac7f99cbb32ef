// Independent double-precision references and adversarial inputs for the tests. Nothing here
// uses the library's algorithms: leverage scores come from an SVD (or QR) of K in double, and
// attention from every <q,k> in double.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <vector>

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
// A[i,j] = <q_i,k_j>² / Σ_l <q_i,k_l>² in double, m×n (rows with a zero sum are all zero).
MatD attention_reference(const Floats& Q, const Floats& K);

}  // namespace levattn::test
