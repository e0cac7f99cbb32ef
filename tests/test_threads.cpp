// Thread counts and the start of the thread team (core/threads.hpp): which processors each thread
// ran on and may run on, read back with sched_getaffinity, before and after start_thread_team.
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

using Mask = std::vector<int>;  // processors, ascending

cpu_set_t to_set(const Mask& mask) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (const int c : mask) CPU_SET(c, &set);
  return set;
}

Mask own_mask() {
  cpu_set_t set;
  CPU_ZERO(&set);
  Mask mask;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) mask.push_back(c);
  return mask;
}

// The mask of each thread of a team of `threads`, by thread number.
// Empty if the team had another size.
std::vector<Mask> team_masks(int threads) {
  std::vector<Mask> masks(static_cast<size_t>(threads));
  bool full = true;
#pragma omp parallel num_threads(threads)
  {
    masks[static_cast<size_t>(omp_get_thread_num())] = own_mask();
#pragma omp master
    full = omp_get_num_threads() == threads;
  }
  return full ? masks : std::vector<Mask>{};
}

// Sets thread i of a team of masks.size() to masks[i]; true if every thread took its mask.
bool set_team_masks(const std::vector<Mask>& masks) {
  int refused = 0;
#pragma omp parallel num_threads(static_cast <int>(masks.size())) reduction(+ : refused)
  {
    const cpu_set_t set = to_set(masks[static_cast<size_t>(omp_get_thread_num())]);
    refused += sched_setaffinity(0, sizeof set, &set) != 0;
  }
  return refused == 0;
}

// When it goes, gives every thread of a team of `threads` (the caller included) the mask the
// caller had when it was made, whatever a test did to their masks.
class MaskGuard {
 public:
  explicit MaskGuard(int threads) : threads_(threads), mask_(own_mask()) {}
  ~MaskGuard() { set_team_masks(std::vector<Mask>(static_cast<size_t>(threads_), mask_)); }
  MaskGuard(const MaskGuard&) = delete;
  MaskGuard& operator=(const MaskGuard&) = delete;
  const Mask& mask() const { return mask_; }

 private:
  int threads_;
  Mask mask_;
};

bool openmp_binds() { return omp_get_proc_bind() != omp_proc_bind_false; }

// Teams of exactly the size asked (OMP_DYNAMIC could shrink them under load), so that thread
// number t is the same thread in consecutive regions, as GCC's OpenMP keeps it for equal teams.
class StartThreadTeam : public ::testing::Test {
 protected:
  void SetUp() override { omp_set_dynamic(0); }
};

TEST(ThreadCount, ZeroMeansEveryProcessorAndNoRequestExceedsThem) {
  const int processors = std::min(omp_get_num_procs(), omp_get_thread_limit());
  EXPECT_EQ(thread_count(0), processors);
  EXPECT_EQ(thread_count(1), 1);
  EXPECT_EQ(thread_count(processors + 5), processors);
  EXPECT_THROW(thread_count(-1), Error);
}

// Each worker starts with a mask of its own: one processor, not the one it is to be moved to and
// unlike the caller's. So a worker left unmoved, a worker given the caller's mask back, and one
// given none back all fail.
TEST_F(StartThreadTeam, MovesThreadsToDistinctProcessorsAndGivesEachItsOwnMaskBack) {
  if (openmp_binds()) GTEST_SKIP() << "OpenMP binds its threads: nothing is moved";
  const Mask allowed = own_mask();
  const int threads = thread_count(static_cast<int>(allowed.size()));
  if (threads < 2) GTEST_SKIP() << "one processor or one thread allowed: nothing to spread";
  const ThreadScope scope(threads);
  const MaskGuard guard(threads);
  std::vector<Mask> before(static_cast<size_t>(threads), allowed);
  for (size_t t = 1; t < before.size(); ++t) before[t] = {allowed[(t + 1) % allowed.size()]};
  ASSERT_TRUE(set_team_masks(before));
  ASSERT_EQ(team_masks(threads), before);

  const std::vector<int> ran_on = start_thread_team();
  ASSERT_EQ(ran_on.size(), static_cast<size_t>(threads));
  for (size_t t = 0; t < ran_on.size(); ++t) EXPECT_EQ(ran_on[t], allowed[t]) << "thread " << t;
  EXPECT_EQ(team_masks(threads), before);
}

TEST_F(StartThreadTeam, MovesAtMostOneThreadAProcessor) {
  if (openmp_binds()) GTEST_SKIP() << "OpenMP binds its threads: nothing is moved";
  const Mask allowed = own_mask();
  const int threads = static_cast<int>(allowed.size()) + 2;
  if (allowed.size() < 2 || threads > omp_get_thread_limit()) GTEST_SKIP() << "too few processors or threads";
  const int previous = omp_get_max_threads();
  omp_set_num_threads(threads);  // more threads than processors, as OMP_NUM_THREADS may ask
  const MaskGuard guard(threads);
  const std::vector<Mask> before = team_masks(threads);
  const std::vector<int> ran_on = start_thread_team();
  const std::vector<Mask> after = team_masks(threads);
  omp_set_num_threads(previous);
  ASSERT_EQ(ran_on.size(), static_cast<size_t>(threads));
  for (size_t t = 0; t < ran_on.size(); ++t) EXPECT_EQ(ran_on[t], t < allowed.size() ? allowed[t] : -1) << t;
  EXPECT_EQ(after, before);
}

TEST_F(StartThreadTeam, MovesNothingWithOneThread) {
  if (thread_count(2) < 2) GTEST_SKIP() << "one processor: nothing would move anyway";
  const ThreadScope scope(1);
  const Mask before = own_mask();
  EXPECT_TRUE(start_thread_team().empty());
  EXPECT_EQ(own_mask(), before);
}

TEST_F(StartThreadTeam, MovesNothingInsideAParallelRegion) {
  if (thread_count(2) < 2) GTEST_SKIP() << "one processor: nothing would move anyway";
  const ThreadScope scope(2);
  std::vector<int> ran_on = {0};
#pragma omp parallel num_threads(2)
  {
#pragma omp master
    ran_on = start_thread_team();
  }
  EXPECT_TRUE(ran_on.empty());
}

TEST_F(StartThreadTeam, MovesNothingWhenTheCallerMayUseOneProcessor) {
  const MaskGuard guard(1);
  const cpu_set_t one = to_set({guard.mask().front()});
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  const int previous = omp_get_max_threads();
  omp_set_num_threads(2);  // a team of two, whatever OpenMP makes of the narrowed mask
  const std::vector<int> ran_on = start_thread_team();
  const Mask caller = own_mask();
  omp_set_num_threads(previous);
  EXPECT_TRUE(ran_on.empty());
  EXPECT_EQ(caller, Mask{guard.mask().front()});
}

// Runs with OMP_PROC_BIND=close and OMP_PLACES=sockets as the ctest test_threads_bound
// (tests/CMakeLists.txt): the caller's place then holds several processors, so only the binding
// check can make start_thread_team do nothing.
TEST_F(StartThreadTeam, MovesNothingWhenOpenMPBindsThreads) {
  if (!openmp_binds()) GTEST_SKIP() << "runs under OMP_PROC_BIND (ctest test_threads_bound)";
  const int threads = thread_count(0);
  if (threads < 2) GTEST_SKIP() << "one processor: nothing would move anyway";
  ASSERT_GE(own_mask().size(), 2u) << "the caller's place holds one processor: set OMP_PLACES=sockets";
  const ThreadScope scope(threads);
  const std::vector<Mask> before = team_masks(threads);
  EXPECT_TRUE(start_thread_team().empty());
  EXPECT_EQ(team_masks(threads), before);
}

}  // namespace
}  // namespace levattn
