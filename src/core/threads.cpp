#include "levattn/core/threads.hpp"

#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <string>
#include <vector>

#include "levattn/core/error.hpp"

namespace levattn {

int thread_count(int requested) {
  if (requested < 0)
    throw Error(ErrorKind::bad_input, "threads must be ≥ 1 (0: every core), got " + std::to_string(requested));
  const int processors = std::max(1, std::min(omp_get_num_procs(), omp_get_thread_limit()));
  return requested == 0 ? processors : std::min(requested, processors);
}

ThreadScope::ThreadScope(int requested) : previous_(omp_get_max_threads()) {
  omp_set_num_threads(thread_count(requested));
}

ThreadScope::~ThreadScope() { omp_set_num_threads(previous_); }

std::vector<int> start_thread_team() {
  const int threads = omp_get_max_threads();
  if (threads < 2 || omp_in_parallel() || omp_get_proc_bind() != omp_proc_bind_false) return {};
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return {};  // e.g. more than CPU_SETSIZE processors
  std::vector<int> processors;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &allowed)) processors.push_back(c);
  if (processors.size() < 2) return {};
  std::vector<int> ran_on(static_cast<size_t>(threads), -1);
#pragma omp parallel num_threads(threads)
  {
    const auto t = static_cast<size_t>(omp_get_thread_num());
    cpu_set_t own, one;
    CPU_ZERO(&own);
    CPU_ZERO(&one);
    // Threads beyond the processors stay where they are: one thread a processor at most.
    bool moved = false;
    if (t < processors.size()) {
      CPU_SET(processors[t], &one);
      moved = sched_getaffinity(0, sizeof own, &own) == 0 && sched_setaffinity(0, sizeof one, &one) == 0;
    }
    if (moved) ran_on[t] = sched_getcpu();
#pragma omp barrier  // held until every thread has moved, so all are on their processors at once
    // If its own mask is refused now (the allowed set shrank meanwhile), a thread takes the caller's
    // rather than stay on one processor.
    if (moved && sched_setaffinity(0, sizeof own, &own) != 0) sched_setaffinity(0, sizeof allowed, &allowed);
  }
  return ran_on;
}

}  // namespace levattn
