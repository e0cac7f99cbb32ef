// Key scores for |x|^p and their universal set (select/key_scores.hpp): the scorer-fitted entry
// leverage_key_scores, which lets keys split across processes be scored and selected in parts.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "levattn/linalg/gram.hpp"
#include "levattn/select/key_scores.hpp"
#include "reference.hpp"

namespace levattn {
namespace {

using test::Floats;

TEST(KeyScores, LeverageFromAFittedScorerMatchesTheDoubleReference) {
  for (const std::string& kind : test::kinds()) {
    const Floats K = test::make_keys(kind, 300, 8, 11);
    LeverageScorer scorer(K.cols);
    scorer.fit(K.view());
    const KeyScores s = leverage_key_scores(scorer, K.view());
    const std::vector<double> want = test::leverage_reference(K, 0.0, test::built_rank(kind, K.cols));
    ASSERT_EQ(s.values.size(), want.size()) << kind;
    const double tolerance = kind == "cond1e6" ? 1e-2 : 1e-3;  // scores lie in [0, 1]
    for (size_t j = 0; j < want.size(); ++j) EXPECT_NEAR(s.values[j], want[j], tolerance) << kind << " key " << j;
    EXPECT_EQ(s.rank, test::built_rank(kind, K.cols)) << kind;
    EXPECT_EQ(s.bound_mass, double(s.rank)) << kind;
    EXPECT_EQ(s.threshold_factor, 1.0) << kind;
    EXPECT_EQ(s.method, "exact leverage") << kind;
  }
}

// Keys split in three consecutive parts, as levattn-mpi splits them over ranks: one scorer fitted
// on the merged Gram summaries scores each part; the parts' candidates give the single-process set.
TEST(KeyScores, PartsScoredUnderOneMergedScorerGiveTheWholeSet) {
  const Floats K = test::normal_matrix(500, 6, 5);
  const index_t cuts[] = {0, 170, 171, 500};  // a one-row part too
  GramSummary merged(K.cols, 0);
  for (int part = 0; part < 3; ++part) {
    GramSummary summary(K.cols, cuts[part]);
    summary.add(ConstMatrixF(K.data.data() + cuts[part] * K.cols, cuts[part + 1] - cuts[part], K.cols));
    if (part == 0)
      merged = summary;
    else
      merged.merge(summary);
  }
  LeverageScorer scorer(K.cols);
  scorer.fit(merged);
  const KeyScores whole = compute_key_scores(K.view(), KeyScoreOptions{}, true);

  for (const double eps : {0.011, 0.02}) {
    for (const index_t top_k : {index_t{0}, index_t{7}}) {
      const double threshold = top_k > 0 ? 0.0 : eps;
      std::vector<index_t> index;
      std::vector<double> candidate_scores;
      KeyScores last;
      for (int part = 0; part < 3; ++part) {
        const index_t rows = cuts[part + 1] - cuts[part];
        last = leverage_key_scores(scorer, ConstMatrixF(K.data.data() + cuts[part] * K.cols, rows, K.cols));
        EXPECT_TRUE(std::equal(last.values.begin(), last.values.end(), whole.values.begin() + cuts[part]))
            << "part " << part << ": not the bits of the whole";
        const UniversalSet local = key_universal_set(last, threshold, std::min(top_k, rows));
        for (index_t i = 0; i < local.size(); ++i) {
          index.push_back(cuts[part] + local.indices[i]);
          candidate_scores.push_back(local.scores[i]);
        }
      }
      last.values = candidate_scores;
      UniversalSet u = key_universal_set(last, threshold, top_k);
      for (index_t& j : u.indices) j = index[static_cast<size_t>(j)];
      const UniversalSet want = key_universal_set(whole, threshold, top_k);
      EXPECT_EQ(u.indices, want.indices) << eps << " " << top_k;
      EXPECT_EQ(u.scores, want.scores) << eps << " " << top_k;
      EXPECT_EQ(u.bound, want.bound) << eps << " " << top_k;
      EXPECT_EQ(u.within_bound, want.within_bound) << eps << " " << top_k;
    }
  }
}

TEST(KeyScores, LeverageNeedsAScorerOfTheKeysWidth) {
  const Floats K = test::normal_matrix(20, 4, 3);
  LeverageScorer narrow(3);
  narrow.fit(test::normal_matrix(20, 3, 4).view());
  EXPECT_THROW(leverage_key_scores(narrow, K.view()), Error);
}

}  // namespace
}  // namespace levattn
