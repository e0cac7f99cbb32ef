#include "levattn/core/threads.hpp"

#include <omp.h>

#include <algorithm>
#include <string>

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

}  // namespace levattn
