// What every command shares: the --threads/--json options, phase timing, progress on a terminal.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "levattn/core/matrix_view.hpp"

namespace levattn::cli {

// A command line that parses but asks for something impossible (exit code 2).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Options every command takes.
struct CommonOptions {
  int threads = 0;  // 0: every core
  bool json = false;
};
void add_common_options(CLI::App& command, CommonOptions& options);
// Sets the OpenMP (and so OpenBLAS) thread count when --threads was given (at most the cores).
void apply_threads(const CommonOptions& options);

class Stopwatch {
 public:
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// Wall-clock seconds spent loading inputs, computing and writing outputs.
struct Phases {
  double load = 0.0, compute = 0.0, write = 0.0;
  nlohmann::json json() const { return {{"load", load}, {"compute", compute}, {"write", write}}; }
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
