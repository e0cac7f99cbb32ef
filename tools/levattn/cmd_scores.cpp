// levattn scores --keys K [--ridge L | --p P | --approx G [--failure F] [--seed S]] [--rcond R]
//                --output tau.npy [--json]
// Writes float64 leverage (ridge, ℓp Lewis, or sketched leverage) scores, shape (n,) for (n, d)
// keys or (h, n) for (h, n, d).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <numeric>

#include "commands.hpp"
#include "heads.hpp"
#include "levattn/io/npy.hpp"
#include "levattn/scores/leverage.hpp"
#include "report.hpp"
#include "score_kinds.hpp"

namespace levattn::cli {

namespace {
struct ScoresOptions {
  std::string keys, output;
  double ridge = 0.0, rcond = kDefaultRcond;
  ScoreKindOptions kind;
  CommonOptions common;
};

int run_scores(const ScoresOptions& o) {
  Phases phases;
  phases.threads = start_threads(o.common);
  check_score_kind(o.kind, o.ridge);
  Stopwatch load;
  const HeadArray keys = load_heads(o.keys, "keys", io::Precision::keep_16_bit);
  phases.load = load.seconds();

  Stopwatch compute;
  std::vector<double> tau(static_cast<size_t>(keys.heads * keys.rows));
  nlohmann::json heads = nlohmann::json::array();
  for (index_t h = 0; h < keys.heads; ++h) {
    in_head(keys, h, [&] {
      const KeyScores s = head_key_scores(keys, h, key_score_options(o.kind, o.ridge, o.rcond), false);
      std::copy(s.values.begin(), s.values.end(), tau.begin() + h * keys.rows);
      nlohmann::json head = key_scores_report(s, o.kind);
      head["rank"] = s.rank;
      head["sum"] = std::accumulate(s.values.begin(), s.values.end(), 0.0);
      heads.push_back(head);
    });
  }
  phases.compute = compute.seconds();

  Stopwatch write;
  std::vector<index_t> shape{keys.rows};
  if (keys.multi_head) shape.insert(shape.begin(), keys.heads);
  io::write_npy(o.output, tau.data(), shape);
  phases.write = write.seconds();

  if (o.common.json) {
    print_json({{"command", "scores"},
                {"n", keys.rows},
                {"d", keys.cols},
                {"heads", keys.heads},
                {"ridge", o.ridge},
                {"rcond", o.rcond},
                {"p", o.kind.p},
                {"per_head", heads},
                {"output", o.output},
                {"seconds", phases.json()},
                {"peak_rss_bytes", peak_resident_bytes()}});
  } else {
    std::fprintf(stderr, "levattn: wrote %s: %lld scores, d = %lld, rank %lld (head 0)\n", o.output.c_str(),
                 static_cast<long long>(tau.size()), static_cast<long long>(keys.cols),
                 heads[0]["rank"].get<long long>());
  }
  return 0;
}
}  // namespace

Command add_scores_command(CLI::App& app) {
  auto o = std::make_shared<ScoresOptions>();
  CLI::App* c =
      app.add_subcommand("scores", "Leverage scores τ_j = k_jᵀ(KᵀK + λI)⁺k_j of every key (ℓp Lewis weights with --p)");
  c->add_option("--keys", o->keys, "Keys: file.npy or file.safetensors[:name], (n, d) or (h, n, d)")->required();
  c->add_option("--ridge", o->ridge, "Ridge λ ≥ 0 (default 0: plain leverage scores)");
  add_score_kind_options(*c, o->kind);
  add_rcond_option(*c, o->rcond);
  c->add_option("--output", o->output, "Output .npy: float64, shape (n,) or (h, n)")->required();
  add_common_options(*c, o->common);
  return {c, [o] { return run_scores(*o); }};
}

}  // namespace levattn::cli
