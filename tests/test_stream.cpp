// One-pass selection: the Gram summary's order-independence, the eviction bound against a double
// SVD, and the streamed set against the offline one on every key kind, block size and split.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <tuple>

#include "levattn/attention/heavy.hpp"
#include "levattn/attention/stream_heavy.hpp"
#include "levattn/linalg/gram.hpp"
#include "levattn/scores/leverage.hpp"
#include "levattn/scores/leverage_bound.hpp"
#include "levattn/select/stream_selector.hpp"
#include "levattn/select/universal_set.hpp"
#include "reference.hpp"

namespace levattn::test {
namespace {

// What `levattn select --eps` computes.
UniversalSet offline_set(const Floats& K, double eps) {
  LeverageScorer scorer(K.cols);
  scorer.fit(K.view());
  const std::vector<double> tau = scorer.scores(K.view());
  return select_by_threshold(tau.data(), K.rows, eps, double(scorer.rank()));
}

// Pushes rows [begin, end) of K in blocks of `block` rows.
void push_blocks(StreamSelector& s, const Floats& K, index_t begin, index_t end, index_t block) {
  for (index_t r = begin; r < end; r += block) s.push(K.view().rows_range(r, std::min(end, r + block)));
}

TEST(GramSummary, BitsDoNotDependOnHowRowsArrive) {
  const Floats K = make_keys("heavy_tailed", 5000, 12, 3);
  GramSummary whole(12);
  whole.add(K.view());
  const std::vector<double> want = whole.gram();
  for (index_t block : {1, 5, 255, 256, 257, 1000, 4999}) {
    GramSummary s(12);
    for (index_t r = 0; r < K.rows; r += block) s.add(K.view().rows_range(r, std::min(K.rows, r + block)));
    EXPECT_EQ(s.gram(), want) << "block " << block;
    EXPECT_EQ(s.count(), K.rows);
  }
  // Consecutive parts, merged left to right and right to left.
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<index_t> cuts = {0, K.rows};
    for (int c = 0; c < 4; ++c) cuts.push_back(std::uniform_int_distribution<index_t>(0, K.rows)(rng));
    std::sort(cuts.begin(), cuts.end());
    std::vector<GramSummary> parts;
    for (size_t p = 0; p + 1 < cuts.size(); ++p) {
      parts.emplace_back(12, cuts[p]);
      parts.back().add(K.view().rows_range(cuts[p], cuts[p + 1]));
    }
    GramSummary left = parts[0];
    for (size_t p = 1; p < parts.size(); ++p) left.merge(parts[p]);
    EXPECT_EQ(left.gram(), want) << "trial " << trial;
    GramSummary right = parts.back();
    for (size_t p = parts.size() - 1; p-- > 0;) {
      GramSummary joined = parts[p];
      joined.merge(right);
      right = joined;
    }
    EXPECT_EQ(right.gram(), want) << "trial " << trial;
    EXPECT_TRUE(right.exact());
    const std::vector<std::uint8_t> bytes = right.to_bytes();
    EXPECT_EQ(GramSummary::from_bytes(bytes.data(), bytes.size()).gram(), want);
  }
}

TEST(GramSummary, OutOfOrderMergeIsTheUnionToRounding) {
  const Floats K = make_keys("gaussian", 1000, 6, 2);
  GramSummary whole(6), a(6), b(6);
  whole.add(K.view());
  a.add(K.view().rows_range(0, 313));
  b.add(K.view().rows_range(313, 1000));  // positioned at 0, not 313
  a.merge(b);
  EXPECT_FALSE(a.exact());
  EXPECT_EQ(a.count(), 1000);
  const std::vector<double> got = a.gram(), want = whole.gram();
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12 * std::abs(want[i]) + 1e-12);
}

TEST(GramSummary, RejectsBadRowsAndBytes) {
  Floats K = make_keys("gaussian", 700, 4, 1);
  GramSummary s(4);
  s.add(K.view().rows_range(0, 100));
  const std::vector<double> before = s.gram();
  for (index_t bad_row : {103, 400, 650}) {  // the head fragment, a whole block, the tail
    Floats copy = K;
    copy.data[bad_row * 4 + 1] = std::nanf("");
    try {
      s.add(copy.view().rows_range(100, 700));
      FAIL();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("row " + std::to_string(bad_row - 100)), std::string::npos) << e.what();
    }
    EXPECT_EQ(s.gram(), before);
    EXPECT_EQ(s.count(), 100);
  }
  std::vector<std::uint8_t> bytes = s.to_bytes();
  bytes.pop_back();
  EXPECT_THROW(GramSummary::from_bytes(bytes.data(), bytes.size()), Error);
  EXPECT_THROW(GramSummary(4, -1), Error);
}

// τ of the final keys (double SVD) never exceeds kFactor × the bound computed on any prefix.
TEST(LeverageBound, BoundsTheFinalScoreOfEveryKeySeen) {
  for (const std::string& kind : kinds()) {
    const Floats K = make_keys(kind, 1200, 10, 4);
    const std::vector<double> tau = leverage_reference(K, kDefaultRcond, built_rank(kind, 10));
    for (index_t prefix : {40, 300, 1200}) {
      GramSummary s(10);
      s.add(K.view().rows_range(0, prefix));
      LeverageBound bound(10);
      bound.fit(s);
      std::vector<double> b(static_cast<size_t>(prefix));
      bound.bounds(K.view().rows_range(0, prefix), b.data());
      for (index_t j = 0; j < prefix; ++j)
        ASSERT_LE(tau[j], LeverageBound::kFactor * b[j] * (1 + 1e-6) + 1e-12)
            << kind << " prefix " << prefix << " key " << j;
    }
  }
}

struct StreamCase {
  std::string kind;
  double eps;
};

class StreamOnKind : public ::testing::TestWithParam<StreamCase> {};

TEST_P(StreamOnKind, OnePassSetIsTheOfflineSetForEveryBlockSize) {
  const auto& [kind, eps] = GetParam();
  const index_t n = 3000, d = 16;
  const Floats K = make_keys(kind, n, d, 7);
  const UniversalSet want = offline_set(K, eps);
  // The offline set against the independent SVD reference, away from ε.
  const std::vector<double> ref = leverage_reference(K, kDefaultRcond, built_rank(kind, d));
  for (index_t j = 0; j < n; ++j) {
    const bool in = std::binary_search(want.indices.begin(), want.indices.end(), j);
    if (ref[j] >= eps * 1.02) {
      EXPECT_TRUE(in) << kind << " key " << j;
    }
    if (ref[j] <= eps * 0.98) {
      EXPECT_FALSE(in) << kind << " key " << j;
    }
  }
  for (index_t block : {index_t{1}, index_t{3}, index_t{64}, index_t{256}, index_t{999}, n}) {
    StreamSelector s(d, {.eps = eps, .pending_rows = 64});
    push_blocks(s, K, 0, n, block);
    const StreamResult got = s.result();
    EXPECT_EQ(got.set.indices, want.indices) << kind << " block " << block;
    EXPECT_EQ(got.set.scores, want.scores) << kind << " block " << block;
    EXPECT_EQ(got.set.bound, want.bound);
    EXPECT_EQ(got.count, n);
    if (eps >= 0.3) {
      EXPECT_LT(s.retained(), n / 2) << "nothing was evicted";
    }
    for (index_t i = 0; i < got.set.size(); ++i)
      ASSERT_TRUE(std::equal(got.keys.begin() + i * d, got.keys.begin() + (i + 1) * d,
                             K.data.begin() + got.set.indices[i] * d));
  }
}

TEST_P(StreamOnKind, AnySplitIntoMergedPartsGivesTheOfflineSet) {
  const auto& [kind, eps] = GetParam();
  const index_t n = 3000, d = 16;
  const Floats K = make_keys(kind, n, d, 8);
  const UniversalSet want = offline_set(K, eps);
  std::mt19937_64 rng(std::hash<std::string>{}(kind));
  for (int trial = 0; trial < 4; ++trial) {
    std::vector<index_t> cuts = {0, n};
    for (int c = 0; c < trial + 1; ++c) cuts.push_back(std::uniform_int_distribution<index_t>(0, n)(rng));
    std::sort(cuts.begin(), cuts.end());
    std::vector<StreamSelector> parts;
    for (size_t p = 0; p + 1 < cuts.size(); ++p) {
      parts.emplace_back(d, StreamOptions{.eps = eps, .first_row = cuts[p], .pending_rows = 100});
      push_blocks(parts.back(), K, cuts[p], cuts[p + 1], 1 + trial * 37);
    }
    StreamSelector left = parts[0];
    for (size_t p = 1; p < parts.size(); ++p) left.merge(parts[p]);
    EXPECT_EQ(left.result().set.indices, want.indices) << kind << " trial " << trial;
    EXPECT_EQ(left.result().set.scores, want.scores) << kind << " trial " << trial;
    StreamSelector right = parts.back();
    for (size_t p = parts.size() - 1; p-- > 0;) {
      StreamSelector joined = parts[p];
      joined.merge(right);
      right = joined;
    }
    EXPECT_EQ(right.result().set.indices, want.indices) << kind << " trial " << trial;
  }
}

std::vector<StreamCase> stream_cases() {
  std::vector<StreamCase> out;
  for (const std::string& kind : kinds())
    for (double eps : {0.03, 0.3}) out.push_back({kind, eps});
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllKinds, StreamOnKind, ::testing::ValuesIn(stream_cases()), [](const auto& info) {
  return info.param.kind + "_eps" + std::to_string(int(info.param.eps * 100));
});

TEST(Stream, MemoryStaysBoundedAndEvictionHappens) {
  const index_t d = 8;
  const double eps = 0.05;
  StreamSelector s(d, {.eps = eps, .pending_rows = 256});
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const Floats K = make_keys("gaussian", 5000, d, seed);
    s.push(K.view());
  }
  EXPECT_EQ(s.count(), 100000);
  // At most 8d/ε candidates between re-scorings plus a block of 5000 just scored.
  EXPECT_LE(s.peak_retained(), index_t(8 * d / eps) + 5000);
  EXPECT_LE(s.retained(), index_t(8 * d / eps) + 256);
}

TEST(Stream, ValuesTravelWithTheirKeys) {
  const index_t n = 2000, d = 6;
  const Floats K = make_keys("heavy_tailed", n, d, 2);
  std::vector<float> V(static_cast<size_t>(n * 2));
  for (index_t j = 0; j < n; ++j) V[j * 2] = float(j), V[j * 2 + 1] = -float(j);
  StreamSelector s(d, {.eps = 0.02, .value_dim = 2, .pending_rows = 50});
  for (index_t r = 0; r < n; r += 33) {
    const index_t e = std::min(n, r + 33);
    s.push(K.view().rows_range(r, e), ConstMatrixF(V.data() + r * 2, e - r, 2));
  }
  const StreamResult got = s.result();
  EXPECT_EQ(got.set.indices, offline_set(K, 0.02).indices);
  ASSERT_EQ(got.values.size(), got.set.indices.size() * 2);
  for (index_t i = 0; i < got.set.size(); ++i) {
    EXPECT_EQ(got.values[i * 2], float(got.set.indices[i]));
    EXPECT_EQ(got.values[i * 2 + 1], -float(got.set.indices[i]));
  }
}

TEST(Stream, HeavyEntriesAtAnyTimeMatchBruteForce) {
  const index_t n = 3000, d = 12;
  const double eps = 0.02;
  for (const std::string kind : {"gaussian", "heavy_tailed", "low_rank", "duplicated"}) {
    const Floats K = make_keys(kind, n, d, 3);
    StreamSelector s(d, {.eps = eps, .pending_rows = 128});
    for (index_t seen : {700, 3000}) {
      push_blocks(s, K, s.count(), seen, 97);
      Floats prefix;
      prefix.rows = seen, prefix.cols = d;
      prefix.data.assign(K.data.begin(), K.data.begin() + seen * d);
      const Floats Q = make_queries(prefix, 60, 9);
      const MatD A = attention_reference(Q, prefix);
      const StreamHeavyAnswer got = stream_heavy(s, Q.view(), eps);
      // Only queries flagged uncertain (almost orthogonal to every key) may miss entries.
      for (index_t i = 0; i < Q.rows; ++i) {
        const bool uncertain = std::count(got.uncertain.begin(), got.uncertain.end(), i) > 0;
        std::vector<index_t> reported;
        for (const auto& e : got.entries)
          if (e.query == i) {
            reported.push_back(e.key);
            EXPECT_NEAR(e.score, A(i, e.key), 1e-6 * A(i, e.key) + 1e-12) << kind;
          }
        for (index_t j = 0; j < seen; ++j) {
          const bool in = std::binary_search(reported.begin(), reported.end(), j);
          if (A(i, j) >= eps * (1 + 1e-6)) {
            EXPECT_TRUE(in || uncertain) << kind << " q" << i << " k" << j;
          }
          if (A(i, j) < eps * (1 - 1e-6)) {
            EXPECT_FALSE(in) << kind << " q" << i << " k" << j;
          }
        }
      }
      if (std::string(kind) == "gaussian") {
        EXPECT_TRUE(got.uncertain.empty());
      }
    }
  }
}

// stream_heavy against HeavySearch fitted on every key pushed, with the stream's indices shifted
// by first_row: a query not listed as uncertain gets the same entries, with the same bits when the
// summaries are the same (first_row = 0) and no query fell back, else to 1e-12; an uncertain one
// (every query in budget mode) a subset. The last queries, v + 1e-5·k_j with v the last right
// singular vector of K, lie almost wholly along its weakest direction: cut for "low_rank" keys
// (those queries fall back), and uncertain or near it for others.
TEST(Stream, HeavyEqualsHeavySearchOverEveryKeyPushed) {
  const index_t n = 400, d = 6;
  for (const std::string kind :
       {"gaussian", "low_rank", "duplicated", "heavy_tailed", "huge", "tiny", "cond1e6", "zero_column"})
    for (const auto& [eps, budget, first] :
         {std::tuple<double, index_t, index_t>{0.02, 0, 0}, {0.1, 0, 0}, {0.05, 40, 0}, {0.02, 0, 1000}}) {
      const Floats K = make_keys(kind, n, d, 41);
      Floats Q = make_queries(K, 60, 42);
      const Eigen::JacobiSVD<MatD> svd(K.to_double(), Eigen::ComputeFullV);
      for (index_t j = 0; j < 6; ++j) {
        for (index_t c = 0; c < d; ++c)
          Q.data.push_back(static_cast<float>(svd.matrixV()(c, d - 1) + 1e-5 * K.data[j * d + c]));
        ++Q.rows;
      }
      StreamSelector s(d, {.eps = eps, .budget = budget, .first_row = first, .pending_rows = 32});
      push_blocks(s, K, 0, n, 29);
      const StreamHeavyAnswer got = stream_heavy(s, Q.view(), eps);
      const HeavySearch search(K.view(), eps);
      std::vector<HeavyEntry> want;
      const HeavyStats stats =
          search.run(Q.view(), [&](const HeavyEntry* e, index_t count) { want.insert(want.end(), e, e + count); });
      EXPECT_EQ(got.zero_queries, stats.zero_queries) << kind;
      if (budget > 0) {
        EXPECT_EQ(static_cast<index_t>(got.uncertain.size()), Q.rows - got.zero_queries) << kind;
      }
      for (index_t i = 0; i < Q.rows; ++i) {
        std::vector<std::pair<index_t, double>> mine, theirs;  // (key, score)
        for (const HeavyEntry& e : got.entries)
          if (e.query == i) mine.push_back({e.key - first, e.score});
        for (const HeavyEntry& e : want)
          if (e.query == i) theirs.push_back({e.key, e.score});
        ASSERT_TRUE(std::is_sorted(mine.begin(), mine.end())) << kind << " q" << i;
        const bool uncertain = std::binary_search(got.uncertain.begin(), got.uncertain.end(), i);
        for (const auto& [key, score] : mine) {
          const auto match = std::find_if(theirs.begin(), theirs.end(), [&](const auto& t) { return t.first == key; });
          ASSERT_NE(match, theirs.end()) << kind << " q" << i << " k" << key << ": not a heavy entry";
          if (first == 0 && stats.fallback_queries == 0) {
            EXPECT_EQ(score, match->second) << kind << " q" << i << " k" << key;
          } else {
            EXPECT_NEAR(score, match->second, 1e-4 * match->second) << kind << " q" << i << " k" << key;
          }
        }
        if (!uncertain) {
          EXPECT_EQ(mine.size(), theirs.size()) << kind << " q" << i << " eps " << eps;
        }
      }
    }
}

TEST(Stream, FixedBudgetKeepsBudgetKeysWithTheirFinalScores) {
  const index_t n = 4000, d = 10, k = 50;
  const Floats K = make_keys("heavy_tailed", n, d, 5);
  StreamSelector s(d, {.budget = k, .pending_rows = 64});
  push_blocks(s, K, 0, n, 77);
  EXPECT_LE(s.peak_retained(), 2 * k + 64 + 77);
  const StreamResult got = s.result();
  ASSERT_EQ(got.set.size(), k);
  EXPECT_TRUE(std::is_sorted(got.set.indices.begin(), got.set.indices.end()));
  LeverageScorer scorer(d);
  scorer.fit(K.view());
  const std::vector<double> tau = scorer.scores(K.view());
  for (index_t i = 0; i < k; ++i) EXPECT_EQ(got.set.scores[i], tau[got.set.indices[i]]);
}

TEST(Stream, RejectsBadInputAndStaysUnchanged) {
  EXPECT_THROW(StreamSelector(0, {.eps = 0.1}), Error);
  EXPECT_THROW(StreamSelector(4, {.eps = 0.0}), Error);
  EXPECT_THROW(StreamSelector(4, {.eps = 1.5}), Error);
  EXPECT_THROW(StreamSelector(4, {.budget = -1}), Error);
  EXPECT_THROW(StreamSelector(4, {.eps = 0.1, .rcond = 0.0}), Error);
  EXPECT_THROW(StreamSelector(4, {.eps = 0.1, .first_row = -3}), Error);
  Floats K = make_keys("gaussian", 300, 4, 1);
  StreamSelector s(4, {.eps = 0.1, .pending_rows = 32});
  s.push(K.view().rows_range(0, 100));
  const StreamResult before = s.result();
  K.data[150 * 4] = INFINITY;
  try {
    s.push(K.view().rows_range(100, 300));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::bad_input);
    EXPECT_NE(std::string(e.what()).find("row 150"), std::string::npos) << e.what();
  }
  EXPECT_EQ(s.count(), 100);
  EXPECT_EQ(s.result().set.indices, before.set.indices);
  const Floats wide = make_keys("gaussian", 10, 5, 1);
  EXPECT_THROW(s.push(wide.view()), Error);
  std::vector<float> v(20, 0.0f);
  EXPECT_THROW(s.push(K.view().rows_range(0, 10), ConstMatrixF(v.data(), 10, 2)), Error);
  EXPECT_THROW(stream_heavy(s, K.view().rows_range(0, 3), 0.05), Error);  // below the selector's ε
  StreamSelector other(4, {.eps = 0.2, .first_row = 100});
  EXPECT_THROW(s.merge(other), Error);
  StreamSelector with_values(4, {.eps = 0.1, .value_dim = 2});
  std::vector<float> values(20, 1.0f);
  values[2 * 7 + 1] = std::nanf("");
  try {
    with_values.push(K.view().rows_range(0, 10), ConstMatrixF(values.data(), 10, 2));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::bad_input);
    EXPECT_NE(std::string(e.what()).find("values: row 7"), std::string::npos) << e.what();
  }
  EXPECT_EQ(with_values.count(), 0);
}

}  // namespace
}  // namespace levattn::test
