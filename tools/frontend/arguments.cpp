#include "arguments.hpp"

namespace levattn::cli {

void add_select_arguments(CLI::App& c, SelectArguments& a, const std::string& keys_help,
                          const std::string& output_help) {
  c.add_option("--keys", a.keys, keys_help)->required();
  auto* eps = c.add_option("--eps", a.eps, "Threshold ε in (0, 1]: U = {j : τ_j ≥ ε}");
  auto* k = c.add_option("--top-k", a.top_k, "Budget: the k keys with the largest τ (ties: lower index)");
  eps->excludes(k);
  k->excludes(eps);
  add_rcond_option(c, a.rcond);
  c.add_option("--output", a.output, output_help)->required();
  add_common_options(c, a.common);
  c.callback([&c] {
    if (c.count("--eps") + c.count("--top-k") != 1) throw CLI::RequiredError("exactly one of --eps and --top-k");
  });
}

void add_heavy_arguments(CLI::App& c, HeavyArguments& a, const std::string& queries_help,
                         const std::string& keys_help) {
  c.add_option("--queries", a.queries, queries_help)->required();
  c.add_option("--keys", a.keys, keys_help)->required();
  c.add_option("--eps", a.eps, "Threshold ε in (0, 1]")->required();
  c.add_option("--output", a.output, "CSV of the entries (default: stdout; required with --json)");
  c.add_option("--p", a.p, "Exponent of f(x) = |x|^p (default 2: exact leverage-score search)")->capture_default_str();
  c.add_option("--verify", a.verify, "Check N sampled queries (per head) against brute force")
      ->check(CLI::NonNegativeNumber);
  add_rcond_option(c, a.rcond);
  add_common_options(c, a.common);
}

}  // namespace levattn::cli
