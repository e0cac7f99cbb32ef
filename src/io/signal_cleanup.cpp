// The tables of open_files.hpp and the handlers of signal_cleanup.hpp. Everything a handler calls
// is async-signal-safe: lock-free atomics, write(2), unlink(2), signal(2), raise(3), pause(2),
// _exit(2).
#include "levattn/io/signal_cleanup.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>

#include "io/open_files.hpp"

namespace levattn::io {

namespace {

constexpr int kSlots = 64;
constexpr std::size_t kPathBytes = 4096;

struct MapEntry {
  std::atomic<bool> claimed{false};
  std::atomic<std::uintptr_t> begin{0};  // 0: no entry
  std::size_t size = 0;
  char path[kPathBytes] = {};
};

struct TemporaryEntry {
  std::atomic<bool> claimed{false};
  std::atomic<bool> live{false};
  char path[kPathBytes] = {};
};

MapEntry maps[kSlots];
TemporaryEntry temporaries[kSlots];
const char* program_name = "levattn";

template <class Entry>
int claim(Entry (&table)[kSlots]) {
  for (int s = 0; s < kSlots; ++s) {
    bool expected = false;
    if (table[s].claimed.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) return s;
  }
  return -1;
}

void copy_path(char (&to)[kPathBytes], const std::string& from) { std::memcpy(to, from.c_str(), from.size() + 1); }

void say(const char* text) {
  const std::size_t n = std::strlen(text);
  if (::write(STDERR_FILENO, text, n) < 0) return;  // nothing more can be done about stderr
}

void remove_temporaries() {
  for (TemporaryEntry& t : temporaries)
    if (t.live.load(std::memory_order_acquire)) ::unlink(t.path);
}

std::atomic<bool> reporting{false};  // a fault is being reported: other faulting threads wait

void on_bus(int sig, siginfo_t* info, void*) {
  if (reporting.exchange(true)) {
    for (;;) ::pause();  // the first thread's _exit ends this one
  }
  const auto address = reinterpret_cast<std::uintptr_t>(info->si_addr);
  const char* path = nullptr;
  for (const MapEntry& m : maps) {
    const std::uintptr_t begin = m.begin.load(std::memory_order_acquire);
    if (begin != 0 && address >= begin && address - begin < m.size) path = m.path;
  }
  remove_temporaries();
  if (path == nullptr || info->si_code <= 0) {  // not a fault in a mapped input (or sent by kill)
    ::signal(sig, SIG_DFL);
    ::raise(sig);  // the default action, on return from this handler
    return;
  }
  say(program_name);
  say(": error: ");
  say(path);
  say(": the file changed while being read (it shrank while memory-mapped; "
      "inputs must not change until the command ends)\n");
  ::_exit(3);
}

void on_termination(int sig) {
  remove_temporaries();
  ::signal(sig, SIG_DFL);
  ::raise(sig);  // delivered when this handler returns: the default action, the usual status
}

}  // namespace

namespace detail {

int record_map(const void* base, std::size_t size, const std::string& path) {
  if (base == nullptr || path.size() >= kPathBytes) return -1;
  const int s = claim(maps);
  if (s < 0) return -1;
  copy_path(maps[s].path, path);
  maps[s].size = size;
  maps[s].begin.store(reinterpret_cast<std::uintptr_t>(base), std::memory_order_release);
  return s;
}

void forget_map(int slot) {
  if (slot < 0) return;
  maps[slot].begin.store(0, std::memory_order_release);
  maps[slot].claimed.store(false, std::memory_order_release);
}

int record_temporary(const std::string& path) {
  if (path.size() >= kPathBytes) return -1;
  const int s = claim(temporaries);
  if (s < 0) return -1;
  copy_path(temporaries[s].path, path);
  temporaries[s].live.store(true, std::memory_order_release);
  return s;
}

void forget_temporary(int slot) {
  if (slot < 0) return;
  temporaries[slot].live.store(false, std::memory_order_release);
  temporaries[slot].claimed.store(false, std::memory_order_release);
}

}  // namespace detail

void install_signal_cleanup(const char* program) {
  program_name = program;
  struct sigaction bus {};
  bus.sa_sigaction = on_bus;
  bus.sa_flags = SA_SIGINFO;
  sigemptyset(&bus.sa_mask);
  sigaction(SIGBUS, &bus, nullptr);
  struct sigaction end {};
  end.sa_handler = on_termination;
  sigemptyset(&end.sa_mask);
  // A file-size limit (RLIMIT_FSIZE) then fails the write with EFBIG, which AtomicFile reports and
  // cleans up after, instead of killing the process with SIGXFSZ and leaving the temporary.
  signal(SIGXFSZ, SIG_IGN);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction before {};
    sigaction(sig, nullptr, &before);
    if (before.sa_handler != SIG_IGN) sigaction(sig, &end, nullptr);  // an ignored signal stays ignored
  }
}

}  // namespace levattn::io
