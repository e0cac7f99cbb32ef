// The number of threads a call uses (OpenMP, and so Debian's OpenMP build of OpenBLAS).
//
// Results never depend on it (every parallel loop in the library is ordered by construction);
// it only sets how many cores work. A count above the machine's processors, or above OpenMP's
// thread limit (OMP_THREAD_LIMIT), is lowered to them, so no request can make the runtime fail to
// create threads.
#pragma once

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

}  // namespace levattn
