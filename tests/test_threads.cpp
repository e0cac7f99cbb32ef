#include <gtest/gtest.h>
#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <set>
#include <vector>

#include "levattn/core/error.hpp"
#include "levattn/core/threads.hpp"

namespace levattn {
namespace {

// The processors each thread of a team of `threads` may run on, by thread number.
std::vector<std::vector<int>> team_masks(int threads) {
  std::vector<std::vector<int>> masks(static_cast<size_t>(threads));
#pragma omp parallel num_threads(threads)
  {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0)
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) masks[static_cast<size_t>(omp_get_thread_num())].push_back(c);
  }
  return masks;
}

std::vector<int> allowed_processors() { return team_masks(1)[0]; }

TEST(ThreadCount, ZeroMeansEveryProcessorAndNoRequestExceedsThem) {
  const int processors = std::min(omp_get_num_procs(), omp_get_thread_limit());
  EXPECT_EQ(thread_count(0), processors);
  EXPECT_EQ(thread_count(1), 1);
  EXPECT_EQ(thread_count(processors + 5), processors);
  EXPECT_THROW(thread_count(-1), Error);
}

TEST(StartThreadTeam, MovesThreadsToDistinctProcessorsAndGivesBackTheirMasks) {
  const std::vector<int> allowed = allowed_processors();
  const int threads = thread_count(static_cast<int>(allowed.size()));  // one a processor, within OpenMP's limit
  if (threads < 2) GTEST_SKIP() << "one processor or one thread allowed: nothing to spread";
  const ThreadScope scope(threads);
  const auto before = team_masks(threads);
  const std::vector<int> ran_on = start_thread_team();
  ASSERT_EQ(ran_on.size(), static_cast<size_t>(threads));
  for (const int cpu : ran_on) EXPECT_TRUE(std::find(allowed.begin(), allowed.end(), cpu) != allowed.end()) << cpu;
  EXPECT_EQ(std::set<int>(ran_on.begin(), ran_on.end()).size(), ran_on.size()) << "two threads on one processor";
  EXPECT_EQ(team_masks(threads), before);
}

TEST(StartThreadTeam, MovesNothingWithOneThread) {
  const ThreadScope scope(1);
  EXPECT_TRUE(start_thread_team().empty());
  EXPECT_EQ(allowed_processors(), team_masks(1)[0]);
}

TEST(StartThreadTeam, MovesNothingWhenTheCallerMayUseOneProcessor) {
  const std::vector<int> allowed = allowed_processors();
  cpu_set_t all, one;
  CPU_ZERO(&all);
  CPU_ZERO(&one);
  for (const int c : allowed) CPU_SET(c, &all);
  CPU_SET(allowed[0], &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  const int previous = omp_get_max_threads();
  omp_set_num_threads(2);  // a team of two, whatever OpenMP makes of the narrowed mask
  const std::vector<int> ran_on = start_thread_team();
  const std::vector<int> caller = allowed_processors();
  omp_set_num_threads(previous);
  ASSERT_EQ(sched_setaffinity(0, sizeof all, &all), 0);
  EXPECT_TRUE(ran_on.empty());
  EXPECT_EQ(caller, std::vector<int>{allowed[0]});
}

}  // namespace
}  // namespace levattn
