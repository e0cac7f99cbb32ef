// Carries the first exception thrown inside an OpenMP region out of it (an exception must not
// cross the region's boundary). Workers call capture() in their catch block and check failed()
// to stop early; after the region, rethrow_if_any() rethrows on the calling thread.
#pragma once

#include <atomic>
#include <exception>
#include <mutex>

namespace levattn {

class FirstError {
 public:
  void capture() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = std::current_exception();
    failed_.store(true, std::memory_order_relaxed);
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  void rethrow_if_any() {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr error_;
  std::atomic<bool> failed_{false};
};

}  // namespace levattn
