#include "levattn/scores/leverage_bound.hpp"

#include <Eigen/Dense>
#include <cmath>
#include <string>

namespace levattn {

namespace {
using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
}  // namespace

LeverageBound::LeverageBound(index_t d, double rcond) : d_(d), rcond_(rcond) {
  require(d >= 1, "leverage bound: dimension must be at least 1");
  require(rcond > 0.0 && rcond < 1.0, "rcond must lie in (0, 1), got " + std::to_string(rcond));
  form_ = TrapezoidalForm(std::vector<double>(static_cast<size_t>(d * d), 0.0), d, d);
}

void LeverageBound::fit(const GramSummary& summary) {
  require(summary.dim() == d_, "leverage bound: summary of dimension " +
                                   std::to_string(summary.dim()) + ", expected " + std::to_string(d_));
  const std::vector<double> G = summary.gram();
  const Eigen::Map<const Mat> g(G.data(), d_, d_);
  // S = D^{-1/2} on non-zero columns and 0 on zero ones: keys seen so far are zero there.
  Eigen::VectorXd scale(d_);
  for (index_t i = 0; i < d_; ++i) scale(i) = g(i, i) > 0.0 ? 1.0 / std::sqrt(g(i, i)) : 0.0;
  const Mat g_eq = scale.asDiagonal() * g * scale.asDiagonal();
  const Eigen::SelfAdjointEigenSolver<Mat> eig(g_eq);
  const double ridge = rcond_ * rcond_;
  const Eigen::VectorXd inv_sqrt = (eig.eigenvalues().cwiseMax(0.0).array() + ridge).rsqrt();
  const Mat W = inv_sqrt.asDiagonal() * eig.eigenvectors().transpose() * scale.asDiagonal();
  // An upper-triangular T with TᵀT = WᵀW, in the layout the kernels read.
  const Eigen::HouseholderQR<Mat> qr(W);
  const Mat& packed = qr.matrixQR();
  std::vector<double> T(static_cast<size_t>(d_ * d_), 0.0);
  for (index_t i = 0; i < d_; ++i)
    for (index_t c = i; c < d_; ++c) T[i * d_ + c] = packed(i, c);
  form_ = TrapezoidalForm(T, d_, d_);
}

void LeverageBound::bounds(ConstMatrixF keys, double* out) const {
  form_.sum_squares(keys, out, "keys");
}

}  // namespace levattn
