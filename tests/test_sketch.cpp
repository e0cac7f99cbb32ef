// Sketching operators against a dense product in double, their structure, their embedding
// quality, and their determinism.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "levattn/linalg/sketch.hpp"
#include "reference.hpp"

namespace levattn::test {
namespace {

const SketchKind kAllKinds[] = {SketchKind::count_sketch, SketchKind::sparse_sign, SketchKind::gaussian,
                                SketchKind::srht};

MatD sketch_of(const Floats& K, SketchOptions o, index_t block = 0) {
  Sketch s(K.cols, o);
  if (block <= 0) {
    s.add(K.view());
  } else {
    for (index_t b = 0; b < K.rows; b += block) s.add(K.view().rows_range(b, std::min(K.rows, b + block)));
  }
  const std::vector<double> sk = s.sketch();
  return Eigen::Map<const MatD>(sk.data(), o.rows, K.cols);
}

// S itself (m × n), by sketching the n×n identity.
MatD dense_operator(index_t n, SketchOptions o) {
  Floats I{n, n, std::vector<float>(static_cast<size_t>(n * n), 0.0f)};
  for (index_t i = 0; i < n; ++i) I.data[i * n + i] = 1.0f;
  return sketch_of(I, o);
}

TEST(Sketch, EqualsDenseOperatorTimesKeys) {
  const Floats K = make_keys("gaussian", 300, 7, 1);
  for (SketchKind kind : kAllKinds) {
    const SketchOptions o{kind, 40, 4, 9};
    const MatD S = dense_operator(300, o);
    const MatD want = S * K.to_double();
    const MatD got = sketch_of(K, o, 77);
    EXPECT_LE((got - want).cwiseAbs().maxCoeff(), 1e-12 * want.cwiseAbs().maxCoeff()) << sketch_kind_name(kind);
  }
}

TEST(Sketch, OperatorsHaveTheirStructure) {
  const index_t n = 2000, m = 64;
  for (SketchKind kind : kAllKinds) {
    const SketchOptions o{kind, m, 8, 3};
    const MatD S = dense_operator(n, o);
    const std::string what = sketch_kind_name(kind);
    // E[SᵀS] = I: the squared column norms average 1.
    EXPECT_NEAR(S.colwise().squaredNorm().mean(), 1.0, 0.05) << what;
    if (kind == SketchKind::count_sketch || kind == SketchKind::sparse_sign) {
      const index_t s = kind == SketchKind::count_sketch ? 1 : 8;
      for (index_t j = 0; j < n; ++j) {
        index_t nonzeros = 0;
        for (index_t i = 0; i < m; ++i)
          if (S(i, j) != 0.0) {
            ++nonzeros;
            EXPECT_DOUBLE_EQ(std::abs(S(i, j)), 1.0 / std::sqrt(double(s))) << what;
          }
        EXPECT_EQ(nonzeros, s) << what << " column " << j;
      }
    }
    if (kind == SketchKind::srht) {
      EXPECT_LE((S.cwiseAbs().array() - 1.0 / std::sqrt(double(m))).abs().maxCoeff(), 1e-15);
    }
    if (kind == SketchKind::gaussian) {
      const double var = S.squaredNorm() / double(S.size());
      EXPECT_NEAR(var * m, 1.0, 0.03);
      EXPECT_NEAR(S.mean(), 0.0, 3.0 / std::sqrt(double(S.size() * m)));
    }
  }
}

// Singular values of S·U (U an orthonormal basis of range K) lie within 1 ± η,
// η = √(d/m) + √(2 ln(2/δ)/m) at δ = 1e-3 — the Gaussian bound approximate leverage relies on —
// on random keys and on coherent keys (a few keys carry whole directions).
TEST(Sketch, EmbedsTheColumnSpace) {
  const index_t n = 6000, d = 10, m = 600;
  Floats coherent = make_keys("gaussian", n, d, 5);
  for (index_t i = 0; i < n * d; ++i) coherent.data[i] *= 1e-3f;
  for (index_t c = 0; c < d; ++c) coherent.data[(c * 37) * d + c] = 1.0f;  // leverage ≈ 1 each
  const Floats random = make_keys("gaussian", n, d, 6);
  for (const Floats* K : {&random, static_cast<const Floats*>(&coherent)}) {
    Eigen::HouseholderQR<MatD> qr(K->to_double());
    const MatD U = qr.householderQ() * MatD::Identity(n, d);
    Floats Uf{n, d, std::vector<float>(static_cast<size_t>(n * d))};
    for (index_t i = 0; i < n * d; ++i) Uf.data[i] = static_cast<float>(U.data()[i]);
    const double eta = std::sqrt(double(d) / m) + std::sqrt(2.0 * std::log(2.0 / 1e-3) / m);
    for (SketchKind kind : {SketchKind::sparse_sign, SketchKind::gaussian, SketchKind::srht}) {
      for (std::uint64_t seed = 1; seed <= 6; ++seed) {
        const index_t s = seed % 2 ? 8 : 2;  // 2: the default of approximate leverage scores
        const Eigen::JacobiSVD<Eigen::MatrixXd> svd(Eigen::MatrixXd(sketch_of(Uf, {kind, m, s, seed})));
        const auto& sv = svd.singularValues();
        EXPECT_LE(sv(0), 1.0 + eta) << sketch_kind_name(kind) << " seed " << seed;
        EXPECT_GE(sv(d - 1), 1.0 - eta) << sketch_kind_name(kind) << " seed " << seed;
      }
    }
  }
}

TEST(Sketch, BlockSplitAndThreadCountDoNotMatter) {
  const Floats K = make_keys("heavy_tailed", 5000, 12, 2);
  const int before = omp_get_max_threads();
  for (SketchKind kind : kAllKinds) {
    const SketchOptions o{kind, kind == SketchKind::gaussian ? 50 : 300, 8, 4};
    omp_set_num_threads(1);
    const MatD one = sketch_of(K, o);
    omp_set_num_threads(3);
    const MatD three = sketch_of(K, o);
    const MatD blocks = sketch_of(K, o, 999);
    omp_set_num_threads(before);
    EXPECT_TRUE(one == three) << sketch_kind_name(kind) << ": thread count changed bits";
    if (kind == SketchKind::count_sketch || kind == SketchKind::sparse_sign)
      EXPECT_TRUE(one == blocks) << sketch_kind_name(kind) << ": block split changed bits";
    else
      EXPECT_LE((one - blocks).cwiseAbs().maxCoeff(), 1e-12 * one.cwiseAbs().maxCoeff()) << sketch_kind_name(kind);
  }
}

TEST(Sketch, SeedsGiveDifferentOperators) {
  const Floats K = make_keys("gaussian", 500, 4, 1);
  for (SketchKind kind : kAllKinds)
    EXPECT_FALSE(sketch_of(K, {kind, 32, 4, 1}) == sketch_of(K, {kind, 32, 4, 2})) << sketch_kind_name(kind);
}

TEST(Sketch, RejectsBadInputAndKeepsItsState) {
  EXPECT_THROW(Sketch(0, {SketchKind::sparse_sign, 10}), Error);
  EXPECT_THROW(Sketch(4, {SketchKind::sparse_sign, 0}), Error);
  EXPECT_THROW(Sketch(4, {SketchKind::sparse_sign, 4, 5}), Error);
  EXPECT_THROW(Sketch(4, {SketchKind::sparse_sign, 100, 65}), Error);
  Floats K = make_keys("gaussian", 10000, 6, 3);
  for (SketchKind kind : kAllKinds) {
    Sketch s(6, {kind, 40, 4, 1});
    s.add(K.view().rows_range(0, 100));
    const std::vector<double> before = s.sketch();
    Floats bad = K;
    bad.data[7777 * 6 + 2] = std::nanf("");
    try {
      s.add(bad.view().rows_range(100, 10000));
      FAIL() << "accepted a NaN";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::bad_input);
      EXPECT_NE(std::string(e.what()).find("row 7777"), std::string::npos) << e.what();
    }
    EXPECT_EQ(s.sketch(), before) << sketch_kind_name(kind);
    EXPECT_EQ(s.count(), 100);
    EXPECT_THROW(s.add(make_keys("gaussian", 5, 5, 1).view()), Error);
  }
}

// 16-bit keys are widened a chunk at a time (8,192 rows at d = 512): 20,000 rows span three
// chunks. Their sketch has the bits of the widened keys' (count_sketch, sparse_sign) or lies within
// 1e-12 of it (gaussian, srht, whose sums a split may reorder); a NaN in the third chunk is named by
// its row in the stream and leaves the sketch and its count as they were.
template <class T>
void expect_sketch_of_16_bit_keys(const RoundedRows<T>& K) {
  const index_t n = K.rows, d = K.cols;
  RoundedRows<T> bad = K;
  bad.data[static_cast<size_t>(17000 * bad.stride + 9)] = round_to<T>(std::numeric_limits<float>::quiet_NaN());
  for (SketchKind kind : kAllKinds) {
    const std::string what = std::string(half_type_label<T>()) + " " + sketch_kind_name(kind);
    const SketchOptions o{kind, kind == SketchKind::gaussian ? 20 : 600, 8, 4};
    Sketch from_16(d, o), from_float(d, o);
    from_16.add(K.view().rows_range(0, 1));  // the stream does not start at a chunk edge
    from_16.add(K.view().rows_range(1, n));
    from_float.add(K.widened.view());
    const MatD got = Eigen::Map<const MatD>(from_16.sketch().data(), o.rows, d);
    const MatD want = Eigen::Map<const MatD>(from_float.sketch().data(), o.rows, d);
    if (kind == SketchKind::count_sketch || kind == SketchKind::sparse_sign)
      EXPECT_TRUE(got == want) << what;
    else
      EXPECT_LE((got - want).cwiseAbs().maxCoeff(), 1e-12 * want.cwiseAbs().maxCoeff()) << what;
    EXPECT_EQ(from_16.count(), n) << what;

    const std::vector<double> before = from_16.sketch();
    try {
      from_16.add(bad.view());
      ADD_FAILURE() << what << ": accepted a NaN";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::bad_input) << what;
      EXPECT_EQ(std::string(e.what()), "keys: row 37000 holds a NaN or an infinity") << what;
    }
    EXPECT_EQ(from_16.sketch(), before) << what;
    EXPECT_EQ(from_16.count(), n) << what;
  }
}

TEST(Sketch, SixteenBitKeysSketchAsTheirWidenedValues) {
  const Floats K = make_keys("heavy_tailed", 20000, 512, 5);
  expect_sketch_of_16_bit_keys(round_rows<BFloat16>(K, 3));
  expect_sketch_of_16_bit_keys(round_rows<Half>(keys_in_half_range<Half>("heavy_tailed", 20000, 512, 5), 3));
}

}  // namespace
}  // namespace levattn::test
