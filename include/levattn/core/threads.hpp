// The number of threads a call uses (OpenMP, and so Debian's OpenMP build of OpenBLAS), and the
// start of the thread team with its threads placed apart.
//
// Results never depend on it (every parallel loop in the library is ordered by construction);
// it only sets how many cores work. A count above the machine's processors, or above OpenMP's
// thread limit (OMP_THREAD_LIMIT), is lowered to them, so no request can make the runtime fail to
// create threads.
#pragma once

#include <vector>

namespace levattn {

// The count used for a request: 0 means every processor; n ≥ 1 means min(n, processors); both
// at most the thread limit.
// Throws Error{bad_input} for n < 0.
int thread_count(int requested);

// Sets the calling thread's OpenMP thread count to thread_count(requested) for the lifetime of the
// object and restores the previous count afterwards. OpenMP keeps the count per thread, so scopes
// in different threads do not disturb each other.
class ThreadScope {
 public:
  explicit ThreadScope(int requested);
  ~ThreadScope();
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int previous_;
};

// Starts OpenMP's thread team for the calling thread's count now, rather than in the first
// parallel call, with thread i first moved to the i-th processor the caller may run on (threads
// beyond the processors are not moved) and then given back the processors it was allowed before.
// Placement only: afterwards every thread may run where it could before, and no result depends on
// it. Why: Linux may start a new thread on its creator's processor, and both may then share it for
// milliseconds of the first parallel call (BENCHMARKS.md, "where a single cold call's time went").
// Does nothing with one thread, with one processor allowed, inside a parallel region, or when
// OpenMP binds its threads itself (OMP_PROC_BIND, or OMP_PLACES / GOMP_CPU_AFFINITY, which imply
// it in GCC's OpenMP); a thread whose move is refused (sched_setaffinity) stays where it was.
// Returns, for thread i of the team, the processor it ran on once moved (sched_getcpu), or -1 if
// it was not moved; empty when nothing was done.
std::vector<int> start_thread_team();

}  // namespace levattn
