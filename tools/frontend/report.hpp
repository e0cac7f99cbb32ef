// What every command of levattn and levattn-mpi shares: the --threads/--json options, phase
// timing, progress on a terminal, JSON on stdout.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "exit_codes.hpp"
#include "levattn/core/matrix_view.hpp"

namespace levattn::cli {

// Options every command takes.
struct CommonOptions {
  int threads = 0;  // 0: every core
  bool json = false;
};
void add_common_options(CLI::App& command, CommonOptions& options);
// --rcond: the relative singular-value cut-off of the pseudo-inverse (linalg/gram_factors.hpp).
void add_rcond_option(CLI::App& command, double& rcond);
// Sets the OpenMP (and so OpenBLAS) thread count when --threads was given (at most the cores).
void apply_threads(const CommonOptions& options);
// apply_threads, then starts the thread team with each thread briefly placed on a processor of its
// own (core/threads.hpp: start_thread_team); returns the seconds both took, the "threads" phase.
// For levattn's commands: levattn-mpi's ranks may share a node's processors and call apply_threads.
double start_threads(const CommonOptions& options);

class Stopwatch {
 public:
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// The peak resident memory of this program so far, in bytes (VmHWM of /proc/self/status: counts
// the pages of mapped input files it touched, and starts afresh at exec, unlike getrusage's
// ru_maxrss); -1 where /proc is not available.
long long peak_resident_bytes();

// Wall-clock seconds spent starting the threads (start_threads), loading inputs, computing and
// writing outputs.
struct Phases {
  double threads = 0.0, load = 0.0, compute = 0.0, write = 0.0;
  nlohmann::json json() const { return {{"threads", threads}, {"load", load}, {"compute", compute}, {"write", write}}; }
};

// "label  37%" redrawn on stderr, only when stderr is a terminal.
class Progress {
 public:
  Progress(std::string label, index_t total);
  ~Progress();
  void update(index_t done);

 private:
  std::string label_;
  index_t total_;
  int shown_ = -1;
  bool enabled_;
};

// Prints one JSON object on stdout.
void print_json(const nlohmann::json& object);

// True when `path` ends with `suffix`.
bool ends_with(const std::string& path, const std::string& suffix);

}  // namespace levattn::cli
