// The arguments that a levattn command and the levattn-mpi command of the same name share, with
// the common options (report.hpp): select, heavy.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "levattn/linalg/gram_factors.hpp"
#include "report.hpp"

namespace levattn::cli {

struct SelectArguments {
  std::string keys, output;
  std::optional<double> eps;     // threshold: U = {j : score_j ≥ ε}
  std::optional<index_t> top_k;  // budget: the k keys of largest score
  double rcond = kDefaultRcond;
  CommonOptions common;
};

// Registers --keys and --output (both required, with the help texts given), --eps, --top-k and
// --rcond on `command`; parsing fails (CLI::RequiredError) unless exactly one of --eps and --top-k
// is given.
void add_select_arguments(CLI::App& command, SelectArguments& arguments, const std::string& keys_help,
                          const std::string& output_help);

struct HeavyArguments {
  std::string queries, keys;
  std::string output;  // the CSV of the entries; "" for standard output
  double eps = 0.0;
  double p = 2.0;      // exponent of f(x) = |x|^p
  index_t verify = 0;  // queries (per head) to check against brute force
  double rcond = kDefaultRcond;
  CommonOptions common;
};

// Registers --queries, --keys and --eps (required; the inputs with the help texts given),
// --output, --p, --verify and --rcond on `command`.
void add_heavy_arguments(CLI::App& command, HeavyArguments& arguments, const std::string& queries_help,
                         const std::string& keys_help);

}  // namespace levattn::cli
