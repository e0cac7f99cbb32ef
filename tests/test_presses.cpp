// KV-cache presses (eval/presses.hpp) against independent computations in double: leverage, ridge
// and Lewis scores from reference.hpp, key norms, causal attention column sums (H2O) and the pooled
// window attention (SnapKV) entry by entry, the sketched scores within their factor, and a batch
// of heads pressed head by head with its group of query heads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "levattn/core/error.hpp"
#include "levattn/eval/presses.hpp"
#include "reference.hpp"

namespace levattn::test {
namespace {

// Causal attention of query rows [first, n) of Q (n×d) over K (n×d), entry by entry in double:
// row i of the result (i − first) weighs keys 0..i; softmax or |x|^p with scale c.
MatD causal_attention(const Floats& Q, const Floats& K, index_t first, bool softmax, double p, double c) {
  const index_t n = K.rows;
  MatD A = MatD::Zero(n - first, n);
  for (index_t i = first; i < n; ++i) {
    std::vector<double> lw(static_cast<size_t>(i + 1));
    for (index_t j = 0; j <= i; ++j) {
      double s = 0.0;
      for (index_t t = 0; t < K.cols; ++t) s += double(Q.data[i * Q.cols + t]) * K.data[j * K.cols + t];
      lw[j] = softmax ? c * s : (s == 0.0 ? -INFINITY : p * std::log(std::abs(c * s)));
    }
    const double top = *std::max_element(lw.begin(), lw.end());
    if (top == -INFINITY) continue;
    double sum = 0.0;
    for (double x : lw) sum += std::exp(x - top);
    for (index_t j = 0; j <= i; ++j) A(i - first, j) = std::exp(lw[j] - top) / sum;
  }
  return A;
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double rel,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t j = 0; j < got.size(); ++j)
    EXPECT_NEAR(got[j], want[j], rel * (1 + std::abs(want[j]))) << what << " key " << j;
}

TEST(Presses, KeyOnlyPressesMatchDoubleReferences) {
  for (const std::string kind : {"gaussian", "low_rank", "heavy_tailed", "duplicated", "huge", "tiny"}) {
    const Floats K = make_keys(kind, 90, 7, 3);
    const std::vector<ConstMatrixF> none;
    expect_close(press_scores("leverage", none, K.view(), 0), leverage_reference(K, kDefaultRcond), 1e-6,
                 kind + " leverage");
    double fro = 0.0;
    for (float x : K.data) fro += double(x) * x;
    PressOptions o;
    o.key_rules.ridge_fraction = 0.2;
    expect_close(press_scores("ridge", none, K.view(), 0, o), ridge_reference(K, 0.2 * fro / 7), 1e-6, kind + " ridge");
    std::vector<double> norms(90, 0.0);
    for (index_t j = 0; j < 90; ++j)
      for (index_t t = 0; t < 7; ++t) norms[j] += double(K.data[j * 7 + t]) * K.data[j * 7 + t];
    expect_close(press_scores("key-norm", none, K.view(), 0), norms, 1e-12, kind + " key-norm");
  }
  // ℓ1 Lewis weights need full column rank for the plain reference iteration.
  const Floats K = make_keys("gaussian", 90, 7, 4);
  expect_close(press_scores("lewis", {}, K.view(), 0), lewis_reference(K, 1.0), 1e-4, "lewis");
  // streaming keeps the sinks and the latest keys; random is a permutation that differs by head
  PressOptions o;
  o.key_rules.sinks = 3;
  std::vector<index_t> want = {0, 1, 2};
  for (index_t j = 83; j < 90; ++j) want.push_back(j);
  EXPECT_EQ(keep_top_k(press_scores("streaming", {}, K.view(), 0, o), 10), want);
  std::vector<double> r0 = press_scores("random", {}, K.view(), 0), r1 = press_scores("random", {}, K.view(), 1);
  EXPECT_NE(r0, r1);
  std::sort(r0.begin(), r0.end());
  for (index_t j = 0; j < 90; ++j) EXPECT_EQ(r0[j], double(j + 1));
}

TEST(Presses, SketchedLeverageIsWithinItsFactorOfTheExactScores) {
  // γ = 0.5, δ = 0.05 per key: count the keys outside [τ/1.5, 1.5τ] over several seeds; the
  // expected share is at most δ, and we allow twice that over 4,000 key draws.
  index_t outside = 0, total = 0;
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    const Floats K = make_keys(seed % 2 ? "gaussian" : "heavy_tailed", 800, 8, seed);
    PressOptions o;
    o.sketch.seed = seed;
    const std::vector<double> got = press_scores("sketched-leverage", {}, K.view(), 0, o);
    const std::vector<double> tau = leverage_reference(K, kDefaultRcond);
    for (index_t j = 0; j < K.rows; ++j, ++total)
      if (got[j] < tau[j] / 1.5 || got[j] > 1.5 * tau[j]) ++outside;
  }
  EXPECT_LE(outside, total / 10) << outside << " of " << total << " keys outside the factor";
}

TEST(Presses, H2OIsTheCausalColumnMassOverEveryContextQuery) {
  const Floats K = normal_matrix(70, 6, 1), Q1 = normal_matrix(70, 6, 2, 2.0), Q2 = normal_matrix(70, 6, 3);
  for (bool softmax : {true, false}) {
    PressOptions o;
    if (!softmax) o.attention.f = ScoreFunction::power(2.0);
    const double c = effective_scale(o.attention, 6);
    const std::vector<double> got = press_scores("h2o", {Q1.view(), Q2.view()}, K.view(), 0, o);
    const MatD A = causal_attention(Q1, K, 0, softmax, 2.0, c) + causal_attention(Q2, K, 0, softmax, 2.0, c);
    std::vector<double> want(70);
    for (index_t j = 0; j < 70; ++j) want[j] = A.col(j).sum();
    expect_close(got, want, 1e-5, softmax ? "h2o softmax" : "h2o x²");
  }
}

TEST(Presses, SnapKVPoolsTheWindowsCausalAttentionAndKeepsTheWindow) {
  const Floats K = normal_matrix(60, 5, 4), Q1 = normal_matrix(60, 5, 5, 1.5), Q2 = normal_matrix(60, 5, 6, 1.5);
  for (const auto& [window, pool] : std::vector<std::pair<index_t, index_t>>{{8, 5}, {1, 1}, {60, 3}, {100, 7}}) {
    PressOptions o;
    o.window = window;
    o.pool = pool;
    const std::vector<double> got = press_scores("snapkv", {Q1.view(), Q2.view()}, K.view(), 0, o);
    const index_t w = std::min<index_t>(window, 60), before = 60 - w;
    const double c = 1.0 / std::sqrt(5.0);
    const MatD A = causal_attention(Q1, K, before, true, 0, c) + causal_attention(Q2, K, before, true, 0, c);
    double top = 0.0;
    for (index_t j = 0; j < before; ++j) {
      double want = 0.0;  // the average over the pool, among the keys before the window
      for (index_t t = j - pool / 2; t <= j + pool / 2; ++t)
        if (t >= 0 && t < before) want += A.col(t).sum();
      want /= static_cast<double>(pool);
      top = std::max(top, got[j]);
      EXPECT_NEAR(got[j], want, 1e-5 * (1 + want)) << "window " << window << " pool " << pool << " key " << j;
    }
    for (index_t j = before; j < 60; ++j) {
      EXPECT_GT(got[j], top) << "window key " << j << " must outrank every earlier key";
      if (j > before) {
        EXPECT_GT(got[j], got[j - 1]) << "the later window key ranks higher";
      }
    }
    std::vector<index_t> want(static_cast<size_t>(w));
    std::iota(want.begin(), want.end(), before);
    EXPECT_EQ(keep_top_k(got, w), want);
    if (w > 2) {
      EXPECT_EQ(keep_top_k(got, 2), (std::vector<index_t>{58, 59})) << "a budget below the window keeps the latest";
    }
  }
}

TEST(Presses, SnapKVWindowOutranksEveryKeyEvenWithHugeLogits) {
  // Logits of order 1e8: the float products behind the column sums carry absolute errors far
  // above 1, so a bound on the pooled scores from the row sums would not hold.
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const Floats K = normal_matrix(40, 6, seed, 1e3), Q = normal_matrix(40, 6, seed + 100, 1e5);
    PressOptions o;
    o.window = 1;
    o.pool = 1;
    const std::vector<double> got = press_scores("snapkv", {Q.view()}, K.view(), 0, o);
    EXPECT_GT(got[39], *std::max_element(got.begin(), got.begin() + 39)) << "seed " << seed;
    EXPECT_EQ(keep_top_k(got, 1), std::vector<index_t>{39}) << "seed " << seed;
  }
}

TEST(Presses, EveryHeadOfABatchIsPressedWithItsQueryGroup) {
  const index_t B = 2, Hkv = 2, Hq = 4, n = 30, d = 4, budget = 7;
  const Floats K = normal_matrix(B * Hkv * n, d, 7), Q = normal_matrix(B * Hq * n, d, 8);
  const ConstHeadsF keys(K.data.data(), B, Hkv, n, d), queries(Q.data.data(), B, Hq, n, d);
  for (const std::string& press : {std::string("h2o"), std::string("leverage")}) {
    std::vector<index_t> kept(static_cast<size_t>(B * Hkv * budget));
    std::vector<double> scores(static_cast<size_t>(B * Hkv * n));
    press_heads(press, queries, keys, budget, {}, kept.data(), scores.data());
    for (index_t b = 0; b < B; ++b)
      for (index_t h = 0; h < Hkv; ++h) {
        const index_t slot = b * Hkv + h;
        const std::vector<ConstMatrixF> group = {queries.head(b, 2 * h), queries.head(b, 2 * h + 1)};
        const std::vector<double> want = press_scores(press, group, keys.head(b, h), slot, {});
        EXPECT_EQ(std::vector<double>(scores.begin() + slot * n, scores.begin() + (slot + 1) * n), want) << press;
        EXPECT_EQ(std::vector<index_t>(kept.begin() + slot * budget, kept.begin() + (slot + 1) * budget),
                  keep_top_k(want, budget))
            << press;
      }
  }
  Floats bad = K;
  bad.data[(3 * n + 2) * d] = NAN;  // batch 1, head 1, key 2
  try {
    std::vector<index_t> kept(static_cast<size_t>(B * Hkv * budget));
    press_heads("key-norm", {}, ConstHeadsF(bad.data.data(), B, Hkv, n, d), budget, {}, kept.data());
    ADD_FAILURE() << "NaN accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("batch 1, head 1: key-norm: key 2 is not finite"), std::string::npos)
        << e.what();
  }
}

TEST(Presses, BadInputIsRefused) {
  const Floats K = normal_matrix(20, 4, 1), Q = normal_matrix(20, 4, 2), Qshort = normal_matrix(19, 4, 3);
  Floats bad = K;
  bad.data[13] = NAN;
  const auto refused = [](auto&& call, const std::string& fragment) {
    try {
      call();
      ADD_FAILURE() << "accepted; expected an error naming '" << fragment << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::bad_input) << e.what();
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  refused([&] { press_scores("nope", {}, K.view(), 0); }, "unknown press 'nope'");
  refused([&] { press_scores("snapkv", {}, K.view(), 0); }, "context queries");
  refused([&] { press_scores("h2o", {Qshort.view()}, K.view(), 0); }, "must match the keys");
  refused([&] { press_scores("h2o", {Q.view()}, bad.view(), 0); }, "key 3 is not finite");
  refused([&] { press_scores("snapkv", {bad.view()}, K.view(), 0); }, "query row 3 holds a NaN");
  for (const std::string& press : press_names())
    refused([&] { press_scores(press, {Q.view()}, bad.view(), 0); }, "not finite");
  PressOptions o;
  o.window = 0;
  refused([&] { press_scores("snapkv", {Q.view()}, K.view(), 0, o); }, "window must be ≥ 1");
  o.window = 4;
  o.pool = 4;
  refused([&] { press_scores("snapkv", {Q.view()}, K.view(), 0, o); }, "pool must be odd");
  std::vector<index_t> kept(40);
  const ConstHeadsF keys(K.data.data(), 1, 1, 20, 4), queries(Qshort.data.data(), 1, 1, 19, 4);
  refused([&] { press_heads("leverage", {}, keys, 0, {}, kept.data()); }, "budget must lie in [1, n]");
  refused([&] { press_heads("leverage", {}, keys, 21, {}, kept.data()); }, "budget must lie in [1, n]");
  refused([&] { press_heads("h2o", queries, keys, 3, {}, kept.data()); }, "must hold one query per key");
  refused([&] { press_scores("leverage", {}, ConstMatrixF(K.data.data(), 0, 4), 0); }, "at least one key");
}

}  // namespace
}  // namespace levattn::test
