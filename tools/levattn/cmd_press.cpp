// levattn press --press NAME --keys K [--queries Q] (--budget B | --ratio R) --output kept.npy
//               [--scores s.npy] [--window W] [--pool P] [--sinks S] [--seed S] [--ridge-fraction F]
//               [--gamma G] [--failure D] [--f softmax|pow:P] [--scale C] [--rcond R] [--json]
// A KV-cache press (levattn/eval/presses.hpp): each key head's context cache cut to B keys
// (B = round((1 − R)·n), at least 1, with --ratio). Keys (n, d), (h, n, d) or (b, h, n, d); the
// context queries, one per key position, with the same rank and a multiple of the key heads (read
// by snapkv and h2o). Writes the kept key indices, int64 ascending, shape (…, B) with the keys'
// leading dimensions, and optionally the scores, float64 (…, n).
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "heads.hpp"
#include "levattn/eval/presses.hpp"
#include "levattn/io/npy.hpp"
#include "report.hpp"

namespace levattn::cli {

namespace {

struct PressCliOptions {
  std::string press, keys, queries, output, scores_output, f = "softmax";
  index_t budget = 0, window = 32, pool = 7, sinks = 4;
  std::optional<double> ratio;
  double scale = 0.0, ridge_fraction = 0.1, gamma = 0.5, failure = 0.05, rcond = kDefaultRcond;
  std::uint64_t seed = 1;
  CommonOptions common;
};

index_t budget_for(const PressCliOptions& o, index_t n) {
  if (!o.ratio) {
    if (o.budget > n)
      throw UsageError("--budget " + std::to_string(o.budget) + " exceeds the " + std::to_string(n) + " context keys");
    return o.budget;
  }
  return std::max<index_t>(1, static_cast<index_t>(std::llround((1.0 - *o.ratio) * static_cast<double>(n))));
}

int run_press(const PressCliOptions& o) {
  Phases phases;
  phases.threads = start_threads(o.common);
  if (!ends_with(o.output, ".npy")) throw UsageError("--output must end in .npy");
  if (!o.scores_output.empty() && !ends_with(o.scores_output, ".npy")) throw UsageError("--scores must end in .npy");
  if ((o.budget > 0) == o.ratio.has_value()) throw UsageError("give exactly one of --budget and --ratio");
  if (o.ratio && !(*o.ratio >= 0.0 && *o.ratio < 1.0)) throw UsageError("--ratio must lie in [0, 1)");
  if (press_needs_queries(o.press) && o.queries.empty())
    throw UsageError("--press " + o.press + " reads the context queries: give --queries");
  PressOptions options;
  options.attention.f = parse_score_function(o.f);
  options.attention.scale = o.scale;
  options.window = o.window;
  options.pool = o.pool;
  options.key_rules.sinks = o.sinks;
  options.key_rules.seed = o.seed;
  options.key_rules.ridge_fraction = o.ridge_fraction;
  options.key_rules.rcond = o.rcond;
  options.sketch.gamma = o.gamma;
  options.sketch.failure = o.failure;
  options.sketch.seed = o.seed;
  options.sketch.rcond = o.rcond;

  Stopwatch load;
  const Heads4 k = load_heads4(o.keys, "keys");
  Heads4 q;
  if (press_needs_queries(o.press)) {
    q = load_heads4(o.queries, "queries");
    if (q.tensor.shape().size() != k.tensor.shape().size())
      throw Error(ErrorKind::bad_input, "queries " + io::format_shape(q.tensor.shape()) + " and keys " +
                                            io::format_shape(k.tensor.shape()) + " differ in rank");
  }
  phases.load = load.seconds();

  Stopwatch compute;
  const index_t n = k.rows, budget = budget_for(o, n), heads = k.batch * k.heads;
  std::vector<index_t> kept(static_cast<size_t>(heads * budget));
  std::vector<double> scores(static_cast<size_t>(heads * n));
  press_heads(o.press, q.view(), k.view(), budget, options, kept.data(), scores.data());
  phases.compute = compute.seconds();

  Stopwatch write;
  std::vector<index_t> lead(k.tensor.shape().begin(), k.tensor.shape().end() - 2);
  std::vector<index_t> kept_shape = lead, scores_shape = lead;
  kept_shape.push_back(budget);
  scores_shape.push_back(n);
  static_assert(sizeof(index_t) == sizeof(std::int64_t));
  io::write_npy(o.output, reinterpret_cast<const std::int64_t*>(kept.data()), kept_shape);
  if (!o.scores_output.empty()) io::write_npy(o.scores_output, scores.data(), scores_shape);
  phases.write = write.seconds();

  if (o.common.json) {
    print_json({{"command", "press"},
                {"press", o.press},
                {"n", n},
                {"d", k.cols},
                {"heads", heads},
                {"budget", budget},
                {"output", o.output},
                {"seconds", phases.json()}});
  } else {
    std::fprintf(stderr, "levattn: wrote %s: %s kept %lld of %lld keys in each of %lld heads\n", o.output.c_str(),
                 o.press.c_str(), static_cast<long long>(budget), static_cast<long long>(n),
                 static_cast<long long>(heads));
  }
  return 0;
}

}  // namespace

Command add_press_command(CLI::App& app) {
  auto o = std::make_shared<PressCliOptions>();
  CLI::App* c = app.add_subcommand("press", "Cut each head's KV cache of context keys to a budget (a KV-cache press)");
  c->add_option("--press", o->press,
                "leverage, ridge, lewis, sketched-leverage, key-norm, streaming, random, "
                "snapkv or h2o")
      ->required()
      ->check(CLI::IsMember(press_names()));
  c->add_option("--keys", o->keys,
                "Context keys: file.npy or file.safetensors[:name], (n, d), (h, n, d) or "
                "(b, h, n, d)")
      ->required();
  c->add_option("--queries", o->queries,
                "snapkv, h2o: the context's own queries, one per key, same rank as the "
                "keys, a multiple of their heads");
  c->add_option("--budget", o->budget, "Keys kept per head, ≥ 1")->check(CLI::PositiveNumber);
  c->add_option("--ratio", o->ratio, "Compression ratio in [0, 1): keep round((1 − R)·n) keys per head");
  c->add_option("--window", o->window, "snapkv: observation window of the last W context queries")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_option("--pool", o->pool, "snapkv: width of the average pooling over keys (odd)")->capture_default_str();
  c->add_option("--sinks", o->sinks, "streaming: leading keys always kept")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  c->add_option("--seed", o->seed, "random, sketched-leverage: seed")->capture_default_str();
  c->add_option("--ridge-fraction", o->ridge_fraction, "ridge: λ as a fraction of ‖K‖²_F / d")->capture_default_str();
  c->add_option("--gamma", o->gamma, "sketched-leverage: scores within a factor 1 + γ")->capture_default_str();
  c->add_option("--failure", o->failure, "sketched-leverage: per-key failure probability δ")->capture_default_str();
  c->add_option("--f", o->f, "snapkv, h2o: softmax or pow:P")->capture_default_str();
  c->add_option("--scale", o->scale, "snapkv, h2o: scale c (default 1/√d for softmax, 1 for pow:P)");
  c->add_option("--rcond", o->rcond, "leverage, ridge, lewis: relative singular-value cut-off")->capture_default_str();
  c->add_option("--output", o->output, "Output kept.npy: int64 key indices, ascending, shape (…, budget)")->required();
  c->add_option("--scores", o->scores_output, "Also write every key's score: float64 .npy, shape (…, n)");
  add_common_options(*c, o->common);
  return {c, [o] { return run_press(*o); }};
}

}  // namespace levattn::cli
