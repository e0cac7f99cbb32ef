#include "linalg/gram_eigen.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace levattn::linalg {

EquilibratedEigen equilibrated_eigen(const RowMatrixD& g, double ridge) {
  const index_t d = g.rows();
  EquilibratedEigen out;
  out.inv_sqrt_diag.resize(d);
  for (index_t i = 0; i < d; ++i) {
    const double diag = g(i, i) + ridge;
    out.inv_sqrt_diag(i) = diag > 0.0 ? 1.0 / std::sqrt(diag) : 1.0;
  }
  RowMatrixD equilibrated;
  if (ridge > 0.0) {
    RowMatrixD ridged = g;
    ridged.diagonal().array() += ridge;
    equilibrated = out.inv_sqrt_diag.asDiagonal() * ridged * out.inv_sqrt_diag.asDiagonal();
  } else {
    equilibrated = out.inv_sqrt_diag.asDiagonal() * g * out.inv_sqrt_diag.asDiagonal();
  }
  const Eigen::SelfAdjointEigenSolver<RowMatrixD> eig(equilibrated);
  out.eigenvalues = eig.eigenvalues();
  out.eigenvectors = eig.eigenvectors();
  return out;
}

TrapezoidalForm trapezoid_of(const RowMatrixD& W) {
  const index_t rows = W.rows(), d = W.cols();
  if (rows == 0) return TrapezoidalForm({}, 0, d);
  const Eigen::HouseholderQR<RowMatrixD> qr(W);
  const RowMatrixD& packed = qr.matrixQR();
  const index_t r = std::min(rows, d);
  std::vector<double> T(static_cast<size_t>(r * d), 0.0);
  for (index_t i = 0; i < r; ++i)
    for (index_t c = i; c < d; ++c) T[i * d + c] = packed(i, c);
  return TrapezoidalForm(T, r, d);
}

}  // namespace levattn::linalg
