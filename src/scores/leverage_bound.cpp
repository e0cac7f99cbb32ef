#include "levattn/scores/leverage_bound.hpp"

#include <cmath>
#include <string>

#include "linalg/gram_eigen.hpp"

namespace levattn {

LeverageBound::LeverageBound(index_t d, double rcond) : d_(d), rcond_(rcond) {
  require(d >= 1, "leverage bound: dimension must be at least 1");
  require(rcond > 0.0 && rcond < 1.0, "rcond must lie in (0, 1), got " + std::to_string(rcond));
  form_ = TrapezoidalForm(std::vector<double>(static_cast<size_t>(d * d), 0.0), d, d);
}

void LeverageBound::fit(const GramSummary& summary) {
  require(summary.dim() == d_,
          "leverage bound: summary of dimension " + std::to_string(summary.dim()) + ", expected " + std::to_string(d_));
  const std::vector<double> G = summary.gram();
  const linalg::RowMatrixD g = Eigen::Map<const linalg::RowMatrixD>(G.data(), d_, d_);
  const linalg::EquilibratedEigen eig = linalg::equilibrated_eigen(g, 0.0);
  // S = D^{-1/2} on non-zero columns and 0 on zero ones: keys seen so far are zero there.
  Eigen::VectorXd scale = eig.inv_sqrt_diag;
  for (index_t i = 0; i < d_; ++i)
    if (!(g(i, i) > 0.0)) scale(i) = 0.0;
  const double ridge = rcond_ * rcond_;
  const Eigen::VectorXd inv_sqrt = (eig.eigenvalues.cwiseMax(0.0).array() + ridge).rsqrt();
  form_ = linalg::trapezoid_of(inv_sqrt.asDiagonal() * eig.eigenvectors.transpose() * scale.asDiagonal());
}

void LeverageBound::bounds(ConstMatrixF keys, double* out) const { form_.sum_squares(keys, out, "keys"); }

}  // namespace levattn
