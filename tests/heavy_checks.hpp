// Checks shared by the heavy-entry suites: a search's entries against the double-precision
// reference attention (tests/reference.hpp), and two searches against each other, bit for bit.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "levattn/attention/heavy.hpp"
#include "reference.hpp"

namespace levattn::test {

// Every entry a search (HeavySearch or PowerHeavySearch) reports for `queries`, in report order.
template <class Search>
std::vector<HeavyEntry> collect(const Search& search, ConstMatrixF queries, HeavyStats* stats = nullptr) {
  std::vector<HeavyEntry> out;
  const HeavyStats s =
      search.run(queries, [&](const HeavyEntry* e, index_t count) { out.insert(out.end(), e, e + count); });
  if (stats) *stats = s;
  return out;
}

// Recall 1 above ε(1+band), precision 1 below ε(1−band), order, and the reported values within
// `band` (relative). Returns how many reference entries lie above ε(1+band), so callers can see the
// check bites.
inline index_t expect_matches(const std::vector<HeavyEntry>& got, const MatD& A, double eps, const std::string& what,
                              double band = 1e-4) {
  std::map<std::pair<index_t, index_t>, double> reported;
  for (size_t i = 0; i < got.size(); ++i) {
    if (i > 0) {
      EXPECT_TRUE(std::pair(got[i - 1].query, got[i - 1].key) < std::pair(got[i].query, got[i].key))
          << what << ": entries out of order";
    }
    reported[{got[i].query, got[i].key}] = got[i].score;
  }
  index_t strong = 0;
  for (index_t i = 0; i < A.rows(); ++i)
    for (index_t j = 0; j < A.cols(); ++j) {
      const auto it = reported.find({i, j});
      if (A(i, j) >= eps * (1 + band)) {
        ++strong;
        EXPECT_TRUE(it != reported.end()) << what << ": missed (" << i << "," << j << ") A=" << A(i, j);
      }
      if (it != reported.end()) {
        EXPECT_GE(A(i, j), eps * (1 - band)) << what << ": false (" << i << "," << j << ")";
        EXPECT_NEAR(it->second, A(i, j), band * A(i, j)) << what;
      }
    }
  return strong;
}

inline void expect_identical(const std::vector<HeavyEntry>& a, const std::vector<HeavyEntry>& b,
                             const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].query, b[i].query) << what;
    EXPECT_EQ(a[i].key, b[i].key) << what;
    EXPECT_EQ(a[i].score, b[i].score) << what;  // bit for bit
  }
}

}  // namespace levattn::test
