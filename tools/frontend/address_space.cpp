// Start-up under an address-space limit (ulimit -v, RLIMIT_AS). Debian's OpenBLAS 0.3.21 (the
// OpenMP build) takes a 128 MiB buffer for every thread while the program loads, before main, and
// another for every BLAS call made inside a parallel region; when the limit leaves no room for
// one, it retries forever (100% CPU, no message). This runs before any library initialiser (the
// executable's .preinit_array) and, when a limit is set, reserves and releases the address space
// t threads need — two buffers each, a thread's stack and malloc arena, a margin — for the
// largest t up to the processors that fits. If that is fewer than the processors, it runs the
// program again (execve of /proc/self/exe, same arguments) with OMP_NUM_THREADS and
// OMP_THREAD_LIMIT at most t: OpenBLAS sizes its start-up buffers by the first, and the second
// caps every parallel region (and levattn's --threads, core/threads.hpp). If not even one thread
// fits, it exits 1 naming the limit. (Setting the variables here would not last: libc's own
// initialiser, which runs after this, restores the environment the process started with; and
// OpenBLAS counts processors, not the CPU affinity.) Measured here: `levattn heavy` needs about
// 330 MB of address space with one thread and 650 MB with two. What a command's own data needs
// comes on top; should that exhaust the limit inside a BLAS call, OpenBLAS still spins (README,
// "Reliability"). Linked into levattn and levattn-mpi (the object library levattn_address_space).
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "exit_codes.hpp"

namespace {

constexpr unsigned long long kMiB = 1ull << 20;
constexpr unsigned long long kBuffer = 132 * kMiB;         // OpenBLAS's BUFFER_SIZE, 128 MiB, aligned
constexpr unsigned long long kPerThread = 2 * kBuffer;     // at start-up, and in a parallel region
constexpr unsigned long long kPerExtraThread = 72 * kMiB;  // a thread's stack and malloc arena
constexpr unsigned long long kMargin = 16 * kMiB;          // the program's own first allocations

// The value of NAME=… in `env` as a positive int (clamped to INT_MAX), or 0 when absent or not one.
int env_count(char** env, const char* name) {
  const std::size_t n = std::strlen(name);
  for (char** e = env; e != nullptr && *e != nullptr; ++e)
    if (std::strncmp(*e, name, n) == 0 && (*e)[n] == '=') {
      const long long v = std::strtoll(*e + n + 1, nullptr, 10);
      return v >= 1 ? static_cast<int>(std::min<long long>(v, INT_MAX)) : 0;
    }
  return 0;
}

// The processors OpenBLAS and OpenMP may use: online, or in this process's CPU set if more
// (OpenBLAS does not count by affinity).
int processors() {
  cpu_set_t cpus;
  const int in_set = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
  return std::max({1, in_set, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN))});
}

bool fits(int threads) {
  const unsigned long long t = static_cast<unsigned long long>(threads);
  const unsigned long long bytes = t * kPerThread + (t - 1) * kPerExtraThread + kMargin;
  void* p = mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return false;
  munmap(p, bytes);
  return true;
}

// The process's address space in use now (/proc/self/statm), in bytes; 0 if unknown.
unsigned long long in_use() {
  char text[64] = {};
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  const std::size_t n = std::fread(text, 1, sizeof text - 1, f);
  std::fclose(f);
  text[n] = '\0';
  return std::strtoull(text, nullptr, 10) * static_cast<unsigned long long>(sysconf(_SC_PAGESIZE));
}

// argv[0] without its directory, for the message prefix.
const char* program(char** argv) {
  const char* name = argv != nullptr && argv[0] != nullptr ? argv[0] : "levattn";
  for (const char* c = name; *c != '\0'; ++c)
    if (*c == '/') name = c + 1;
  return name;
}

void fit_threads_to_address_space(int, char** argv, char** env) {
  rlimit limit{};
  if (getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return;
  const int procs = processors();
  int threads = procs;
  while (threads >= 1 && !fits(threads)) --threads;
  const unsigned long long mib = static_cast<unsigned long long>(limit.rlim_cur) / kMiB;
  if (threads < 1) {
    std::fprintf(stderr,
                 "%s: error: the address-space limit (ulimit -v) of %llu MiB leaves no room for OpenBLAS's "
                 "buffers (%llu MiB a thread) beside the program; raise it to at least %llu MiB\n",
                 program(argv), mib, kPerThread / kMiB, (in_use() + kPerThread + kMargin) / kMiB + 1);
    _exit(levattn::cli::exit_code::failure);
  }
  if (threads == procs) return;  // no thread count can exceed the processors
  const int asked = env_count(env, "OMP_NUM_THREADS"), limited = env_count(env, "OMP_THREAD_LIMIT");
  if (asked >= 1 && asked <= threads && limited >= 1 && limited <= threads) return;  // already within
  const int wanted = asked >= 1 ? std::min(asked, procs) : procs;
  if (threads < wanted)
    std::fprintf(stderr,
                 "%s: note: the address-space limit (ulimit -v) of %llu MiB fits %d of %d threads "
                 "(OpenBLAS takes %llu MiB a thread); running with %d\n",
                 program(argv), mib, threads, wanted, kPerThread / kMiB, threads);
  // The environment with OMP_NUM_THREADS and OMP_THREAD_LIMIT replaced by values within `threads`.
  static char num_threads[40], thread_limit[40];
  std::snprintf(num_threads, sizeof num_threads, "OMP_NUM_THREADS=%d", asked >= 1 ? std::min(asked, threads) : threads);
  std::snprintf(thread_limit, sizeof thread_limit, "OMP_THREAD_LIMIT=%d",
                limited >= 1 ? std::min(limited, threads) : threads);
  std::size_t count = 0;
  for (char** e = env; e != nullptr && *e != nullptr; ++e) ++count;
  char** fresh = static_cast<char**>(std::calloc(count + 3, sizeof(char*)));
  if (fresh == nullptr) return;
  std::size_t n = 0;
  for (char** e = env; e != nullptr && *e != nullptr; ++e)
    if (std::strncmp(*e, "OMP_NUM_THREADS=", 16) != 0 && std::strncmp(*e, "OMP_THREAD_LIMIT=", 17) != 0)
      fresh[n++] = *e;
  fresh[n++] = num_threads;
  fresh[n++] = thread_limit;
  execve("/proc/self/exe", argv, fresh);
  std::fprintf(stderr, "%s: error: cannot restart with %d thread%s: %s\n", program(argv), threads,
               threads == 1 ? "" : "s", std::strerror(errno));
  _exit(levattn::cli::exit_code::failure);
}

}  // namespace

// Before the shared libraries' initialisers, hence before OpenBLAS's (and libgomp reading
// OMP_NUM_THREADS).
__attribute__((section(".preinit_array"), used)) void (*const levattn_preinit)(int, char**,
                                                                               char**) = fit_threads_to_address_space;
