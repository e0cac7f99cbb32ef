#include "report.hpp"

#include "levattn/core/error.hpp"
#include "levattn/core/threads.hpp"

#include <omp.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>

namespace levattn::cli {

void add_common_options(CLI::App& command, CommonOptions& options) {
  command.add_option("--threads", options.threads, "Threads to use (default: every core)")->check(CLI::PositiveNumber);
  command.add_flag("--json", options.json, "Print one JSON object with the results on stdout");
}

void add_rcond_option(CLI::App& command, double& rcond) {
  command.add_option("--rcond", rcond, "Relative singular-value cut-off of the pseudo-inverse")->capture_default_str();
}

void apply_threads(const CommonOptions& options) {
  if (options.threads > 0) omp_set_num_threads(thread_count(options.threads));
}

double start_threads(const CommonOptions& options) {
  const Stopwatch clock;
  apply_threads(options);
  start_thread_team();
  return clock.seconds();
}

Progress::Progress(std::string label, index_t total)
    : label_(std::move(label)), total_(total), enabled_(isatty(STDERR_FILENO) == 1) {}

Progress::~Progress() {
  if (enabled_ && shown_ >= 0) std::fprintf(stderr, "\r%s done   \n", label_.c_str());
}

void Progress::update(index_t done) {
  if (!enabled_ || total_ <= 0) return;
  const int percent = static_cast<int>(100 * done / total_);
  if (percent == shown_) return;
  shown_ = percent;
  std::fprintf(stderr, "\r%s %3d%%", label_.c_str(), percent);
  std::fflush(stderr);
}

void print_json(const nlohmann::json& object) {
  std::cout << object.dump() << std::endl;
  if (!std::cout) throw Error(ErrorKind::failure, "writing JSON to standard output failed");
}

bool ends_with(const std::string& path, const std::string& suffix) {
  return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
}

long long peak_resident_bytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmHWM:") {
      long long kib = -1;
      status >> kib;
      return kib >= 0 ? kib * 1024 : -1;
    }
    status.ignore(1 << 16, '\n');
  }
  return -1;
}

}  // namespace levattn::cli
