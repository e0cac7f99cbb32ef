#include "anderson_mixing.hpp"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <limits>

namespace levattn::detail {

namespace {

constexpr std::ptrdiff_t kBlock = 8192;      // reduction block: fixed, so sums are thread-count free
constexpr double kMinRelativeEigen = 1e-10;  // cond(ΔF)² limit of the normal equations

// Σ_j a_j·b_j summed per fixed block, the blocks then summed in order.
double dot(const std::vector<double>& a, const std::vector<double>& b) {
  const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(a.size());
  const std::ptrdiff_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<std::size_t>(blocks));
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t k = 0; k < blocks; ++k) {
    double s = 0.0;
    for (std::ptrdiff_t j = k * kBlock; j < std::min(n, (k + 1) * kBlock); ++j) s += a[j] * b[j];
    partial[k] = s;
  }
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

}  // namespace

AndersonMixing::AndersonMixing(std::size_t depth, double beta) : depth_(std::max<std::size_t>(depth, 1)), beta_(beta) {}

void AndersonMixing::clear() {
  x_.clear();
  dx_.clear();
  df_.clear();
}

void AndersonMixing::record(const std::vector<double>& x, const std::vector<double>& gx) {
  const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(x.size());
  const bool extend = !x_.empty();
  std::vector<double> dx, df;  // recycled from the oldest column when the history is full
  if (extend && dx_.size() == depth_) {
    dx = std::move(dx_.front());
    df = std::move(df_.front());
    dx_.erase(dx_.begin());
    df_.erase(df_.begin());
  }
  dx.resize(static_cast<std::size_t>(n));
  df.resize(static_cast<std::size_t>(n));
  x_.resize(static_cast<std::size_t>(n));
  f_.resize(static_cast<std::size_t>(n));
  active_.resize(static_cast<std::size_t>(n));
  int changed = 0;
#pragma omp parallel for schedule(static) reduction(| : changed)
  for (std::ptrdiff_t j = 0; j < n; ++j) {
    const unsigned char active = std::isfinite(x[j]) && std::isfinite(gx[j]);
    const double xs = active ? x[j] : 0.0, fs = active ? gx[j] - x[j] : 0.0;
    if (extend) {
      changed |= active != active_[j];
      dx[j] = xs - x_[j];
      df[j] = fs - f_[j];
    }
    x_[j] = xs;
    f_[j] = fs;
    active_[j] = active;
  }
  if (!extend) return;
  if (changed) {  // a weight reached zero: the old differences no longer describe the same unknowns
    dx_.clear();
    df_.clear();
    return;
  }
  dx_.push_back(std::move(dx));
  df_.push_back(std::move(df));
}

void AndersonMixing::propose(std::vector<double>& next) const {
  const std::size_t n = x_.size(), m = df_.size();
  // Normal equations of min ‖f − ΔF·γ‖, equilibrated; the oldest columns go while they are singular.
  Eigen::MatrixXd a(m, m);
  Eigen::VectorXd b(m);
  for (std::size_t i = 0; i < m; ++i) {
    b(i) = dot(df_[i], f_);
    for (std::size_t k = 0; k <= i; ++k) a(i, k) = a(k, i) = dot(df_[i], df_[k]);
  }
  Eigen::VectorXd gamma = Eigen::VectorXd::Zero(m);
  for (std::size_t first = 0; first < m; ++first) {
    const std::size_t cols = m - first;
    const Eigen::MatrixXd sub = a.bottomRightCorner(cols, cols);
    const Eigen::VectorXd scale = sub.diagonal().cwiseSqrt();
    if ((scale.array() <= 0.0).any()) continue;
    const Eigen::MatrixXd eq = scale.cwiseInverse().asDiagonal() * sub * scale.cwiseInverse().asDiagonal();
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(eq);
    const Eigen::VectorXd& lambda = eig.eigenvalues();
    if (!(lambda(0) > kMinRelativeEigen * lambda(cols - 1))) continue;
    const Eigen::VectorXd y = eq.ldlt().solve(b.tail(cols).cwiseQuotient(scale));
    gamma.tail(cols) = y.cwiseQuotient(scale);
    break;
  }
  next.resize(n);
  constexpr double minus_inf = -std::numeric_limits<double>::infinity();
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t j = 0; j < static_cast<std::ptrdiff_t>(n); ++j) {
    if (!active_[j]) {
      next[j] = minus_inf;
      continue;
    }
    double x = x_[j] + beta_ * f_[j];
    for (std::size_t i = 0; i < m; ++i) x -= gamma(i) * (dx_[i][j] + beta_ * df_[i][j]);
    next[j] = x;
  }
}

}  // namespace levattn::detail
