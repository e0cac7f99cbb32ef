// levattn-mpi select: rank r reads rows [n·r/P, n·(r+1)/P) of K; one all-gather of the ranks'
// Gram summaries lets every rank merge them into the single-process summary bit for bit; each
// rank scores its own keys with the identical scorer (select/key_scores.hpp: leverage_key_scores)
// and keeps its candidates (its keys ≥ ε, or its own top k, among which the global top k lie);
// rank 0 gathers them, selects and writes the bytes `levattn select` writes. Float16 keys are read
// and scored as they are stored.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>

#include "arguments.hpp"
#include "collective.hpp"
#include "commands.hpp"
#include "levattn/io/npy.hpp"
#include "levattn/select/key_scores.hpp"
#include "report.hpp"
#include "summaries.hpp"

namespace levattn::mpi {

namespace {

int run_select(const cli::SelectArguments& o, const World& w) {
  cli::apply_threads(o.common);
  cli::Stopwatch total_time;
  agreed(w, [&] {
    if (!cli::ends_with(o.output, ".npy")) throw cli::UsageError("select writes .npy: --output must end in .npy");
    if (o.eps) check_eps(*o.eps);
  });
  const Share share = read_share(
      o.keys, "keys", w, [&](index_t n, int r) { return even_split(n, r, w); }, io::Precision::keep_16_bit);
  agreed(w, [&] {
    if (o.top_k)
      require(*o.top_k >= 1 && *o.top_k <= share.n,
              "top-k must lie in [1, n] = [1, " + std::to_string(share.n) + "], got " + std::to_string(*o.top_k));
  });
  LeverageScorer scorer(share.d, {0.0, o.rcond});
  agreed(w, [&] { scorer.fit(global_summary(share, w)); });
  KeyScores scores = share.with_view([&](auto keys) { return leverage_key_scores(scorer, keys); });

  UniversalSet local;  // this rank's candidates: its keys ≥ ε, or its own top k
  if (o.eps)
    local = key_threshold_set(scores, *o.eps);
  else if (share.rows > 0)
    local = key_universal_set(scores, 0.0, std::min(*o.top_k, share.rows));
  std::vector<std::int64_t> index;
  for (index_t j : local.indices) index.push_back(share.begin + j);
  const std::vector<std::int64_t> all_index = gather_to_root(index, MPI_INT64_T, w);
  const std::vector<double> all_tau = gather_to_root(local.scores, MPI_DOUBLE, w);

  UniversalSet u;
  agreed(w, [&] {
    if (w.rank != 0) return;
    // Every candidate with its score, under the facts (rank, bound) of the one scorer of all keys.
    KeyScores candidates = std::move(scores);
    candidates.values = all_tau;
    u = key_universal_set(candidates, o.eps.value_or(0.0), o.top_k.value_or(0));
    for (index_t& j : u.indices) j = all_index[static_cast<size_t>(j)];
    io::write_npy(o.output, u.indices.data(), {u.size()});
  });
  if (w.rank != 0) return 0;
  if (!u.within_bound) std::fprintf(stderr, "levattn-mpi: warning: |U| exceeds its bound rank/eps\n");
  const cli::UniversalSetSummary summary{share.n, share.d, o.eps, o.top_k, u.size(), u.bound, u.within_bound, o.output};
  if (o.common.json) {
    nlohmann::json j = cli::universal_set_summary_json("select", summary);
    j.update({{"ranks", w.size},
              {"rank", scorer.rank()},
              {"keys_type", element_type_name(share.type)},
              {"seconds", total_time.seconds()}});
    cli::print_json(j);
  } else {
    cli::print_universal_set_line("levattn-mpi", summary, std::to_string(w.size) + " ranks");
  }
  return 0;
}

}  // namespace

Command add_select_command(CLI::App& app) {
  auto o = std::make_shared<cli::SelectArguments>();
  CLI::App* sel = app.add_subcommand("select", "The universal set {j : τ_j ≥ ε}, or the top-k by τ");
  cli::add_select_arguments(*sel, *o, "Keys: file.npy, (n, d)", "Output: OUT.npy (int64 indices ascending)");
  return {sel, [o](const World& w) { return run_select(*o, w); }};
}

}  // namespace levattn::mpi
