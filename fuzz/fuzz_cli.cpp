// libFuzzer harness: the levattn command line, every command, run in-process through the same
// function main() calls (tools/levattn/run.hpp). The fuzz input is the argument list, one argument
// a line, after the program name. The commands run for real, on small input files that the harness
// copies into a working directory of its own (fuzz/cli_inputs/: .npy of several dtypes and ranks,
// a .safetensors with q, k and v, a malformed file) and that the arguments name; each run starts
// in that directory and leaves it as it was (so a finding's artifact path must be absolute:
// fuzz/run.sh gives one).
//
// What a finding is: a crash, a sanitizer report, an uncaught exception, an exit code other than
// 0, 1, 2 or 3, or a run past libFuzzer's time or memory limit. To keep every run fast and inside
// the working directory, the harness skips (returns -1, so libFuzzer does not keep the input):
//   * an argument with '/' or ".." (outputs stay in the working directory), a NUL, or more than
//     64 arguments;
//   * a number from 512 up to 2³¹ in magnitude anywhere in an argument (a size that is feasible
//     but slow: keys, queries, dimension, budgets, block rows); larger ones stay, as they must be
//     refused or fail to allocate;
//   * an argument with more than 8 comma-separated items (eval's budgets × thresholds × capture ε).
// Allocations over 1 GiB fail: this file replaces operator new so that a failed allocation throws
// std::bad_alloc, as it does outside AddressSanitizer (whose own operator new aborts instead), and
// the command reports "out of memory". So new/delete mismatches are not checked here; the asan
// preset of the test suite checks them. Between runs the harness puts back any input file a run
// overwrote, the OpenMP thread count (--threads) and the error state of stdout.
// `demo` and `planted` get --n 128, --m 16 and --d 32 (each one the arguments do not give) in place
// of their defaults of 65,536 keys, 4,096 queries and d = 64. `eval --plots` runs /bin/true
// instead of the plotting script.
#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "run.hpp"

namespace fs = std::filesystem;

namespace {

fs::path work_dir;
std::map<std::string, fs::file_time_type> inputs;  // the input files in work_dir: name → mtime
int report_fd = 2;                                 // a copy of stderr taken before libFuzzer's -close_fd_mask closes it

// True when some number in `argument` (any run of characters strtod reads as one) has magnitude in
// [512, 2³¹): a size that would make the run slow rather than wrong.
bool names_slow_size(const std::string& argument) {
  const char* p = argument.c_str();
  while (*p != '\0') {
    char* end = nullptr;
    const double x = std::strtod(p, &end);
    if (end == p) {
      ++p;
      continue;
    }
    if (std::isfinite(x) && std::fabs(x) >= 512.0 && std::fabs(x) < 2147483648.0) return true;
    p = end;
  }
  return false;
}

// Undoes what the last run changed, so that runs do not depend on each other: removes what it
// wrote, copies back an input it replaced, resets the thread count and stdout's error state.
void reset_after_run() {
  for (const fs::directory_entry& entry : fs::directory_iterator(work_dir))
    if (inputs.count(entry.path().filename().string()) == 0) fs::remove_all(entry.path());
  for (auto& [name, mtime] : inputs) {
    std::error_code ignored;
    if (fs::last_write_time(work_dir / name, ignored) == mtime) continue;
    fs::remove_all(work_dir / name);
    fs::copy_file(fs::path(LEVATTN_FUZZ_CLI_INPUTS) / name, work_dir / name);
    mtime = fs::last_write_time(work_dir / name);
  }
  omp_set_num_threads(1);
  std::fflush(stdout);
  std::clearerr(stdout);
  std::cout.clear();
}

void* allocate(std::size_t size, std::size_t alignment) {
  void* p = nullptr;
  if (alignment <= alignof(std::max_align_t))
    p = std::malloc(size == 0 ? 1 : size);
  else if (posix_memalign(&p, alignment, size == 0 ? 1 : size) != 0)
    p = nullptr;
  return p;
}

}  // namespace

// Every replaceable global allocation function (see the top of this file).
void* operator new(std::size_t size) {
  if (void* p = allocate(size, 0)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void* operator new(std::size_t size, std::align_val_t a) {
  if (void* p = allocate(size, static_cast<std::size_t>(a))) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size, std::align_val_t a) { return operator new(size, a); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return allocate(size, 0); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return allocate(size, 0); }
void* operator new(std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(size, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(size, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1:max_allocation_size_mb=1024"; }

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char pattern[] = "/dev/shm/levattn-fuzz-cli-XXXXXX";
  char fallback[] = "/tmp/levattn-fuzz-cli-XXXXXX";
  const char* made = mkdtemp(pattern);
  if (made == nullptr) made = mkdtemp(fallback);
  if (made == nullptr) abort();
  work_dir = made;
  std::atexit([] {
    std::error_code ignored;
    fs::remove_all(work_dir, ignored);
  });
  for (const fs::directory_entry& entry : fs::directory_iterator(LEVATTN_FUZZ_CLI_INPUTS)) {
    const fs::path copy = work_dir / entry.path().filename();
    fs::copy_file(entry.path(), copy);
    inputs[entry.path().filename().string()] = fs::last_write_time(copy);
  }
  setenv("LEVATTN_PYTHON", "/bin/true", 1);
  omp_set_num_threads(1);
  report_fd = dup(2);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  std::vector<std::string> arguments = {"levattn"};
  std::string current;
  for (std::size_t i = 0; i < size; ++i) {
    const char c = static_cast<char>(bytes[i]);
    if (c == '\n') {
      arguments.push_back(current);
      current.clear();
    } else if (c == '\0') {
      return -1;  // argv strings cannot hold a NUL
    } else {
      current.push_back(c);
    }
  }
  if (!current.empty()) arguments.push_back(current);
  if (arguments.size() > 64) return -1;
  for (const std::string& a : arguments)
    if (a.find('/') != std::string::npos || a.find("..") != std::string::npos || names_slow_size(a) ||
        std::count(a.begin(), a.end(), ',') > 7)
      return -1;
  const std::pair<const char*, const char*> small_sizes[] = {{"--n", "128"}, {"--m", "16"}, {"--d", "32"}};
  if (arguments.size() > 1 && (arguments[1] == "demo" || arguments[1] == "planted"))
    for (const auto& [option, value] : small_sizes) {
      const std::string name = option, given = name + "=";
      const bool present = std::any_of(arguments.begin(), arguments.end(),
                                       [&](const std::string& a) { return a == name || a.rfind(given, 0) == 0; });
      if (!present) arguments.insert(arguments.begin() + 2, {name, value});
    }

  std::vector<char*> argv;
  for (std::string& a : arguments) argv.push_back(a.data());
  argv.push_back(nullptr);
  const fs::path caller_dir = fs::current_path();  // libFuzzer's paths are relative to it
  fs::current_path(work_dir);
  const int code = levattn::cli::run_levattn(static_cast<int>(arguments.size()), argv.data());
  reset_after_run();
  fs::current_path(caller_dir);
  if (code < 0 || code > 3) {
    dprintf(report_fd, "fuzz_cli: exit code %d is none of 0, 1, 2, 3\n", code);
    abort();
  }
  return 0;
}
