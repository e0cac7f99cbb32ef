// Universal sets by threshold and by budget.
#include <gtest/gtest.h>

#include <cmath>

#include "levattn/select/universal_set.hpp"

namespace levattn {
namespace {

TEST(Select, ThresholdKeepsScoresAtLeastEpsAscending) {
  const std::vector<double> tau{0.5, 0.1, 0.2, 0.0999999, 0.1, 0.05};
  const UniversalSet u = select_by_threshold(tau.data(), 6, 0.1, 1.0);
  EXPECT_EQ(u.indices, (std::vector<index_t>{0, 1, 2, 4}));
  EXPECT_EQ(u.scores, (std::vector<double>{0.5, 0.1, 0.2, 0.1}));
  EXPECT_DOUBLE_EQ(u.bound, 10.0);
  EXPECT_TRUE(u.within_bound);
}

TEST(Select, ThresholdFlagsABrokenBound) {
  const std::vector<double> tau{0.9, 0.9, 0.9};  // sums past the claimed rank 1
  EXPECT_FALSE(select_by_threshold(tau.data(), 3, 0.5, 1.0).within_bound);
}

TEST(Select, TopKBreaksTiesTowardsLowerIndex) {
  const std::vector<double> tau{0.3, 0.7, 0.3, 0.3, 0.9, 0.3};
  const UniversalSet u = select_top_k(tau.data(), 6, 4);
  EXPECT_EQ(u.indices, (std::vector<index_t>{0, 1, 2, 4}));
  EXPECT_EQ(u.scores, (std::vector<double>{0.3, 0.7, 0.3, 0.9}));
  EXPECT_EQ(select_top_k(tau.data(), 6, 6).indices, (std::vector<index_t>{0, 1, 2, 3, 4, 5}));
}

TEST(Select, RejectsImpossibleParameters) {
  const std::vector<double> tau{0.3, 0.7};
  for (double eps : {0.0, -0.1, 1.0001, std::nan("")})
    EXPECT_THROW(select_by_threshold(tau.data(), 2, eps, 2.0), Error) << eps;
  EXPECT_NO_THROW(select_by_threshold(tau.data(), 2, 1.0, 2.0));
  EXPECT_THROW(select_top_k(tau.data(), 2, 0), Error);
  EXPECT_THROW(select_top_k(tau.data(), 2, 3), Error);
}

}  // namespace
}  // namespace levattn
