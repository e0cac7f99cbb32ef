// Leverage scores and Gram summaries of 16-bit keys (f16, bf16), read as they are: against an SVD in
// double of the rounded keys (widened to float, exactly), bit for bit against the float path on
// the same widened keys, the universal-set guarantee w.r.t. the rounded keys, and NaN/Inf rows.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "levattn/core/finite_rows.hpp"
#include "levattn/core/half.hpp"
#include "levattn/linalg/gram.hpp"
#include "levattn/scores/leverage.hpp"
#include "levattn/select/key_scores.hpp"
#include "linalg/kernels.hpp"
#include "linalg/widen_rows.hpp"
#include "reference.hpp"

namespace levattn::test {
namespace {

double condition(const Floats& K) {
  const Eigen::JacobiSVD<Eigen::MatrixXd> svd(Eigen::MatrixXd(K.to_double()));
  const Eigen::VectorXd& s = svd.singularValues();
  return s(0) / s(s.size() - 1);
}

double max_relative_error(const std::vector<double>& got, const std::vector<double>& want) {
  double worst = 0.0;
  for (size_t j = 0; j < want.size(); ++j)
    worst = std::max(worst, std::abs(got[j] - want[j]) / std::max(want[j], 1e-300));
  return worst;
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

const std::vector<std::string>& half_kinds() {
  static const std::vector<std::string> all{"gaussian", "low_rank", "duplicated", "heavy_tailed", "huge", "tiny"};
  return all;
}

template <class T>
void expect_matches_reference(const std::string& kind, index_t n, index_t d) {
  for (std::uint64_t seed = 1; seed <= 2; ++seed) {
    const RoundedRows<T> K = round_rows<T>(keys_in_half_range<T>(kind, n, d, seed));
    const std::string what =
        std::string(half_type_label<T>()) + " " + kind + " d " + std::to_string(d) + " seed " + std::to_string(seed);
    // Rounding to 16 bits fills in every direction the float keys lacked (low_rank): the rounded
    // keys have full rank, and their cond is what sets the accuracy (leverage.hpp).
    const double cond = condition(K.widened);
    ASSERT_LE(cond, 1e6) << what;
    const double tolerance = cond <= 1e3 ? 1e-4 : 1e-2;
    LeverageScorer scorer(d);
    scorer.fit(K.view());
    const std::vector<double> tau = scorer.scores(K.view());
    const std::vector<double> want = leverage_reference(K.widened, 0.0, d);
    EXPECT_EQ(scorer.rank(), d) << what;
    EXPECT_LE(max_relative_error(tau, want), tolerance) << what << " cond " << cond;
    EXPECT_NEAR(std::accumulate(tau.begin(), tau.end(), 0.0), double(d), tolerance * d) << what;
  }
}

class LeverageHalfOnKind : public ::testing::TestWithParam<std::string> {};

TEST_P(LeverageHalfOnKind, MatchesDoubleSvdOfTheRoundedKeys) {
  for (index_t d : {24, 64, 7}) {
    expect_matches_reference<BFloat16>(GetParam(), 1500, d);
    expect_matches_reference<Half>(GetParam(), 1500, d);
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, LeverageHalfOnKind, ::testing::ValuesIn(half_kinds()),
                         [](const auto& info) { return info.param; });

// The Gram summary, scores and normalisers of 16-bit keys equal, bit for bit, those of the float
// path on the widened keys: one add(), odd splits, a strided buffer, and enough blocks that the
// summary works in parallel tasks.
template <class T>
void expect_bit_identical(const std::string& kind, index_t n, index_t d, index_t pad) {
  const RoundedRows<T> K = round_rows<T>(keys_in_half_range<T>(kind, n, d, 7), pad);
  const std::string what = std::string(half_type_label<T>()) + " " + kind + " n " + std::to_string(n) + " d " +
                           std::to_string(d) + " pad " + std::to_string(pad);
  GramSummary from_float(d), from_16(d), split_16(d, 1000);
  from_float.add(K.widened.view());
  from_16.add(K.view());
  EXPECT_TRUE(same_bits(from_16.gram(), from_float.gram())) << what;
  EXPECT_EQ(from_16.to_bytes(), from_float.to_bytes()) << what;

  // Split unevenly (single rows, pieces crossing block edges) and started at row 1000, against a
  // float summary of the same positions built in one call.
  GramSummary float_at_1000(d, 1000);
  float_at_1000.add(K.widened.view());
  for (index_t begin = 0, step = 1; begin < n; begin += step, step = step * 3 + 1)
    split_16.add(K.view().rows_range(begin, std::min(n, begin + step)));
  EXPECT_TRUE(same_bits(split_16.gram(), float_at_1000.gram())) << what;

  // A 16-bit part merged with a float part that continues it: the same bits as one float summary.
  GramSummary head(d), tail(d, n / 2);
  head.add(K.view().rows_range(0, n / 2));
  tail.add(K.widened.view().rows_range(n / 2, n));
  head.merge(tail);
  EXPECT_TRUE(same_bits(head.gram(), from_float.gram())) << what;

  LeverageScorer s16(d), s32(d);
  s16.fit(K.view());
  s32.fit(K.widened.view());
  EXPECT_TRUE(same_bits(s16.scores(K.view()), s32.scores(K.widened.view()))) << what;
  std::vector<double> n16(static_cast<size_t>(n)), n32(static_cast<size_t>(n));
  s16.normalisers(K.view(), n16.data());
  s32.normalisers(K.widened.view(), n32.data());
  EXPECT_TRUE(same_bits(n16, n32)) << what;
  const KeyScores k16 = leverage_key_scores(s16, K.view());
  const KeyScores k32 = leverage_key_scores(s32, K.widened.view());
  EXPECT_TRUE(same_bits(k16.values, k32.values)) << what;
  EXPECT_EQ(k16.rank, k32.rank) << what;
}

TEST(LeverageHalf, BitIdenticalToTheFloatPathOnWidenedKeys) {
  for (const std::string kind : {"gaussian", "heavy_tailed", "huge", "tiny"})
    for (const auto& [n, d, pad] : std::vector<std::tuple<index_t, index_t, index_t>>{
             {3001, 24, 0}, {700, 64, 5}, {333, 7, 1}, {17'999, 16, 3}}) {
      expect_bit_identical<BFloat16>(kind, n, d, pad);
      expect_bit_identical<Half>(kind, n, d, pad);
    }
}

// U = {j : τ_j ≥ ε} from bf16 (and f16) keys holds every key some query gives attention ≥ ε and
// nothing else, w.r.t. the rounded keys: recall 1 above ε(1+1e-4), precision 1 below ε(1−1e-4),
// checked on the attention of explicit queries (random ones, and each key's maximiser G⁺k_j
// in double) against the double-precision reference.
// Returns how many keys U left out, so that callers can see the precision check bites.
template <class T>
index_t expect_universal_set_exact(const std::string& kind, double eps, std::uint64_t seed) {
  const index_t n = eps < 0.1 ? 1200 : 100, d = 16;
  const RoundedRows<T> K = round_rows<T>(keys_in_half_range<T>(kind, n, d, seed));
  const std::string what = std::string(half_type_label<T>()) + " " + kind + " eps " + std::to_string(eps);
  LeverageScorer scorer(d);
  scorer.fit(K.view());
  const UniversalSet u = key_threshold_set(leverage_key_scores(scorer, K.view()), eps);
  EXPECT_TRUE(u.within_bound) << what;
  std::vector<bool> in_u(static_cast<size_t>(n), false);
  for (index_t j : u.indices) in_u[static_cast<size_t>(j)] = true;

  // Random queries (attention_reference gives every entry in double), and each key's best query,
  // the maximiser q_j = G⁺k_j, whose attention <q_j,k_j>²/‖Kq_j‖² is formed in double here.
  const MatD Kd = K.widened.to_double();
  const Eigen::MatrixXd G = Kd.transpose() * Kd;
  const Eigen::MatrixXd Gpinv = G.completeOrthogonalDecomposition().pseudoInverse();
  const Floats Q = make_queries(K.widened, 40, seed + 100);
  const MatD A = attention_reference(Q, K.widened);
  const auto best_attention = [&](index_t j) {
    const Eigen::VectorXd k = Kd.row(j).transpose();
    const Eigen::VectorXd q = Gpinv * k;
    const double norm = (Kd * q).squaredNorm();
    const double at_maximiser = norm > 0 ? k.dot(q) * k.dot(q) / norm : 0.0;
    return std::max(at_maximiser, A.col(j).maxCoeff());
  };
  index_t heavy = 0, confirmed = 0;
  for (index_t j = 0; j < n; ++j) {
    const double best = best_attention(j);
    if (best >= eps * (1 + 1e-4)) {
      ++heavy;
      EXPECT_TRUE(in_u[j]) << what << ": missed key " << j << " with attention " << best;
    }
    if (in_u[j]) {
      ++confirmed;
      EXPECT_GE(best, eps * (1 - 1e-4)) << what << ": key " << j << " in U but no query gives it ε";
    }
  }
  EXPECT_GT(heavy, 0) << what;  // the recall check bites
  return n - confirmed;
}

TEST(LeverageHalf, UniversalSetHasRecallAndPrecisionOneOnTheRoundedKeys) {
  for (const std::string kind : {"gaussian", "low_rank", "duplicated", "heavy_tailed", "huge", "tiny"}) {
    index_t left_out = 0;
    for (std::uint64_t seed = 1; seed <= 2; ++seed)
      for (double eps : {0.01, 0.02, 0.1}) {
        left_out += expect_universal_set_exact<BFloat16>(kind, eps, seed);
        left_out += expect_universal_set_exact<Half>(kind, eps, seed);
      }
    EXPECT_GT(left_out, 0) << kind << ": U held every key in every case";
  }
}

// A NaN or an infinity in a 16-bit row is refused, naming the row, wherever the row falls: in a
// partial block at either end or in a whole block; the summary is left as it was.
template <class T>
void expect_nonfinite_refused(std::uint16_t bad_bits) {
  const index_t n = 1000, d = 9;
  for (index_t bad_row : {3, 300, 777, 999}) {
    RoundedRows<T> K = round_rows<T>(normal_matrix(n, d, 5));
    K.data[bad_row * K.stride + 4].bits = bad_bits;
    const std::string message = "keys: row " + std::to_string(bad_row) + " holds a NaN or an infinity";
    const std::string what = std::string(half_type_label<T>()) + " row " + std::to_string(bad_row);
    EXPECT_EQ(first_nonfinite_row(K.view()), bad_row) << what;
    GramSummary summary(d, 100);  // starts mid-block: partial blocks at both ends
    summary.add(K.view().rows_range(0, 2));
    const std::vector<std::uint8_t> before = summary.to_bytes();
    try {
      summary.add(K.view().rows_range(2, n));
      ADD_FAILURE() << what << ": no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::bad_input) << what;
      // Rows are counted within the view passed to add().
      EXPECT_EQ(std::string(e.what()), "keys: row " + std::to_string(bad_row - 2) + " holds a NaN or an infinity")
          << what;
    }
    EXPECT_EQ(summary.to_bytes(), before) << what;
    LeverageScorer scorer(d);
    try {
      scorer.fit(K.view());
      ADD_FAILURE() << what << ": fit accepted it";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << what << ": " << e.what();
    }
    RoundedRows<T> clean = round_rows<T>(normal_matrix(n, d, 6));
    scorer.fit(clean.view());
    try {
      (void)scorer.scores(K.view());
      ADD_FAILURE() << what << ": scores accepted it";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::bad_input) << what;
      EXPECT_EQ(std::string(e.what()), message) << what;
    }
  }
}

TEST(LeverageHalf, NonFiniteRowsAreRefusedByRow) {
  expect_nonfinite_refused<BFloat16>(0x7f80);  // +inf
  expect_nonfinite_refused<BFloat16>(0xffc1);  // a NaN
  expect_nonfinite_refused<Half>(0xfc00);      // −inf
  expect_nonfinite_refused<Half>(0x7e01);      // a NaN
}

// Both kernel sets widen f16 to the bits of half_to_float for every one of the 65,536 patterns
// (zeros of both signs, subnormals, infinities), NaNs to NaNs; and widen_rows (the active set) too,
// at row lengths that leave tails.
TEST(LeverageHalf, HalfWideningIsExactForEveryBitPattern) {
  std::vector<Half> all(65536);
  for (std::uint32_t h = 0; h < 65536; ++h) all[h].bits = static_cast<std::uint16_t>(h);
  const auto expect_exact = [&](const std::vector<float>& out, const std::string& what) {
    for (std::uint32_t h = 0; h < out.size(); ++h) {
      const float want = half_to_float(static_cast<std::uint16_t>(h));
      if (std::isnan(want))
        ASSERT_TRUE(std::isnan(out[h])) << what << std::hex << " 0x" << h;
      else
        ASSERT_EQ(std::memcmp(&out[h], &want, sizeof want), 0) << what << std::hex << " 0x" << h;
    }
  };
  std::vector<kernels::KernelSet> sets = {kernels::generic_kernels()};
  if (kernels::use_avx2()) sets.push_back(kernels::avx2_kernels());
  if (kernels::use_avx512()) sets.push_back(kernels::avx512_kernels());
  for (const auto& set : sets)
    for (index_t len : {65536, 7, 33, 1}) {
      std::vector<float> out(all.size());
      for (index_t i = 0; i < 65536; i += len)
        set.widen_half(all.data() + i, std::min<index_t>(len, 65536 - i), out.data() + i);
      expect_exact(out, std::string(set.name) + " len " + std::to_string(len));
    }
  for (index_t cols : {256, 13}) {
    std::vector<float> out(all.size());
    const index_t rows = 65536 / cols;
    widen_rows(MatrixView<const Half>(all.data(), rows, cols), 0, rows, out.data());
    out.resize(static_cast<size_t>(rows * cols));
    expect_exact(out, "widen_rows cols " + std::to_string(cols));
  }
}

TEST(LeverageHalf, FirstNonfiniteRowOnFloatViewsIsUnchanged) {
  Floats K = normal_matrix(10, 3, 2);
  EXPECT_EQ(first_nonfinite_row(K.view()), 10);
  K.data[6 * 3 + 1] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(first_nonfinite_row(K.view()), 6);
  EXPECT_EQ(first_nonfinite_row(K.view(), 7, 10), 10);
  try {
    require_finite_rows(K.view().rows_range(5, 10), "keys", 5);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "keys: row 6 holds a NaN or an infinity");
  }
}

TEST(LeverageHalf, WrongWidthIsRefused) {
  const RoundedRows<BFloat16> K = round_rows<BFloat16>(normal_matrix(20, 5, 1));
  LeverageScorer scorer(4);
  EXPECT_THROW(scorer.fit(K.view()), Error);
  scorer.fit(round_rows<BFloat16>(normal_matrix(20, 4, 1)).view());
  EXPECT_THROW((void)scorer.scores(K.view()), Error);
  GramSummary summary(4);
  EXPECT_THROW(summary.add(round_rows<Half>(normal_matrix(20, 5, 1)).view()), Error);
}

}  // namespace
}  // namespace levattn::test
