// The one "equilibrate, eigen-decompose, trapezoid" routine behind the Gram factors, the streaming
// leverage bound and the Lewis iteration: symmetric equilibration of G (+ ridge·I) by its diagonal,
// its eigen-decomposition, and the upper-trapezoidal factor the row kernels read.
#pragma once

#include <Eigen/Dense>

#include "levattn/linalg/gram_factors.hpp"

namespace levattn::linalg {

using RowMatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// G + ridge·I = D^{1/2} (V Λ Vᵀ) D^{1/2} with D = diag(G) + ridge.
struct EquilibratedEigen {
  Eigen::VectorXd inv_sqrt_diag;  // D^{-1/2}; 1 where D_ii = 0 (a column of K that is all zero)
  Eigen::VectorXd eigenvalues;    // Λ, ascending, as computed (rounding may leave some below 0)
  RowMatrixD eigenvectors;        // V: column i belongs to eigenvalues(i)
};

// The decomposition above of a symmetric PSD d×d G (d ≥ 1) and a ridge ≥ 0 (the caller checks
// both). Equilibrating first makes the eigensolver's rounding relative to each column's scale.
// Deterministic: the same G and ridge give the same bits.
EquilibratedEigen equilibrated_eigen(const RowMatrixD& g, double ridge);

// An upper-trapezoidal T, min(rows, d) × d, with TᵀT = WᵀW (Householder QR of W, rows × d); the
// empty form when W has no rows.
TrapezoidalForm trapezoid_of(const RowMatrixD& W);

}  // namespace levattn::linalg
