// ℓp Lewis weights against independent double-precision checks (acceptance 1 of issue 4).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "levattn/scores/lewis.hpp"
#include "reference.hpp"
#include "scores/anderson_mixing.hpp"

namespace levattn::test {
namespace {

const double kPowers[] = {0.5, 1.0, 1.5, 3.0, 4.0, 6.0};

Floats from_double(const MatD& m) {
  Floats f{m.rows(), m.cols(), std::vector<float>(static_cast<size_t>(m.size()))};
  for (index_t i = 0; i < m.size(); ++i) f.data[i] = static_cast<float>(m.data()[i]);
  return f;
}

// max_j |w_j − (k_jᵀ(KᵀW^{1−2/p}K)⁻¹k_j)^{p/2}| / w_j, all in double with an LDLᵀ solve — the
// Lewis equation checked independently of the library's Gram/eigen route.
double lewis_equation_error(const Floats& K, const std::vector<double>& w, double p) {
  const MatD k = K.to_double();
  Eigen::VectorXd u(k.rows());
  for (index_t j = 0; j < k.rows(); ++j) u(j) = w[j] > 0 ? std::pow(w[j], 1.0 - 2.0 / p) : 0.0;
  const MatD M = k.transpose() * u.asDiagonal() * k;
  const Eigen::LDLT<MatD> ldlt(M);
  double worst = 0.0;
  for (index_t j = 0; j < k.rows(); ++j) {
    const Eigen::VectorXd kj = k.row(j).transpose();
    const double want = std::pow(kj.dot(ldlt.solve(kj)), p / 2.0);
    worst = std::max(worst, std::abs(w[j] - want) / std::max(w[j], want));
  }
  return worst;
}

TEST(Lewis, PTwoEqualsLeverageScores) {
  for (const std::string kind : {"gaussian", "heavy_tailed", "cond1e3"}) {
    const Floats K = make_keys(kind, 1200, 10, 2);
    const LewisWeights w = lewis_weights(K.view(), 2.0);
    const std::vector<double> tau = leverage_reference(K, kDefaultRcond);
    for (size_t j = 0; j < tau.size(); ++j) EXPECT_NEAR(w.weights[j], tau[j], 1e-5 * tau[j]) << kind;
    EXPECT_LE(w.residual, 1e-6);
  }
}

// Rows of equal norm along d orthogonal directions, direction i repeated c_i times: for every p
// the Lewis weights are 1/c_i (the weighted Gram is diagonal; the fixed point is then explicit).
TEST(Lewis, OrthogonalEqualNormRowsGiveTheClosedForm) {
  const index_t d = 6;
  const index_t copies[d] = {1, 2, 3, 5, 8, 13};
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal;
  MatD g(d, d);
  for (index_t i = 0; i < g.size(); ++i) g.data()[i] = normal(rng);
  const MatD V = Eigen::HouseholderQR<MatD>(g).householderQ();  // random orthonormal directions
  std::vector<index_t> direction;
  for (index_t i = 0; i < d; ++i)
    for (index_t c = 0; c < copies[i]; ++c) direction.push_back(i);
  std::shuffle(direction.begin(), direction.end(), rng);
  MatD k(static_cast<index_t>(direction.size()), d);
  for (size_t j = 0; j < direction.size(); ++j) k.row(j) = 3.0 * ((j % 2) ? 1.0 : -1.0) * V.row(direction[j]);
  const Floats K = from_double(k);
  for (double p : kPowers) {
    const LewisWeights w = lewis_weights(K.view(), p);
    for (size_t j = 0; j < direction.size(); ++j)
      EXPECT_NEAR(w.weights[j], 1.0 / copies[direction[j]], 1e-5 / copies[direction[j]]) << "p " << p;
  }
}

TEST(Lewis, InvariantUnderInvertibleColumnTransforms) {
  const Floats K = make_keys("gaussian", 800, 8, 5);
  std::mt19937_64 rng(9);
  std::normal_distribution<double> normal;
  MatD T(8, 8);
  for (index_t i = 0; i < T.size(); ++i) T.data()[i] = normal(rng);
  const Floats KT = from_double(K.to_double() * T);
  for (double p : kPowers) {
    const LewisWeights a = lewis_weights(K.view(), p), b = lewis_weights(KT.view(), p);
    double worst = 0.0;
    for (size_t j = 0; j < a.weights.size(); ++j)
      worst = std::max(worst, std::abs(a.weights[j] - b.weights[j]) / a.weights[j]);
    EXPECT_LE(worst, 1e-4) << "p " << p;  // float rounding of K·T is the only difference
  }
}

TEST(Lewis, SumEqualsRankAndResidualMeetsTheTolerance) {
  for (const std::string kind : {"gaussian", "heavy_tailed", "low_rank", "duplicated", "zero_column"}) {
    for (double p : kPowers) {
      const Floats K = make_keys(kind, 1500, 10, 7);
      const LewisWeights w = lewis_weights(K.view(), p);
      const index_t rank = built_rank(kind, 10);
      EXPECT_EQ(w.rank, rank) << kind << " p " << p;
      EXPECT_NEAR(std::accumulate(w.weights.begin(), w.weights.end(), 0.0), double(rank), 2e-5 * rank)
          << kind << " p " << p;
      EXPECT_LE(w.residual, 1e-6) << kind << " p " << p;
      if (kind == "gaussian" || kind == "heavy_tailed") {
        EXPECT_LE(lewis_equation_error(K, w.weights, p), 1e-5) << kind << " p " << p;
        std::printf("%-12s p = %.1f: %lld iterations (%s), residual %.2e\n", kind.c_str(), p, (long long)w.iterations,
                    w.method.c_str(), w.residual);
      }
    }
  }
}

TEST(Lewis, SensitivityBoundHoldsForEveryQuery) {
  const Floats K = make_keys("heavy_tailed", 600, 5, 11);
  const MatD k = K.to_double();
  for (double p : kPowers) {
    const LewisWeights w = lewis_weights(K.view(), p);
    const std::vector<double> s = w.sensitivities();
    // The worst queries for key j lie near its dual direction; try those and random ones.
    const Floats Q = make_queries(K, 300, 3);
    const MatD prod = Q.to_double() * k.transpose();
    for (index_t i = 0; i < prod.rows(); ++i) {
      const double total = prod.row(i).array().abs().pow(p).sum();
      if (total == 0.0) continue;
      for (index_t j = 0; j < prod.cols(); ++j)
        ASSERT_LE(std::pow(std::abs(prod(i, j)), p) / total, s[j] * (1 + 1e-6)) << "p " << p;
    }
  }
}

TEST(Lewis, ZeroRowsGetZeroWeight) {
  Floats K = make_keys("gaussian", 300, 4, 1);
  for (index_t c = 0; c < 4; ++c) K.data[17 * 4 + c] = 0.0f;
  for (double p : kPowers) {
    const LewisWeights w = lewis_weights(K.view(), p);
    EXPECT_EQ(w.weights[17], 0.0);
    EXPECT_NEAR(std::accumulate(w.weights.begin(), w.weights.end(), 0.0), 4.0, 8e-5);
  }
}

TEST(Lewis, ThreadCountDoesNotChangeAnyBit) {
  const Floats K = make_keys("heavy_tailed", 5000, 12, 2);
  const int before = omp_get_max_threads();
  for (double p : {1.0, 3.0, 6.0}) {
    omp_set_num_threads(1);
    const LewisWeights one = lewis_weights(K.view(), p);
    omp_set_num_threads(3);
    const LewisWeights three = lewis_weights(K.view(), p);
    EXPECT_EQ(one.weights, three.weights) << p;
  }
  omp_set_num_threads(before);
}

// Anderson acceleration must change how many evaluations it takes, never the fixed point.
TEST(Lewis, AccelerationChangesOnlyTheIterationCount) {
  LewisOptions plain;
  plain.accelerate = false;
  for (const std::string kind : {"gaussian", "heavy_tailed", "low_rank", "duplicated"}) {
    const Floats K = make_keys(kind, 3000, 12, 4);
    for (double p : {0.5, 1.0, 1.5, 3.0, 3.5}) {
      const LewisWeights fast = lewis_weights(K.view(), p), slow = lewis_weights(K.view(), p, plain);
      double worst = 0.0;
      for (size_t j = 0; j < fast.weights.size(); ++j)
        worst = std::max(worst, std::abs(fast.weights[j] - slow.weights[j]) / std::max(slow.weights[j], 1e-300));
      EXPECT_LE(worst, 5e-6) << kind << " p " << p;  // both within the 1e-6 residual of one fixed point
      EXPECT_LE(fast.iterations, slow.iterations) << kind << " p " << p;
      EXPECT_NE(fast.method.find("anderson"), std::string::npos) << fast.method;
      EXPECT_EQ(slow.method.find("anderson"), std::string::npos) << slow.method;
      std::printf("%-12s p = %.1f: %lld evaluations accelerated (%s), %lld plain\n", kind.c_str(), p,
                  (long long)fast.iterations, fast.method.c_str(), (long long)slow.iterations);
    }
  }
}

// On an affine map x ← A·x + b whose A has three distinct eigenvalues, Anderson with three
// differences is GMRES in disguise: exact after a handful of steps, where the plain iteration
// still carries 0.8^k of its error. −∞ entries pass through.
TEST(AndersonMixing, SolvesAnAffineFixedPointWithFewEigenvalues) {
  const size_t n = 1000;
  const double eigen[3] = {0.8, -0.6, 0.3};
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  std::vector<double> a(n), b(n), fixed(n);
  for (size_t j = 0; j < n; ++j) {
    a[j] = eigen[j % 3];
    b[j] = normal(rng);
    fixed[j] = b[j] / (1.0 - a[j]);
  }
  const double minus_inf = -std::numeric_limits<double>::infinity();
  b[7] = minus_inf;  // an inactive entry: g(x)_7 = −∞
  auto g = [&](const std::vector<double>& x) {
    std::vector<double> y(n);
    for (size_t j = 0; j < n; ++j) y[j] = j == 7 ? minus_inf : a[j] * x[j] + b[j];
    return y;
  };
  detail::AndersonMixing anderson(3, 1.0);
  std::vector<double> x(n, 0.0), next;
  for (int k = 0; k < 6; ++k) {
    anderson.record(x, g(x));
    anderson.propose(next);
    x.swap(next);
  }
  EXPECT_EQ(x[7], minus_inf);
  double worst = 0.0;
  for (size_t j = 0; j < n; ++j)
    if (j != 7) worst = std::max(worst, std::abs(x[j] - fixed[j]) / (1.0 + std::abs(fixed[j])));
  EXPECT_LE(worst, 1e-10);
  anderson.clear();
  EXPECT_EQ(anderson.history(), 0u);
}

TEST(Lewis, IllConditionedKeysStopAtTheRoundingFloorWithinTheReportedAccuracy) {
  // cond(K) = 1e5 (n = 4,000, d = 32): the map's rounding holds the residual near 1e-5 … 1e-4, above
  // the default tolerance 1e-6. The call returns the best iterate with limited_by_rounding, and the
  // Lewis equation solved in double at the returned weights holds to 3× the reported residual.
  const Floats K = make_conditioned(4000, 32, 1e5, 3);
  for (double p : {0.5, 1.0, 3.0, 4.0}) {
    const LewisWeights w = lewis_weights(K.view(), p);
    EXPECT_TRUE(w.limited_by_rounding) << "p " << p;
    EXPECT_GT(w.residual, 1e-6) << "p " << p;
    EXPECT_LE(w.residual, 1e-3) << "p " << p;
    EXPECT_LE(lewis_equation_error(K, w.weights, p), 3.0 * w.residual) << "p " << p;
  }
  LewisOptions strict;  // a stall tolerance below the floor: no result, as before this rule
  strict.stall_tolerance = 1e-7;
  strict.max_iterations = 40;
  try {
    lewis_weights(K.view(), 1.0, strict);
    FAIL() << "a residual stalled above stall_tolerance was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::failure);
    EXPECT_NE(std::string(e.what()).find("did not converge"), std::string::npos) << e.what();
  }
}

TEST(Lewis, WellConditionedKeysAtLargePMeetTheToleranceWithoutStalling) {
  // Mirror descent at large p converges slowly (line-search halvings spend evaluations): the stall
  // rule must not stop it early and blame rounding.
  Floats K = make_keys("gaussian", 4000, 32, 1);
  for (index_t j = 0; j < 4000; j += 50)
    for (index_t c = 0; c < 32; ++c) K.data[j * 32 + c] *= 30.0f;
  for (double p : {16.0, 40.0}) {
    const LewisWeights w = lewis_weights(K.view(), p);
    EXPECT_FALSE(w.limited_by_rounding) << "p " << p;
    EXPECT_LE(w.residual, 1e-6) << "p " << p;
  }
}

TEST(Lewis, RejectsBadInput) {
  const Floats K = make_keys("gaussian", 50, 3, 1);
  for (double p : {0.0, -1.0, double(NAN), double(INFINITY)}) EXPECT_THROW(lewis_weights(K.view(), p), Error);
  EXPECT_THROW(lewis_weights(ConstMatrixF(K.data.data(), 0, 3), 1.0), Error);
  LewisOptions tight;
  tight.max_iterations = 2;
  LewisOptions bad_stall;
  bad_stall.stall_tolerance = 1.0;
  EXPECT_THROW(lewis_weights(K.view(), 1.0, bad_stall), Error);
  try {
    lewis_weights(K.view(), 1.0, tight);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::failure);
    EXPECT_NE(std::string(e.what()).find("did not converge"), std::string::npos);
  }
  Floats bad = K;
  bad.data[33 * 3] = NAN;
  try {
    lewis_weights(bad.view(), 3.0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 33"), std::string::npos) << e.what();
  }
}

// Lewis weights of 16-bit keys, read as they are, equal those of the keys widened to float bit for
// bit, at every p (Cohen–Peng with its accelerations below 4, mirror descent from 4) and on keys
// near the ends of each type's range, with a padded row stride; they also satisfy the Lewis
// equation of the rounded keys in double. A NaN or infinity is named by its row.
template <class T>
void expect_16_bit_lewis_equals_widened(const std::string& kind) {
  const RoundedRows<T> K = round_rows<T>(keys_in_half_range<T>(kind, 1500, 10, 9), 3);
  for (double p : kPowers) {
    const std::string what = std::string(half_type_label<T>()) + " " + kind + " p " + std::to_string(p);
    const LewisWeights w16 = lewis_weights(K.view(), p), w32 = lewis_weights(K.widened.view(), p);
    EXPECT_EQ(w16.weights, w32.weights) << what;
    EXPECT_EQ(w16.iterations, w32.iterations) << what;
    EXPECT_EQ(w16.rank, w32.rank) << what;
    EXPECT_LE(lewis_equation_error(K.widened, w16.weights, p), 1e-5) << what;
  }
  RoundedRows<T> bad = K;
  bad.data[static_cast<size_t>(777 * bad.stride + 4)] = round_to<T>(std::numeric_limits<float>::infinity());
  try {
    lewis_weights(bad.view(), 3.0);
    ADD_FAILURE() << half_type_label<T>() << ": accepted an infinity";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "keys: row 777 holds a NaN or an infinity");
  }
}

TEST(Lewis, SixteenBitKeysGiveTheWeightsOfTheirWidenedValues) {
  for (const std::string kind : {"gaussian", "heavy_tailed", "huge", "tiny"}) {
    expect_16_bit_lewis_equals_widened<BFloat16>(kind);
    expect_16_bit_lewis_equals_widened<Half>(kind);
  }
}

}  // namespace
}  // namespace levattn::test
