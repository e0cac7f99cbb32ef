// Fault injection for the CLI's fault tests (tests/cli/test_faults.py), loaded with LD_PRELOAD:
//  * LEVATTN_FAULT_TRUNCATE=PATH: right after the program memory-maps PATH, PATH is truncated to
//    LEVATTN_FAULT_TRUNCATE_TO bytes (default 4096), so that reading the rest of the map raises
//    SIGBUS — what happens when another process truncates an input mid-read, made deterministic.
//  * LEVATTN_FAULT_SIGNAL_AT_RENAME=N: the first rename(2) raises signal N instead — a signal
//    arriving while an output's temporary is complete but not yet in place.
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

bool same_file(int fd, const char* path) {
  char link[64], target[PATH_MAX], wanted[PATH_MAX];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0 || realpath(path, wanted) == nullptr) return false;
  target[n] = '\0';
  return std::strcmp(target, wanted) == 0;
}

}  // namespace

extern "C" void* mmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset) {
  using Mmap = void* (*)(void*, size_t, int, int, int, off_t);
  static const auto real = reinterpret_cast<Mmap>(dlsym(RTLD_NEXT, "mmap"));
  void* result = real(addr, length, prot, flags, fd, offset);
  static bool done = false;
  const char* victim = std::getenv("LEVATTN_FAULT_TRUNCATE");
  if (!done && victim != nullptr && fd >= 0 && result != MAP_FAILED && same_file(fd, victim)) {
    done = true;
    const char* to = std::getenv("LEVATTN_FAULT_TRUNCATE_TO");
    if (truncate(victim, to != nullptr ? std::atoll(to) : 4096) != 0) std::perror("inject: truncate");
  }
  return result;
}

extern "C" int rename(const char* from, const char* to) {
  using Rename = int (*)(const char*, const char*);
  static const auto real = reinterpret_cast<Rename>(dlsym(RTLD_NEXT, "rename"));
  static bool done = false;
  const char* sig = std::getenv("LEVATTN_FAULT_SIGNAL_AT_RENAME");
  if (!done && sig != nullptr) {
    done = true;
    raise(std::atoi(sig));
  }
  return real(from, to);
}
