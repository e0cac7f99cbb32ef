// levattn select --keys K (--eps E | --top-k K) [--p P | --approx G [--failure F] [--seed S]]
//                --output OUT [--json]
// --p P: U = {j : s_j ≥ ε}, s_j the ℓp Lewis sensitivity bound; --approx G: sketched scores kept
// at ε/(1+γ).
// (n, d) keys: OUT.npy, int64 indices ascending. (h, n, d) keys: OUT.csv "head,key,score".
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <string>

#include "arguments.hpp"
#include "commands.hpp"
#include "heads.hpp"
#include "levattn/io/atomic_file.hpp"
#include "levattn/io/npy.hpp"
#include "levattn/scores/leverage.hpp"
#include "levattn/select/universal_set.hpp"
#include "report.hpp"
#include "score_kinds.hpp"
#include "summaries.hpp"

namespace levattn::cli {

namespace {
struct SelectOptions {
  SelectArguments select;
  ScoreKindOptions kind;
};

void check_output_path(const std::string& path, const HeadArray& keys) {
  if (!keys.multi_head && !ends_with(path, ".npy"))
    throw UsageError("select on (n, d) keys writes .npy: --output must end in .npy");
  if (keys.multi_head && !ends_with(path, ".csv"))
    throw UsageError("select on (h, n, d) keys writes CSV: --output must end in .csv");
}

void write_sets(const std::string& path, const HeadArray& keys, const std::vector<UniversalSet>& sets) {
  if (!keys.multi_head) {
    io::write_npy(path, sets[0].indices.data(), {sets[0].size()});
    return;
  }
  io::AtomicFile file(path);
  std::fprintf(file.stream(), "head,key,score\n");
  for (size_t h = 0; h < sets.size(); ++h)
    for (index_t i = 0; i < sets[h].size(); ++i)
      std::fprintf(file.stream(), "%zu,%" PRId64 ",%.9g\n", h, sets[h].indices[i], sets[h].scores[i]);
  file.commit();
}

int run_select(const SelectOptions& options) {
  const SelectArguments& o = options.select;
  Phases phases;
  phases.threads = start_threads(o.common);
  check_score_kind(options.kind, 0.0);
  Stopwatch load;
  const HeadArray keys = load_heads(o.keys, "keys", io::Precision::keep_16_bit);
  phases.load = load.seconds();
  check_output_path(o.output, keys);

  Stopwatch compute;
  std::vector<UniversalSet> sets;
  nlohmann::json heads = nlohmann::json::array();
  index_t total = 0;
  double bound = 0.0;
  bool within = true;
  if (o.eps) check_eps(*o.eps);
  for (index_t h = 0; h < keys.heads; ++h) {
    nlohmann::json report;
    const index_t rank = in_head(keys, h, [&] {
      const KeyScores s = head_key_scores(keys, h, key_score_options(options.kind, 0.0, o.rcond), true);
      sets.push_back(key_universal_set(s, o.eps.value_or(0.0), o.top_k.value_or(0)));
      report = key_scores_report(s, options.kind);
      return s.rank;
    });
    const UniversalSet& u = sets.back();
    total += u.size();
    bound += u.bound;
    within = within && u.within_bound;
    report.update(
        {{"rank", rank}, {"universal_set_size", u.size()}, {"bound", u.bound}, {"within_bound", u.within_bound}});
    heads.push_back(report);
  }
  phases.compute = compute.seconds();
  if (!within) std::fprintf(stderr, "levattn: warning: |U| exceeds its bound\n");

  Stopwatch write;
  write_sets(o.output, keys, sets);
  phases.write = write.seconds();

  const UniversalSetSummary summary{keys.rows, keys.cols, o.eps, o.top_k, total, bound, within, o.output};
  if (o.common.json) {
    nlohmann::json j = universal_set_summary_json("select", summary);
    j.update({{"heads", keys.heads}, {"p", options.kind.p}, {"per_head", heads}, {"seconds", phases.json()}});
    print_json(j);
  } else {
    print_universal_set_line("levattn", summary, std::to_string(keys.heads) + " head(s)");
  }
  return 0;
}
}  // namespace

Command add_select_command(CLI::App& app) {
  auto o = std::make_shared<SelectOptions>();
  CLI::App* c = app.add_subcommand("select", "The universal set: keys with τ_j ≥ ε (guaranteed), or the top-k by τ");
  add_select_arguments(*c, o->select, "Keys: file.npy or file.safetensors[:name], (n, d) or (h, n, d)",
                       "Output: OUT.npy (int64) for (n, d) keys, OUT.csv for (h, n, d)");
  add_score_kind_options(*c, o->kind);
  return {c, [o] { return run_select(*o); }};
}

}  // namespace levattn::cli
