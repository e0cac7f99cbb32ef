// The shared numerics helpers against plain double loops: the checked BLAS wrappers (values,
// shapes, refusals), the power-of-two row scaling, the equilibrated eigen-decomposition and
// trapezoidal factor, and the finite-row check.
#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <vector>

#include "levattn/core/finite_rows.hpp"
#include "linalg/blas.hpp"
#include "linalg/gram_eigen.hpp"
#include "linalg/scaled_rows.hpp"
#include "reference.hpp"

namespace levattn {
namespace {

using test::Floats;
using test::normal_matrix;

std::vector<double> to_double(const Floats& x) { return {x.data.begin(), x.data.end()}; }

// op(X)(i, l) of a dense rows × cols matrix.
double op_at(const std::vector<double>& x, index_t cols, bool transpose, index_t i, index_t l) {
  return transpose ? x[l * cols + i] : x[i * cols + l];
}

TEST(Blas, GemmMatchesPlainLoopForEveryTransposeAndAStridedC) {
  const index_t m = 7, n = 5, k = 9;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const Floats a = normal_matrix(ta ? k : m, ta ? m : k, 1), b = normal_matrix(tb ? n : k, tb ? k : n, 2);
      const std::vector<double> ad = to_double(a), bd = to_double(b);
      const index_t c_stride = n + 3;  // C inside a wider buffer: the padding must stay untouched
      std::vector<float> cf(static_cast<size_t>(m * c_stride), 1.0f);
      std::vector<double> cd(static_cast<size_t>(m * c_stride), 1.0);
      linalg::sgemm(ta, tb, 2.0f, a.view(), b.view(), 0.5f, MatrixF(cf.data(), m, n, c_stride));
      linalg::dgemm(ta, tb, 2.0, ConstMatrixD(ad.data(), a.rows, a.cols), ConstMatrixD(bd.data(), b.rows, b.cols), 0.5,
                    MatrixD(cd.data(), m, n, c_stride));
      for (index_t i = 0; i < m; ++i) {
        for (index_t j = 0; j < n; ++j) {
          double want = 0.5;
          for (index_t l = 0; l < k; ++l) want += 2.0 * op_at(ad, a.cols, ta, i, l) * op_at(bd, b.cols, tb, l, j);
          EXPECT_NEAR(cf[i * c_stride + j], want, 1e-4 * (1.0 + std::fabs(want)));
          EXPECT_NEAR(cd[i * c_stride + j], want, 1e-12 * (1.0 + std::fabs(want)));
        }
        for (index_t j = n; j < c_stride; ++j) {
          EXPECT_EQ(cf[i * c_stride + j], 1.0f);
          EXPECT_EQ(cd[i * c_stride + j], 1.0);
        }
      }
    }
}

TEST(Blas, SyrkFillsTheUpperTriangleOnlyForBothOrientations) {
  const index_t n = 6, k = 11;
  for (bool transpose : {false, true}) {
    const Floats a = normal_matrix(transpose ? k : n, transpose ? n : k, 3);
    const std::vector<double> ad = to_double(a);
    std::vector<double> c(static_cast<size_t>(n * n), -7.0);
    linalg::dsyrk_upper(transpose, 1.5, ConstMatrixD(ad.data(), a.rows, a.cols), 1.0, MatrixD(c.data(), n, n));
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < n; ++j) {
        if (j < i) {
          EXPECT_EQ(c[i * n + j], -7.0) << "lower triangle written at " << i << ", " << j;
          continue;
        }
        double want = -7.0;
        for (index_t l = 0; l < k; ++l)
          want += 1.5 * op_at(ad, a.cols, transpose, i, l) * op_at(ad, a.cols, transpose, j, l);
        EXPECT_NEAR(c[i * n + j], want, 1e-12 * (1.0 + std::fabs(want)));
      }
  }
}

TEST(Blas, EmptyInnerDimensionScalesC) {
  std::vector<double> c{1.0, 2.0, 3.0, 4.0};
  const double none = 0.0;
  linalg::dgemm(false, false, 1.0, ConstMatrixD(&none, 2, 0), ConstMatrixD(&none, 0, 2), 3.0, MatrixD(c.data(), 2, 2));
  EXPECT_EQ(c, (std::vector<double>{3.0, 6.0, 9.0, 12.0}));
  linalg::dsyrk_upper(true, 1.0, ConstMatrixD(&none, 0, 2), 0.0, MatrixD(c.data(), 2, 2));
  EXPECT_EQ(c, (std::vector<double>{0.0, 0.0, 9.0, 0.0}));  // the lower triangle is left alone
}

TEST(Blas, MismatchedShapesAreBadInput) {
  std::vector<double> x(64, 0.0), y(64, 0.0);
  const auto bad_input = [](auto call) {
    try {
      call();
    } catch (const Error& e) {
      return e.kind() == ErrorKind::bad_input;
    }
    return false;
  };
  const ConstMatrixD a(x.data(), 3, 4), b(x.data(), 5, 2);
  EXPECT_TRUE(bad_input([&] { linalg::dgemm(false, false, 1.0, a, b, 0.0, MatrixD(y.data(), 3, 2)); }));
  EXPECT_TRUE(bad_input(
      [&] { linalg::dgemm(false, true, 1.0, a, ConstMatrixD(x.data(), 2, 4), 0.0, MatrixD(y.data(), 3, 3)); }));
  EXPECT_TRUE(bad_input([&] { linalg::dsyrk_upper(true, 1.0, a, 0.0, MatrixD(y.data(), 3, 3)); }));
  std::vector<float> xf(64, 0.0f), yf(64, 0.0f);
  EXPECT_TRUE(bad_input([&] {
    linalg::sgemm(true, false, 1.0f, ConstMatrixF(xf.data(), 3, 4), ConstMatrixF(xf.data(), 4, 2), 0.0f,
                  MatrixF(yf.data(), 4, 2));
  }));
}

// Views that claim more than INT_MAX rows, or a wider stride, over a one-element buffer: the
// wrappers must refuse them before BLAS reads anything.
TEST(Blas, DimensionsOrStridesAboveIntMaxAreRefused) {
  const index_t huge = index_t{INT_MAX} + 1;
  double x = 1.0, y = 0.0;
  float xf = 1.0f, yf = 0.0f;
  const auto refused = [](auto call) {
    try {
      call();
    } catch (const Error& e) {
      return e.kind() == ErrorKind::failure && std::string(e.what()).find("exceeds BLAS's int") != std::string::npos;
    }
    return false;
  };
  EXPECT_TRUE(refused([&] {
    linalg::dgemm(false, false, 1.0, ConstMatrixD(&x, huge, 1), ConstMatrixD(&x, 1, 1), 0.0, MatrixD(&y, huge, 1));
  }));
  EXPECT_TRUE(refused([&] {
    linalg::sgemm(false, true, 1.0f, ConstMatrixF(&xf, 1, 1), ConstMatrixF(&xf, 1, 1, huge), 0.0f, MatrixF(&yf, 1, 1));
  }));
  EXPECT_TRUE(refused([&] { linalg::dsyrk_upper(true, 1.0, ConstMatrixD(&x, huge, 1), 0.0, MatrixD(&y, 1, 1)); }));
  EXPECT_TRUE(refused([&] { linalg::dsyrk_upper(false, 1.0, ConstMatrixD(&x, 1, 1), 0.0, MatrixD(&y, 1, 1, huge)); }));
}

TEST(ScaledRows, ShiftBringsTheLargestEntryIntoHalfToOne) {
  for (double top : {1e-40, 3e-30, 0.5, 1.0, 7.0, 3e30}) {
    const std::vector<float> xf{0.0f, static_cast<float>(-top), static_cast<float>(top / 3)};
    const std::vector<double> xd{0.0, -top, top / 3};
    const int ef = linalg::pow2_shift(xf.data(), 3), ed = linalg::pow2_shift(xd.data(), 3);
    const double scaled_f = std::fabs(static_cast<double>(xf[1])) * std::pow(2.0, ef);
    const double scaled_d = top * std::pow(2.0, ed);
    EXPECT_GE(scaled_f, 0.5) << top;
    EXPECT_LT(scaled_f, 1.0) << top;
    EXPECT_GE(scaled_d, 0.5) << top;
    EXPECT_LT(scaled_d, 1.0) << top;
  }
  const std::vector<float> zeros(4, 0.0f);
  EXPECT_EQ(linalg::pow2_shift(zeros.data(), 4), 0);
  // The whole-matrix shift is the shift of the largest row.
  const std::vector<float> rows{0.0f, 0.0f, 0.25f, -3.0f, 1e-3f, 0.0f};
  EXPECT_EQ(linalg::pow2_shift(ConstMatrixF(rows.data(), 3, 2)), linalg::pow2_shift(rows.data(), 6));
  EXPECT_EQ(linalg::pow2_shift(ConstMatrixF(zeros.data(), 2, 2)), 0);
}

TEST(ScaledRows, DotDoubleIsExactOnIntegersAndTheBoundCoversFloatRounding) {
  const index_t d = 37;
  std::vector<float> a(d), b(d);
  double want = 0.0;
  for (index_t i = 0; i < d; ++i) {
    a[i] = static_cast<float>(i - 18);
    b[i] = static_cast<float>(2 * i + 1);
    want += double(i - 18) * double(2 * i + 1);
  }
  EXPECT_EQ(linalg::dot_double(a.data(), b.data(), d), want);
  // A float dot product of rows scaled below 1 stays within the bound of the exact value.
  const Floats x = normal_matrix(2, 300, 4);
  std::vector<float> sa(300), sb(300);
  linalg::scale_copy(x.data.data(), 300, linalg::pow2_shift(x.data.data(), 300), sa.data());
  linalg::scale_copy(x.data.data() + 300, 300, linalg::pow2_shift(x.data.data() + 300, 300), sb.data());
  float rounded = 0.0f;
  double exact = 0.0, na = 0.0, nb = 0.0;
  for (index_t i = 0; i < 300; ++i) {
    rounded += sa[i] * sb[i];
    exact += double(sa[i]) * sb[i];
    na += double(sa[i]) * sa[i];
    nb += double(sb[i]) * sb[i];
  }
  EXPECT_LE(std::fabs(double(rounded) - exact), linalg::float_dot_error_bound(300, std::sqrt(na), std::sqrt(nb)));
}

// K with columns of very different scales and one all-zero column; G = KᵀK in double.
test::MatD badly_scaled_gram(index_t n, index_t d) {
  const Floats k = normal_matrix(n, d, 5);
  test::MatD K = k.to_double();
  for (index_t c = 0; c < d; ++c) K.col(c) *= std::pow(10.0, double(c) - 2.0);
  K.col(1).setZero();
  return K.transpose() * K;
}

TEST(GramEigen, DecompositionReconstructsTheRidgedGram) {
  const index_t d = 6;
  const test::MatD G = badly_scaled_gram(40, d);
  for (double ridge : {0.0, 1e-3}) {
    const linalg::EquilibratedEigen e = linalg::equilibrated_eigen(G, ridge);
    for (index_t i = 0; i < d; ++i) {
      const double diag = G(i, i) + ridge;
      EXPECT_DOUBLE_EQ(e.inv_sqrt_diag(i), diag > 0.0 ? 1.0 / std::sqrt(diag) : 1.0) << i;
    }
    for (index_t i = 1; i < d; ++i) EXPECT_LE(e.eigenvalues(i - 1), e.eigenvalues(i));
    // V Λ Vᵀ is D^{-1/2}(G + ridge·I)D^{-1/2}, whose entries are at most 1 in magnitude.
    const test::MatD rebuilt = e.eigenvectors * e.eigenvalues.asDiagonal() * e.eigenvectors.transpose();
    const test::MatD want =
        e.inv_sqrt_diag.asDiagonal() * (G + ridge * test::MatD::Identity(d, d)) * e.inv_sqrt_diag.asDiagonal();
    EXPECT_LE((rebuilt - want).cwiseAbs().maxCoeff(), 1e-13);
    EXPECT_LE((e.eigenvectors.transpose() * e.eigenvectors - test::MatD::Identity(d, d)).cwiseAbs().maxCoeff(), 1e-13);
  }
}

TEST(GramEigen, TrapezoidHasTheSameGramAsItsInput) {
  for (const auto& [rows, d] : {std::pair<index_t, index_t>{3, 5}, {5, 5}, {8, 4}}) {
    const test::MatD W = normal_matrix(rows, d, 6).to_double();
    const TrapezoidalForm form = linalg::trapezoid_of(W);
    ASSERT_EQ(form.rows(), std::min(rows, d));
    ASSERT_EQ(form.dim(), d);
    const std::vector<double> dense = form.dense();
    const Eigen::Map<const test::MatD> T(dense.data(), form.rows(), d);
    for (index_t i = 0; i < form.rows(); ++i)
      for (index_t c = 0; c < i; ++c) EXPECT_EQ(T(i, c), 0.0);
    const test::MatD got = T.transpose() * T, want = W.transpose() * W;
    EXPECT_LE((got - want).cwiseAbs().maxCoeff(), 1e-12 * want.cwiseAbs().maxCoeff());
  }
  EXPECT_EQ(linalg::trapezoid_of(test::MatD(0, 4)).rows(), 0);
}

TEST(FiniteRows, NamesTheFirstBadRowAndIgnoresStridePadding) {
  const index_t rows = 5, cols = 3, stride = 4;
  std::vector<float> x(static_cast<size_t>(rows * stride), 1.0f);
  for (index_t r = 0; r < rows; ++r) x[r * stride + cols] = NAN;  // padding outside the view
  const ConstMatrixF view(x.data(), rows, cols, stride);
  EXPECT_EQ(first_nonfinite_row(view), rows);
  EXPECT_NO_THROW(require_finite_rows(view, "keys"));
  x[3 * stride + 2] = -INFINITY;
  x[4 * stride + 0] = NAN;
  EXPECT_EQ(first_nonfinite_row(view), 3);
  EXPECT_EQ(first_nonfinite_row(view, 0, 3), 3);  // none in [0, 3): the end
  EXPECT_EQ(first_nonfinite_row(view, 4, 5), 4);
  try {
    require_finite_rows(view, "keys", 100);  // a block whose first row is row 100 of the matrix
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::bad_input);
    EXPECT_EQ(std::string(e.what()), "keys: row 103 holds a NaN or an infinity");
  }
}

}  // namespace
}  // namespace levattn
