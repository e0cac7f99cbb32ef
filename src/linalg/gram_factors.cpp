#include "levattn/linalg/gram_factors.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <string>
#include <type_traits>

#include "core/first_error.hpp"
#include "levattn/core/finite_rows.hpp"
#include "linalg/gram_eigen.hpp"
#include "linalg/kernels.hpp"
#include "linalg/scaled_rows.hpp"
#include "linalg/widen_rows.hpp"

namespace levattn {

TrapezoidalForm::TrapezoidalForm(const std::vector<double>& T, index_t rows, index_t d) : rows_(rows), d_(d) {
  const index_t dpad = kernels::padded_dim(d), tpad = kernels::padded_dim(rows);
  tt_.assign(static_cast<size_t>(dpad * tpad), 0.0);
  for (index_t i = 0; i < rows; ++i)
    for (index_t c = i; c < d; ++c) tt_[c * tpad + i] = T[i * d + c];
  // The float copy is scaled by 2^float_shift_ (exact) so that its largest entry lies in [0.5, 1):
  // factors of keys near float's range ends would otherwise fall below its normal range.
  float_shift_ = linalg::pow2_shift(tt_.data(), static_cast<index_t>(tt_.size()));
  const index_t fpad = kernels::padded_dim_float(rows);
  ttf_.assign(static_cast<size_t>(dpad * fpad), 0.0f);
  for (index_t i = 0; i < rows; ++i)
    for (index_t c = i; c < d; ++c) ttf_[c * fpad + i] = static_cast<float>(std::ldexp(T[i * d + c], float_shift_));
}

std::vector<double> TrapezoidalForm::dense() const {
  const index_t tpad = kernels::padded_dim(rows_);
  std::vector<double> T(static_cast<size_t>(rows_ * d_), 0.0);
  for (index_t i = 0; i < rows_; ++i)
    for (index_t c = i; c < d_; ++c) T[i * d_ + c] = tt_[c * tpad + i];
  return T;
}

void TrapezoidalForm::check_shape(index_t cols, const char* what) const {
  require(cols == d_,
          std::string(what) + ": have " + std::to_string(cols) + " columns, expected " + std::to_string(d_));
}

template <class T>
bool TrapezoidalForm::empty_form(MatrixView<const T> X, double* out, const char* what) const {
  if (rows_ != 0) return false;
  require_finite_rows(X, what);
  std::fill(out, out + X.rows, 0.0);
  return true;
}

namespace {

// Runs block(begin, rows) → first non-finite row of X in that block (or begin + rows) over
// blocks of kBlockRows rows in parallel; throws naming the first non-finite row of X.
template <class Block>
void for_each_block(index_t n, const char* what, Block block) {
  const index_t blocks = (n + kernels::kBlockRows - 1) / kernels::kBlockRows;
  index_t first_bad = n;
  FirstError error;  // e.g. a kernel's scratch that does not fit
#pragma omp parallel for schedule(static) reduction(min : first_bad)
  for (index_t b = 0; b < blocks; ++b) {
    if (error.failed()) continue;
    const index_t begin = b * kernels::kBlockRows;
    const index_t rows = std::min(kernels::kBlockRows, n - begin);
    try {
      const index_t bad = block(begin, rows);
      if (bad < begin + rows) first_bad = std::min(first_bad, bad);
    } catch (...) {
      error.capture();
    }
  }
  error.rethrow_if_any();
  if (first_bad < n) throw Error(ErrorKind::bad_input, nonfinite_row_message(what, first_bad));
}

}  // namespace

// Float rows go to the kernel in place; 16-bit rows are widened a block at a time into a
// per-thread scratch of kBlockRows × d floats, so the kernel forms the same bits from them.
template <class T>
void TrapezoidalForm::sum_squares_rows(MatrixView<const T> X, double* out, const char* what) const {
  check_shape(X.cols, what);
  if (empty_form(X, out, what)) return;
  const auto& kernel = kernels::active_kernels();
  for_each_block(X.rows, what, [&](index_t begin, index_t rows) {
    bool finite = false;
    if constexpr (std::is_same_v<T, float>) {
      finite = kernel.trapezoid_sumsq(X.row(begin), rows, d_, X.stride, tt_.data(), rows_, out + begin);
    } else {
      thread_local std::vector<float> scratch;
      scratch.resize(static_cast<size_t>(kernels::kBlockRows * d_));
      widen_rows(X, begin, rows, scratch.data());
      finite = kernel.trapezoid_sumsq(scratch.data(), rows, d_, d_, tt_.data(), rows_, out + begin);
    }
    return finite ? begin + rows : first_nonfinite_row(X, begin, begin + rows);
  });
}

void TrapezoidalForm::sum_squares(ConstMatrixF X, double* out, const char* what) const {
  sum_squares_rows(X, out, what);
}
void TrapezoidalForm::sum_squares(MatrixView<const Half> X, double* out, const char* what) const {
  sum_squares_rows(X, out, what);
}
void TrapezoidalForm::sum_squares(MatrixView<const BFloat16> X, double* out, const char* what) const {
  sum_squares_rows(X, out, what);
}

template <class T>
void TrapezoidalForm::sum_squares_float32_rows(MatrixView<const T> X, double* out, const char* what) const {
  check_shape(X.cols, what);
  if (empty_form(X, out, what)) return;
  const auto& kernel = kernels::active_kernels();
  for_each_block(X.rows, what, [&](index_t begin, index_t rows) {
    const float* x = nullptr;  // the block's rows as float: in place, or widened into scratch
    index_t stride = d_;
    if constexpr (std::is_same_v<T, float>) {
      x = X.row(begin), stride = X.stride;
    } else {
      thread_local std::vector<float> scratch;
      scratch.resize(static_cast<size_t>(kernels::kBlockRows * d_));
      widen_rows(X, begin, rows, scratch.data());
      x = scratch.data();
    }
    kernel.trapezoid_sumsq_float(x, rows, d_, stride, ttf_.data(), rows_, out + begin);
    if (std::all_of(out + begin, out + begin + rows, [](double v) { return std::isfinite(v); })) {
      for (index_t r = begin; r < begin + rows; ++r) out[r] = std::ldexp(out[r], -2 * float_shift_);
      return begin + rows;
    }
    // A non-finite input or a float overflow: the double kernel tells them apart.
    if (kernel.trapezoid_sumsq(x, rows, d_, stride, tt_.data(), rows_, out + begin)) return begin + rows;
    return first_nonfinite_row(X, begin, begin + rows);
  });
}

void TrapezoidalForm::sum_squares_float32(ConstMatrixF X, double* out, const char* what) const {
  sum_squares_float32_rows(X, out, what);
}
void TrapezoidalForm::sum_squares_float32(MatrixView<const Half> X, double* out, const char* what) const {
  sum_squares_float32_rows(X, out, what);
}
void TrapezoidalForm::sum_squares_float32(MatrixView<const BFloat16> X, double* out, const char* what) const {
  sum_squares_float32_rows(X, out, what);
}

GramFactors factor_gram(const std::vector<double>& G, index_t d, double ridge, double rcond) {
  require(d >= 1 && static_cast<index_t>(G.size()) == d * d, "factor_gram: G must be d×d");
  require(ridge >= 0.0 && std::isfinite(ridge), "ridge must be finite and ≥ 0, got " + std::to_string(ridge));
  require(rcond > 0.0 && rcond < 1.0, "rcond must lie in (0, 1), got " + std::to_string(rcond));
  const linalg::RowMatrixD g = Eigen::Map<const linalg::RowMatrixD>(G.data(), d, d);

  // Equilibrate by D = diag(G): columns of K that are identically zero keep scale 1.
  const linalg::EquilibratedEigen plain = linalg::equilibrated_eigen(g, 0.0);
  GramFactors out;
  // Root of G itself (no ridge, nothing cut): qᵀGq = ‖Λ^{1/2} Vᵀ D^{1/2} q‖².
  const Eigen::VectorXd lam0 = plain.eigenvalues.cwiseMax(0.0);  // ascending
  const double lam0_max = lam0(d - 1);
  const Eigen::VectorXd unscale = plain.inv_sqrt_diag.cwiseInverse();  // D^{1/2}
  const linalg::RowMatrixD root_w =
      lam0.cwiseSqrt().asDiagonal() * plain.eigenvectors.transpose() * unscale.asDiagonal();
  out.root = linalg::trapezoid_of(root_w);
  index_t cut0 = 0;
  while (cut0 < d && lam0(cut0) <= rcond * rcond * lam0_max) ++cut0;
  // A cut eigenvalue is at most the cut level rcond²·λ_max plus the eigensolver's rounding
  // (~d·u·λ_max), whatever value (often pure rounding, or 0 after the clamp) was computed for it.
  // Charging every cut direction that level makes ‖F_c q‖² an upper bound on the part of qᵀGq
  // along the cut directions, also for a query that lies almost entirely in them.
  const double cut_level = (rcond * rcond + 4.0 * static_cast<double>(d) * DBL_EPSILON) * lam0_max;
  const linalg::RowMatrixD cut_w =
      std::sqrt(cut_level) * plain.eigenvectors.leftCols(cut0).transpose() * unscale.asDiagonal();
  out.cut_root = linalg::trapezoid_of(cut_w);

  // Inverse root of G + λI, with the cut-off: kᵀ(G+λI)⁺k = ‖Λₖ^{-1/2} Vₖᵀ D^{-1/2} k‖², D the
  // diagonal of G + λI itself. (Equilibrating G + λI by G's diagonal instead blows a column of tiny
  // keys up to λ/g_ii ≫ 1, and the cut-off then drops every direction that carries the scores.)
  const linalg::EquilibratedEigen ridged = ridge > 0.0 ? linalg::equilibrated_eigen(g, ridge) : plain;
  const Eigen::VectorXd& lam = ridged.eigenvalues;
  const double lam_max = std::max(lam(d - 1), 0.0);
  index_t cut = 0;
  while (cut < d && lam(cut) <= rcond * rcond * lam_max) ++cut;
  out.rank = d - cut;
  out.eigenvalues.resize(static_cast<size_t>(d));
  for (index_t i = 0; i < d; ++i) out.eigenvalues[i] = lam(d - 1 - i);
  const Eigen::VectorXd inv_sqrt = lam.tail(out.rank).cwiseSqrt().cwiseInverse();
  const linalg::RowMatrixD inv_w =
      inv_sqrt.asDiagonal() * ridged.eigenvectors.rightCols(out.rank).transpose() * ridged.inv_sqrt_diag.asDiagonal();
  out.inverse_root = linalg::trapezoid_of(inv_w);
  return out;
}

}  // namespace levattn
