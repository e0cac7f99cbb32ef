// Leverage and ridge scores against an SVD/QR of the same float keys in double.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>

#include "levattn/linalg/gram.hpp"
#include "levattn/linalg/gram_factors.hpp"
#include "levattn/scores/leverage.hpp"
#include "reference.hpp"

namespace levattn::test {
namespace {

// cond(K) over its kept singular values (the rank-r part for rank-deficient K).
double condition(const Floats& K, index_t rank) {
  const Eigen::JacobiSVD<Eigen::MatrixXd> svd(Eigen::MatrixXd(K.to_double()));
  const Eigen::VectorXd& s = svd.singularValues();
  return s(0) / s(rank - 1);
}

double max_relative_error(const std::vector<double>& got, const std::vector<double>& want) {
  double worst = 0.0;
  for (size_t j = 0; j < want.size(); ++j)
    worst = std::max(worst, std::abs(got[j] - want[j]) / std::max(want[j], 1e-300));
  return worst;
}

struct Shape {
  index_t n, d;
};

class LeverageOnKind : public ::testing::TestWithParam<std::tuple<std::string, Shape>> {};

TEST_P(LeverageOnKind, MatchesDoubleSvdAndSumsToRank) {
  const auto& [kind, shape] = GetParam();
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    const Floats K = make_keys(kind, shape.n, shape.d, seed);
    const index_t rank = built_rank(kind, shape.d);
    const double cond = condition(K, rank);
    ASSERT_LE(cond, 1e6 * 1.01) << kind << ": generator left the promised range";
    const double tolerance = cond <= 1e3 ? 1e-4 : 1e-2;

    LeverageScorer scorer(shape.d);
    scorer.fit(K.view());
    const std::vector<double> tau = scorer.scores(K.view());
    const std::vector<double> want = leverage_reference(K, 0.0, rank);
    EXPECT_EQ(scorer.rank(), rank) << kind << " seed " << seed;
    EXPECT_LE(max_relative_error(tau, want), tolerance) << kind << " seed " << seed << " cond " << cond;
    EXPECT_NEAR(std::accumulate(tau.begin(), tau.end(), 0.0), double(rank), tolerance * rank) << kind;
  }
}

INSTANTIATE_TEST_SUITE_P(AllKinds, LeverageOnKind,
                         ::testing::Combine(::testing::ValuesIn(kinds()),
                                            ::testing::Values(Shape{1500, 24}, Shape{700, 64}, Shape{333, 7})),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_d" + std::to_string(std::get<1>(info.param).d);
                         });

// At n = 10⁷ a float or naively summed Gram matrix loses the small directions of keys that
// share a large common part; the double summation in blocks must not.
TEST(Leverage, AccurateAtTenMillionKeys) {
  const index_t n = 10'000'000, d = 3;
  std::vector<float> K(static_cast<size_t>(n * d));
  std::mt19937_64 rng(11);
  std::normal_distribution<float> normal;
  for (index_t i = 0; i < n; ++i) {
    K[i * d + 0] = 1.0f + 1e-2f * normal(rng);  // a common direction carries most energy
    K[i * d + 1] = 1.0f + 1e-2f * normal(rng);
    K[i * d + 2] = normal(rng);
  }
  using MatL = Eigen::Matrix<long double, 3, 3>;
  MatL G = MatL::Zero();
  for (index_t i = 0; i < n; ++i)
    for (index_t a = 0; a < d; ++a)
      for (index_t b = 0; b < d; ++b) G(a, b) += (long double)K[i * d + a] * K[i * d + b];
  const MatL Ginv = G.inverse();
  const Eigen::Matrix<long double, 3, 1> sv = Eigen::JacobiSVD<MatL>(G).singularValues();
  LeverageScorer scorer(d);
  scorer.fit(ConstMatrixF(K.data(), n, d));
  const std::vector<double> gram = scorer.summary().gram();
  for (index_t a = 0; a < d; ++a)
    for (index_t b = 0; b < d; ++b)
      EXPECT_NEAR(gram[a * d + b], double(G(a, b)), 1e-13 * double(G(a, a))) << a << "," << b;
  const std::vector<double> tau = scorer.scores(ConstMatrixF(K.data(), 1000, d));
  double worst = 0.0;
  for (index_t j = 0; j < 1000; ++j) {
    Eigen::Matrix<long double, 3, 1> k;
    k << K[j * d], K[j * d + 1], K[j * d + 2];
    const long double want = k.dot(Ginv * k);
    worst = std::max(worst, double(std::abs(tau[j] - want) / want));
  }
  EXPECT_LE(worst, 1e-6) << "cond(G) = " << double(sv(0) / sv(2));
}

TEST(Leverage, RidgeMatchesAugmentedQr) {
  const Floats K = make_keys("badly_scaled", 800, 16, 7);
  for (double lambda : {1e-3, 1.0, 1e3}) {
    LeverageScorer scorer(16, {lambda});
    scorer.fit(K.view());
    EXPECT_LE(max_relative_error(scorer.scores(K.view()), ridge_reference(K, lambda)), 1e-8) << "lambda " << lambda;
  }
}

TEST(Leverage, InvariantUnderInvertibleColumnTransform) {
  const Floats K = make_keys("gaussian", 500, 12, 3);
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  MatD T(12, 12);
  for (index_t i = 0; i < T.size(); ++i) T.data()[i] = normal(rng);
  const MatD KT = K.to_double() * T;
  Floats transformed{500, 12, std::vector<float>(500 * 12)};
  for (index_t i = 0; i < KT.size(); ++i) transformed.data[i] = static_cast<float>(KT.data()[i]);
  LeverageScorer a(12), b(12);
  a.fit(K.view());
  b.fit(transformed.view());
  // Both against their own reference; float rounding of K·T is the only difference.
  EXPECT_LE(max_relative_error(b.scores(transformed.view()), leverage_reference(transformed, 1e-7)), 1e-6);
  EXPECT_LE(max_relative_error(a.scores(K.view()), b.scores(transformed.view())), 1e-4);
}

TEST(Leverage, MergedSummariesEqualOneSummary) {
  const Floats K = make_keys("gaussian", 1000, 16, 9);
  LeverageScorer whole(16), left(16), right(16);
  whole.fit(K.view());
  left.fit(K.view().rows_range(0, 313));
  right.fit(K.view().rows_range(313, 1000));
  left.merge(right);
  EXPECT_EQ(left.count(), 1000);
  EXPECT_LE(max_relative_error(left.scores(K.view()), whole.scores(K.view())), 1e-12);
}

TEST(Leverage, ThreadCountDoesNotChangeAnyBit) {
  const Floats K = make_keys("heavy_tailed", 20000, 24, 2);
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<double> one = LeverageScorer(24).fit(K.view()).scores(K.view());
  omp_set_num_threads(3);
  const std::vector<double> three = LeverageScorer(24).fit(K.view()).scores(K.view());
  omp_set_num_threads(before);
  EXPECT_EQ(one, three);
}

TEST(Leverage, StridedViewsAreRespected) {
  const Floats K = make_keys("gaussian", 300, 10, 4);
  std::vector<float> padded(300 * 13, std::nanf(""));  // NaN padding must never be read
  for (index_t i = 0; i < 300; ++i)
    std::copy(K.data.begin() + i * 10, K.data.begin() + (i + 1) * 10, padded.begin() + i * 13);
  const ConstMatrixF view(padded.data(), 300, 10, 13);
  LeverageScorer scorer(10);
  scorer.fit(view);
  EXPECT_LE(max_relative_error(scorer.scores(view), leverage_reference(K, 1e-7)), 1e-8);
}

TEST(Leverage, AllZeroKeysHaveRankZero) {
  const std::vector<float> zeros(50 * 4, 0.0f);
  LeverageScorer scorer(4);
  scorer.fit(ConstMatrixF(zeros.data(), 50, 4));
  EXPECT_EQ(scorer.rank(), 0);
  for (double t : scorer.scores(ConstMatrixF(zeros.data(), 50, 4))) EXPECT_EQ(t, 0.0);
}

TEST(Leverage, RejectsNonFiniteKeysNamingTheRow) {
  Floats K = make_keys("gaussian", 1000, 8, 1);
  for (float bad : {std::nanf(""), INFINITY, -INFINITY}) {
    Floats copy = K;
    copy.data[777 * 8 + 3] = bad;
    try {
      LeverageScorer(8).fit(copy.view());
      FAIL() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::bad_input);
      EXPECT_NE(std::string(e.what()).find("row 777"), std::string::npos) << e.what();
    }
  }
}

// The float32 sum of squares (the sketched scores' kernel) against the double one on every kind of
// keys: the measured relative error must lie under the worst-case bound 2·(d+1)·2⁻²⁴·√d·cond(T)
// of a float dot product (the plan's estimate drops the √d); a float overflow falls back to double;
// a NaN is reported with its row. Runs under both kernel sets (test_leverage_generic_kernels).
TEST(TrapezoidalForm, Float32SumsOfSquaresStayWithinTheirRoundingBound) {
  for (const std::string& kind : kinds()) {
    for (const index_t d : {7, 64, 100}) {
      const Floats K = make_keys(kind, 1200, d, 5);
      GramSummary summary(d);
      summary.add(K.view());
      const GramFactors f = factor_gram(summary.gram(), d, 0.0, kDefaultRcond);
      if (f.rank == 0) continue;
      std::vector<double> exact(static_cast<size_t>(K.rows)), fast(exact.size());
      f.inverse_root.sum_squares(K.view(), exact.data(), "keys");
      f.inverse_root.sum_squares_float32(K.view(), fast.data(), "keys");
      const double cond = std::sqrt(f.eigenvalues.front() / f.eigenvalues[static_cast<size_t>(f.rank - 1)]);
      const double bound = 2.0 * double(d + 1) * std::ldexp(1.0, -24) * std::sqrt(double(d)) * cond;
      double worst = 0.0;
      for (size_t j = 0; j < exact.size(); ++j)
        if (exact[j] > 1e-9) worst = std::max(worst, std::abs(fast[j] - exact[j]) / exact[j]);
      EXPECT_LE(worst, bound) << kind << " d " << d << " cond(T) " << cond;
      if (d == 64)
        std::printf("%-13s d = 64: cond(T) %.3g, float error %.2e, estimate 2d·u·cond %.2e, bound %.2e\n", kind.c_str(),
                    cond, worst, 2.0 * 64 * std::ldexp(1.0, -24) * cond, bound);
    }
  }
}

// Keys near the float range's ends give factors near its other end (T ~ 1/‖k‖): the float copy
// of T must neither flush to subnormals nor overflow.
TEST(TrapezoidalForm, Float32KeepsItsPrecisionForExtremeMagnitudes) {
  const index_t n = 200000, d = 4;  // ‖column‖ ≈ √n·1e37: T ~ 1e-40, below float's normal range
  for (const float scale : {2e37f, 3e-37f}) {
    Floats K = make_keys("gaussian", n, d, 6);
    for (float& x : K.data) x *= scale;
    GramSummary summary(d);
    summary.add(K.view());
    const GramFactors f = factor_gram(summary.gram(), d, 0.0, kDefaultRcond);
    std::vector<double> exact(static_cast<size_t>(n)), fast(exact.size());
    f.inverse_root.sum_squares(K.view(), exact.data(), "keys");
    f.inverse_root.sum_squares_float32(K.view(), fast.data(), "keys");
    double worst = 0.0;
    for (size_t j = 0; j < exact.size(); ++j)
      if (exact[j] > 0.0) worst = std::max(worst, std::abs(fast[j] - exact[j]) / exact[j]);
    EXPECT_LE(worst, 1e-5) << "scale " << scale;
  }
}

TEST(TrapezoidalForm, Float32OverflowFallsBackToDoubleAndNaNNamesTheRow) {
  const index_t d = 16, n = 250;  // one block of the kernels
  std::vector<double> T(static_cast<size_t>(d * d), 0.0);
  for (index_t i = 0; i < d; ++i)
    for (index_t c = i; c < d; ++c) T[i * d + c] = 1.0;  // (T x)_0 = Σ_c x_c
  const TrapezoidalForm form(T, d, d);
  Floats X = make_keys("gaussian", n, d, 3);
  for (index_t c = 0; c < d; ++c) X.data[5 * d + c] = 3e38f;  // (T x)_0 ≈ 5e39: beyond float, not double
  std::vector<double> exact(static_cast<size_t>(n)), fast(exact.size());
  form.sum_squares(X.view(), exact.data(), "keys");
  form.sum_squares_float32(X.view(), fast.data(), "keys");
  EXPECT_TRUE(std::isfinite(exact[5]) && exact[5] > 1e79);
  EXPECT_EQ(fast, exact);  // the overflowing block was recomputed in double
  X.data[200 * d + 4] = NAN;
  try {
    form.sum_squares_float32(X.view(), fast.data(), "keys");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 200"), std::string::npos) << e.what();
  }
}

TEST(Leverage, RejectsBadParameters) {
  EXPECT_THROW(LeverageScorer(0), Error);
  EXPECT_THROW(LeverageScorer(4, {-1.0}), Error);
  EXPECT_THROW(LeverageScorer(4, {0.0, 0.0}), Error);
  EXPECT_THROW(LeverageScorer(4, {0.0, 1.5}), Error);
  const Floats K = make_keys("gaussian", 20, 5, 1);
  EXPECT_THROW(LeverageScorer(4).fit(K.view()), Error);
}

}  // namespace
}  // namespace levattn::test
