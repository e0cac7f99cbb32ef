// Start-up under an address-space limit (ulimit -v, RLIMIT_AS). Debian's OpenBLAS 0.3.21 (the
// OpenMP build) reserves a 128 MiB buffer for every thread it will use while the program loads,
// before main, and when the limit leaves no room it retries forever (100% CPU, no message). This
// runs before any library initialiser (the executable's .preinit_array) and, when a limit is set,
// reserves and releases the address space that many threads need; if it does not fit, it says so
// on stderr and runs the program again (execve of /proc/self/exe, same arguments) with
// OMP_NUM_THREADS and OMP_THREAD_LIMIT set to the most threads that fit — OpenBLAS sizes its
// buffers by OMP_NUM_THREADS, and the thread limit caps every later parallel region (and
// levattn's thread counts, core/threads.hpp), so no later call needs more buffers either. If not
// even one thread fits, it exits 1 with an error naming the limit. (Setting the variables here
// would not last: libc's own initialiser, which runs after this, restores the environment the
// process started with; and OpenBLAS counts processors, not the CPU affinity.) Measured here:
// start-up needs about 180 MB of address space with one thread and 311 MB with two. Linked into
// levattn and levattn-mpi.
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr unsigned long long kMiB = 1ull << 20;
constexpr unsigned long long kOpenBlasPerThread = 132 * kMiB;  // BUFFER_SIZE 128 MiB + its alignment
constexpr unsigned long long kPerExtraThread = 72 * kMiB;      // a thread's stack and malloc arena
constexpr unsigned long long kMargin = 16 * kMiB;              // the program's own first allocations

// The threads OpenBLAS will start: OMP_NUM_THREADS if set in `env`, else the processors (online,
// or in this process's CPU set if more: OpenBLAS does not count by affinity).
int wanted_threads(char** env) {
  for (char** e = env; e != nullptr && *e != nullptr; ++e)
    if (std::strncmp(*e, "OMP_NUM_THREADS=", 16) == 0 && std::atoi(*e + 16) >= 1) return std::atoi(*e + 16);
  cpu_set_t cpus;
  const int in_set = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
  return std::max({1, in_set, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN))});
}

bool fits(int threads) {
  const unsigned long long bytes =
      threads * kOpenBlasPerThread + (threads - 1) * kPerExtraThread + kMargin;
  void* p = mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return false;
  munmap(p, bytes);
  return true;
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
  const int wanted = wanted_threads(env);
  int threads = wanted;
  while (threads >= 1 && !fits(threads)) --threads;
  const unsigned long long mib = static_cast<unsigned long long>(limit.rlim_cur) / kMiB;
  if (threads < 1) {
    std::fprintf(stderr,
                 "%s: error: the address-space limit (ulimit -v) of %llu MiB leaves no room for OpenBLAS's "
                 "start-up buffer (%llu MiB a thread) beside the program; raise the limit by at least "
                 "%llu MiB\n",
                 program(argv), mib, kOpenBlasPerThread / kMiB, (kOpenBlasPerThread + kMargin) / kMiB);
    _exit(1);
  }
  if (threads == wanted) return;
  std::fprintf(stderr, "%s: note: the address-space limit (ulimit -v) of %llu MiB fits %d of %d threads "
               "(OpenBLAS reserves %llu MiB a thread at start-up); running with %d\n",
               program(argv), mib, threads, wanted, kOpenBlasPerThread / kMiB, threads);
  // The environment without OMP_NUM_THREADS and OMP_THREAD_LIMIT, then both set to `threads`.
  static char num_threads[40], thread_limit[40];
  std::snprintf(num_threads, sizeof num_threads, "OMP_NUM_THREADS=%d", threads);
  std::snprintf(thread_limit, sizeof thread_limit, "OMP_THREAD_LIMIT=%d", threads);
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
  _exit(1);
}

}  // namespace

// Before the shared libraries' initialisers, hence before OpenBLAS's (and libgomp reading
// OMP_NUM_THREADS).
__attribute__((section(".preinit_array"), used)) void (*const levattn_preinit)(int, char**, char**) =
    fit_threads_to_address_space;
