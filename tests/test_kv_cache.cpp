// The decoding KV cache against double references: with room for every key it is exact
// attention; each policy keeps what it promises; threshold-mode leverage keeps every key whose
// final leverage score clears ε (hence every |x|² entry ≥ ε); pow:2 outputs and missing mass are
// the exact truncation over the retained keys.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <set>
#include <tuple>

#include "levattn/attention/kv_cache.hpp"
#include "levattn/scores/leverage.hpp"
#include "reference.hpp"

namespace levattn::test {
namespace {

// Output of attention at step t (keys [0, t]) restricted to `kept`, as the cache defines it.
AttentionRows reference_step(const Floats& Q, const Floats& K, const Floats& V, index_t t, index_t query_row,
                             const std::set<index_t>& kept, const AttentionOptions& o) {
  AttentionSpec spec;
  spec.softmax = o.f.kind == ScoreKind::softmax;
  spec.scale = effective_scale(o, K.cols);
  spec.visible = [t](index_t, index_t j) { return j <= t; };
  spec.kept = [&](index_t, index_t j) { return kept.count(j) > 0; };
  spec.normalise_over_kept = spec.softmax;
  return attention_rows_reference(Q, K, V, {query_row}, spec);
}

double row_error(const std::vector<float>& got, const MatD& ref) {
  double num = 0, den = 0;
  for (index_t c = 0; c < ref.cols(); ++c) {
    num += std::pow(got[c] - ref(0, c), 2);
    den += ref(0, c) * ref(0, c);
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

TEST(KVCache, EveryPolicyMatchesTheReferenceOverItsRetainedKeys) {
  const index_t n = 600, d = 16, dv = 8;
  const Floats K = make_keys("heavy_tailed", n, d, 1), V = normal_matrix(n, dv, 2), Q = normal_matrix(n, d, 3);
  for (CachePolicy policy :
       {CachePolicy::leverage, CachePolicy::window, CachePolicy::accumulated, CachePolicy::key_norm})
    for (const ScoreFunction& f : {ScoreFunction::softmax(), ScoreFunction::power(2.0)})
      for (index_t budget : {index_t{40}, index_t{1000}}) {
        KVCacheOptions o;
        o.policy = policy;
        o.budget = budget;
        o.attention.f = f;
        o.attention.scale = f.kind == ScoreKind::softmax ? 0.05 : 0.0;
        KVCache cache(d, dv, o);
        std::vector<float> out(dv);
        for (index_t t = 0; t < n; ++t) {
          cache.append(K.data.data() + t * d, V.data.data() + t * dv);
          cache.attend(Q.data.data() + t * d, out.data());
          ASSERT_LE(cache.size(), std::min(budget, t + 1));
          if (t % 37 != 0 && t != n - 1) continue;
          const std::vector<index_t> pos = cache.positions();
          const std::set<index_t> kept(pos.begin(), pos.end());
          if (budget >= n) {
            EXPECT_EQ(cache.size(), t + 1);
          }
          if (policy == CachePolicy::window && t + 1 > budget) {  // sinks + the latest
            for (index_t j = 0; j < 4; ++j) EXPECT_TRUE(kept.count(j));
            for (index_t j = t - (budget - 4) + 1; j <= t; ++j) EXPECT_TRUE(kept.count(j)) << j;
          }
          if (policy == CachePolicy::accumulated) {
            for (index_t j = std::max<index_t>(0, t - budget / 2 + 1); j <= t; ++j) EXPECT_TRUE(kept.count(j)) << j;
          }
          if (policy == CachePolicy::key_norm) {              // the budget longest keys so far, by a norm in double
            std::vector<std::pair<double, index_t>> by_norm;  // (−‖k‖², −j): the longest, then the newest
            for (index_t j = 0; j <= t; ++j) {
              double sq = 0.0;
              for (index_t c = 0; c < d; ++c) sq += double(K.data[j * d + c]) * K.data[j * d + c];
              by_norm.push_back({-sq, -j});
            }
            std::sort(by_norm.begin(), by_norm.end());
            std::set<index_t> longest;
            for (index_t r = 0; r < std::min(budget, t + 1); ++r) longest.insert(-by_norm[r].second);
            EXPECT_EQ(kept, longest) << "step " << t;
          }
          const AttentionRows ref = reference_step(Q, K, V, t, t, kept, o.attention);
          EXPECT_LE(row_error(out, ref.out), 1e-5) << "step " << t << " budget " << budget << " " << f.name();
          if (f.kind == ScoreKind::power) {
            EXPECT_NEAR(cache.missing_mass(), 1.0 - ref.kept_mass[0], 1e-5) << "step " << t;
          }
        }
      }
}

TEST(KVCache, ThresholdLeverageKeepsEveryKeyOfFinalScoreAboveEps) {
  for (const std::string kind : {"gaussian", "heavy_tailed", "duplicated", "low_rank"}) {
    const index_t n = 600, d = 8;  // mean score d/n ≈ 0.013: some keys clear ε, many do not
    const double eps = 0.01;
    const Floats K = make_keys(kind, n, d, 11), V = normal_matrix(n, 4, 12);
    KVCacheOptions o;
    o.eps = eps;
    o.refresh = 64;
    o.attention.f = ScoreFunction::power(2.0);
    KVCache cache(d, 4, o);
    for (index_t t = 0; t < n; ++t) cache.append(K.data.data() + t * d, V.data.data() + t * 4);
    const std::vector<index_t> pos = cache.positions();
    const std::set<index_t> kept(pos.begin(), pos.end());
    const std::vector<double> tau = leverage_reference(K, 4.8e-7);
    index_t strong = 0;
    for (index_t j = 0; j < n; ++j)
      if (tau[j] >= eps * (1 + 1e-4)) {
        ++strong;
        EXPECT_TRUE(kept.count(j)) << kind << ": key " << j << " with τ = " << tau[j] << " was evicted";
      }
    EXPECT_GT(strong, 0) << kind;
    EXPECT_LT(cache.size(), n) << kind << ": the cache must have evicted keys";
  }
}

// The leverage policy as kv_cache.hpp defines it, recomputed from scratch: at every refresh a
// LeverageScorer fitted on all keys so far scores the retained ones; threshold mode drops those
// below ε, budget mode evicts the lowest (newer keys, +∞ until scored, last; ties: the older).
std::set<index_t> leverage_policy_from_scratch(const Floats& K, index_t budget, double eps, index_t refresh) {
  const index_t d = K.cols;
  std::vector<std::pair<index_t, double>> held;  // (position, score at the last refresh or +∞)
  for (index_t t = 0; t < K.rows; ++t) {
    held.push_back({t, std::numeric_limits<double>::infinity()});
    if ((t + 1) % refresh == 0) {
      LeverageScorer scorer(d);
      scorer.fit(ConstMatrixF(K.data.data(), t + 1, d));
      std::vector<float> rows;
      for (const auto& h : held)
        rows.insert(rows.end(), K.data.begin() + h.first * d, K.data.begin() + (h.first + 1) * d);
      const std::vector<double> scores = scorer.scores(ConstMatrixF(rows.data(), static_cast<index_t>(held.size()), d));
      for (size_t i = 0; i < held.size(); ++i) held[i].second = scores[i];
      if (eps > 0.0) std::erase_if(held, [eps](const auto& h) { return h.second < eps; });
    }
    while (eps == 0.0 && static_cast<index_t>(held.size()) > budget)
      held.erase(std::min_element(held.begin(), held.end(), [](const auto& a, const auto& b) {
        return a.second < b.second || (a.second == b.second && a.first < b.first);
      }));
  }
  std::set<index_t> kept;
  for (const auto& h : held) kept.insert(h.first);
  return kept;
}

TEST(KVCache, LeverageRefreshesEqualAScorerFittedFromScratch) {
  const index_t n = 700, d = 8;
  for (const std::string kind : {"gaussian", "low_rank", "duplicated", "heavy_tailed", "huge", "tiny", "cond1e6"})
    for (const auto& [budget, eps, refresh] :
         {std::tuple<index_t, double, index_t>{48, 0.0, 12}, {16, 0.0, 40}, {256, 0.01, 64}, {256, 0.03, 1}}) {
      const Floats K = make_keys(kind, n, d, 21), V = normal_matrix(n, 2, 22);
      KVCacheOptions o;
      o.budget = budget;
      o.eps = eps;
      o.refresh = refresh;
      KVCache cache(d, 2, o);
      cache.append(K.view(), V.view());
      const std::vector<index_t> pos = cache.positions();
      EXPECT_EQ(std::set<index_t>(pos.begin(), pos.end()), leverage_policy_from_scratch(K, budget, eps, refresh))
          << kind << " budget " << budget << " eps " << eps << " refresh " << refresh;
    }
}

// The values a cache with 16-bit storage holds: x rounded to the type and widened back.
Floats rounded(const Floats& x, ElementType type) {
  Floats r = x;
  for (float& v : r.data) v = type == ElementType::f16 ? to_float(to_half(v)) : to_float(to_bfloat16(v));
  return r;
}

TEST(KVCache, SixteenBitStorageIsExactForTheRoundedKeysAndHalvesTheBytes) {
  const index_t n = 400, d = 16, dv = 8;
  const Floats K = make_keys("heavy_tailed", n, d, 31), V = normal_matrix(n, dv, 32), Q = normal_matrix(n, d, 33);
  for (ElementType storage : {ElementType::f16, ElementType::bf16}) {
    const Floats Kr = rounded(K, storage), Vr = rounded(V, storage);
    for (CachePolicy policy :
         {CachePolicy::leverage, CachePolicy::window, CachePolicy::accumulated, CachePolicy::key_norm})
      for (const ScoreFunction& f : {ScoreFunction::softmax(), ScoreFunction::power(2.0)}) {
        KVCacheOptions o;
        o.policy = policy;
        o.budget = 40;
        o.refresh = 10;
        o.attention.f = f;
        o.attention.scale = f.kind == ScoreKind::softmax ? 0.05 : 0.0;
        o.storage = storage;
        KVCache cache(d, dv, o);
        KVCacheOptions o32 = o;
        o32.storage = ElementType::f32;
        KVCache cache32(d, dv, o32);
        std::vector<float> out(dv);
        for (index_t t = 0; t < n; ++t) {
          cache.append(K.data.data() + t * d, V.data.data() + t * dv);
          cache32.append(K.data.data() + t * d, V.data.data() + t * dv);
          cache.attend(Q.data.data() + t * d, out.data());
          if (t % 41 != 0 && t != n - 1) continue;
          const std::vector<index_t> pos = cache.positions();
          const std::set<index_t> kept(pos.begin(), pos.end());
          const AttentionRows ref = reference_step(Q, Kr, Vr, t, t, kept, o.attention);
          EXPECT_LE(row_error(out, ref.out), 1e-5) << element_type_name(storage) << " step " << t << " " << f.name();
          if (f.kind == ScoreKind::power) {
            EXPECT_NEAR(cache.missing_mass(), 1.0 - ref.kept_mass[0], 1e-5) << "step " << t;
          }
          EXPECT_EQ(cache.stored_bytes(), cache.size() * (d + dv) * 2);
          EXPECT_EQ(cache32.stored_bytes(), cache32.size() * (d + dv) * 4);
        }
        if (policy == CachePolicy::leverage) {  // the policy recomputed from scratch on the rounded keys
          const std::vector<index_t> pos = cache.positions();
          EXPECT_EQ(std::set<index_t>(pos.begin(), pos.end()), leverage_policy_from_scratch(Kr, 40, 0.0, 10))
              << element_type_name(storage);
        }
      }
  }
}

TEST(KVCache, KeysOverflowingTheStorageTypeAreRefusedChangingNothing) {
  const index_t d = 4;
  KVCacheOptions o;
  o.storage = ElementType::f16;
  KVCache cache(d, d, o);
  const std::vector<float> fine = {1, 2, 3, 4}, huge = {1, 7e4f, 3, 4};  // 7e4 > 65504, float16's max
  cache.append(fine.data(), fine.data());
  EXPECT_THROW(cache.append(huge.data(), fine.data()), Error);
  EXPECT_THROW(cache.append(fine.data(), huge.data()), Error);
  std::vector<float> rows = fine;
  rows.insert(rows.end(), huge.begin(), huge.end());
  EXPECT_THROW(cache.append(ConstMatrixF(rows.data(), 2, d), ConstMatrixF(rows.data(), 2, d)), Error);
  EXPECT_EQ(cache.size(), 1);
  EXPECT_EQ(cache.appended(), 1);
  o.storage = ElementType::bf16;  // bfloat16 holds 7e4
  KVCache wide(d, d, o);
  wide.append(huge.data(), huge.data());
  EXPECT_EQ(wide.size(), 1);
}

// Missing mass under pow:2 against Σ over every key appended in double (to 1e-6: the kept mass
// comes from attend_exact's float products), whether the attend falls right after a refit or with
// up to refresh − 1 keys appended since.
TEST(KVCache, Pow2MissingMassIsExactOnAdversarialKeys) {
  const index_t n = 300, d = 8;
  for (const std::string kind : {"gaussian", "low_rank", "duplicated", "heavy_tailed", "huge", "tiny"})
    for (CachePolicy policy : {CachePolicy::window, CachePolicy::leverage}) {
      const Floats K = make_keys(kind, n, d, 31), V = normal_matrix(n, 3, 32), Q = make_queries(K, n, 33);
      KVCacheOptions o;
      o.policy = policy;
      o.budget = 24;
      o.refresh = 7;
      o.attention.f = ScoreFunction::power(2.0);
      KVCache cache(d, 3, o);
      std::vector<float> out(3);
      for (index_t t = 0; t < n; ++t) {
        cache.append(K.data.data() + t * d, V.data.data() + t * 3);
        const float* q = Q.data.data() + t * d;
        cache.attend(q, out.data());
        const std::vector<index_t> pos = cache.positions();
        double all = 0.0, kept = 0.0;
        for (index_t j = 0, next = 0; j <= t; ++j) {
          double p = 0.0;
          for (index_t c = 0; c < d; ++c) p += double(q[c]) * K.data[j * d + c];
          all += p * p;
          if (next < static_cast<index_t>(pos.size()) && pos[next] == j) kept += p * p, ++next;
        }
        const double want = all > 0.0 ? 1.0 - kept / all : 0.0;
        ASSERT_NEAR(cache.missing_mass(), want, 1e-6) << kind << " step " << t;
      }
    }
}

TEST(KVCache, BadInputIsRefused) {
  KVCacheOptions o;
  EXPECT_THROW(KVCache(0, 4, o), Error);
  o.budget = 0;
  EXPECT_THROW(KVCache(4, 4, o), Error);
  o.budget = 8;
  o.attention.f = ScoreFunction::power(3.0);
  EXPECT_THROW(KVCache(4, 4, o), Error);
  o.attention.f = ScoreFunction::softmax();
  o.policy = CachePolicy::window;
  o.sinks = 8;
  EXPECT_THROW(KVCache(4, 4, o), Error);
  o.sinks = 2;
  KVCache cache(4, 4, o);
  const float bad[4] = {1.0f, std::nanf(""), 0.0f, 0.0f}, good[4] = {1, 2, 3, 4};
  EXPECT_THROW(cache.append(bad, good), Error);
  EXPECT_EQ(cache.size(), 0);
  std::vector<float> out(4);
  EXPECT_THROW(cache.attend(bad, out.data()), Error);
}

}  // namespace
}  // namespace levattn::test
