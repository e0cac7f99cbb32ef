// levattn scores --keys K [--ridge L] [--rcond R] --output tau.npy [--json]
// Writes float64 leverage (or ridge) scores, shape (n,) for (n, d) keys or (h, n) for (h, n, d).
#include <cstdio>
#include <memory>
#include <numeric>

#include "commands.hpp"
#include "heads.hpp"
#include "levattn/io/npy.hpp"
#include "levattn/scores/leverage.hpp"
#include "report.hpp"

namespace levattn::cli {

namespace {
struct ScoresOptions {
  std::string keys, output;
  double ridge = 0.0, rcond = kDefaultRcond;
  CommonOptions common;
};

int run_scores(const ScoresOptions& o) {
  apply_threads(o.common);
  Phases phases;
  Stopwatch load;
  const HeadArray keys = load_heads(o.keys, "keys");
  phases.load = load.seconds();

  Stopwatch compute;
  std::vector<double> tau(static_cast<size_t>(keys.heads * keys.rows));
  nlohmann::json heads = nlohmann::json::array();
  for (index_t h = 0; h < keys.heads; ++h) {
    in_head(keys, h, [&] {
      LeverageScorer scorer(keys.cols, {o.ridge, o.rcond});
      scorer.fit(keys.head(h));
      double* out = tau.data() + h * keys.rows;
      scorer.scores(keys.head(h), out);
      heads.push_back({{"rank", scorer.rank()}, {"sum", std::accumulate(out, out + keys.rows, 0.0)}});
    });
  }
  phases.compute = compute.seconds();

  Stopwatch write;
  std::vector<index_t> shape{keys.rows};
  if (keys.multi_head) shape.insert(shape.begin(), keys.heads);
  io::write_npy(o.output, tau.data(), shape);
  phases.write = write.seconds();

  if (o.common.json) {
    print_json({{"command", "scores"}, {"n", keys.rows}, {"d", keys.cols}, {"heads", keys.heads},
                {"ridge", o.ridge}, {"rcond", o.rcond}, {"per_head", heads},
                {"output", o.output}, {"seconds", phases.json()}});
  } else {
    std::fprintf(stderr, "levattn: wrote %s: %lld scores, d = %lld, rank %lld (head 0)\n",
                 o.output.c_str(), static_cast<long long>(tau.size()),
                 static_cast<long long>(keys.cols), heads[0]["rank"].get<long long>());
  }
  return 0;
}
}  // namespace

Command add_scores_command(CLI::App& app) {
  auto o = std::make_shared<ScoresOptions>();
  CLI::App* c = app.add_subcommand("scores", "Leverage scores τ_j = k_jᵀ(KᵀK + λI)⁺k_j of every key");
  c->add_option("--keys", o->keys, "Keys: file.npy or file.safetensors[:name], (n, d) or (h, n, d)")
      ->required();
  c->add_option("--ridge", o->ridge, "Ridge λ ≥ 0 (default 0: plain leverage scores)");
  c->add_option("--rcond", o->rcond, "Relative singular-value cut-off of the pseudo-inverse")
      ->capture_default_str();
  c->add_option("--output", o->output, "Output .npy: float64, shape (n,) or (h, n)")->required();
  add_common_options(*c, o->common);
  return {c, [o] { return run_scores(*o); }};
}

}  // namespace levattn::cli
