// levattn planted --output-dir DIR [--n N] [--m M] [--d D] [--directions R] [--copies C]
//                 [--strength S] [--query-noise Q] [--key-noise σ] [--noise-rank s]
//                 [--noise-strength a] [--value-dim DV] [--seed S] [--json]
// Draws the planted model (synth/planted.hpp) and writes DIR/queries.npy (m, d), keys.npy (n, d),
// values.npy (n, d_v) float32 and relevant.npy (r·c,) int64 ascending — inputs for eval, attend,
// heavy — with the predicted recovery regime on stdout.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "levattn/io/npy.hpp"
#include "levattn/synth/planted.hpp"
#include "report.hpp"

namespace levattn::cli {

namespace {

struct PlantedCliOptions {
  PlantedOptions planted;
  std::optional<index_t> value_dim;
  std::string dir;
  CommonOptions common;
};

int run_planted(PlantedCliOptions& o) {
  const double t_threads = start_threads(o.common);
  PlantedOptions& p = o.planted;
  p.value_dim = o.value_dim.value_or(p.d);
  Stopwatch compute;
  const PlantedData data = make_planted(p);
  const PlantedPrediction predicted = predict_planted(p);
  const double t_compute = compute.seconds();

  Stopwatch write;
  std::error_code ec;
  std::filesystem::create_directories(o.dir, ec);
  if (ec) throw Error(ErrorKind::failure, "cannot create " + o.dir + ": " + ec.message());
  const auto path = [&](const char* name) { return (std::filesystem::path(o.dir) / name).string(); };
  io::write_npy(path("queries.npy"), data.queries.data(), {p.m, p.d});
  io::write_npy(path("keys.npy"), data.keys.data(), {p.n, p.d});
  io::write_npy(path("values.npy"), data.values.data(), {p.n, p.value_dim});
  const index_t r = static_cast<index_t>(data.relevant_keys.size());
  io::write_npy(path("relevant.npy"), data.relevant_keys.data(), {r});
  const double t_write = write.seconds();

  if (o.common.json) {
    print_json({{"command", "planted"},
                {"n", p.n},
                {"m", p.m},
                {"d", p.d},
                {"d_v", p.value_dim},
                {"directions", p.directions},
                {"copies", p.copies},
                {"strength", p.strength},
                {"query_noise", p.query_noise},
                {"key_noise", p.key_noise},
                {"noise_rank", p.noise_rank},
                {"noise_strength", p.noise_strength},
                {"seed", p.seed},
                {"relevant_keys", data.relevant_keys},
                {"output_dir", o.dir},
                {"predicted",
                 {{"relevant_min_leverage", predicted.relevant_min},
                  {"noise_max_leverage", predicted.noise_max},
                  {"top_k_recovers", predicted.recovers}}},
                {"seconds", {{"threads", t_threads}, {"load", 0.0}, {"compute", t_compute}, {"write", t_write}}}});
  } else {
    std::printf("levattn planted: n = %lld keys (%lld relevant), m = %lld queries, d = %lld, written to %s\n",
                (long long)p.n, (long long)r, (long long)p.m, (long long)p.d, o.dir.c_str());
    std::printf("  predicted leverage: relevant ≥ %.4g, noise ≤ %.4g → top-%lld %s the relevant keys\n",
                predicted.relevant_min, predicted.noise_max, (long long)r,
                predicted.recovers ? "recovers" : "is not predicted to recover");
  }
  return 0;
}

}  // namespace

Command add_planted_command(CLI::App& app) {
  auto o = std::make_shared<PlantedCliOptions>();
  PlantedOptions& p = o->planted;
  p.n = 4096;
  p.m = 1024;
  CLI::App* c = app.add_subcommand("planted", "Draw the planted model (relevant keys among noise) as .npy files");
  c->add_option("--output-dir", o->dir, "Directory for queries.npy, keys.npy, values.npy, relevant.npy")->required();
  c->add_option("--n", p.n, "Keys")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--m", p.m, "Queries")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--d", p.d, "Dimension")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--directions", p.directions, "r: relevant directions")->capture_default_str();
  c->add_option("--copies", p.copies, "c: relevant keys along each direction")->capture_default_str();
  c->add_option("--strength", p.strength, "Relevant strength, in units of √(n/d)")->capture_default_str();
  c->add_option("--query-noise", p.query_noise, "Query noise")->capture_default_str();
  c->add_option("--key-noise", p.key_noise, "σ: isotropic noise level of every key")->capture_default_str();
  c->add_option("--noise-rank", p.noise_rank, "s: dimension of the noise subspace")->capture_default_str();
  c->add_option("--noise-strength", p.noise_strength, "a: noise keys' subspace amplitude, in units of √(n/d)")
      ->capture_default_str();
  c->add_option("--value-dim", o->value_dim, "d_v (default d)")->check(CLI::PositiveNumber);
  c->add_option("--seed", p.seed, "Seed")->capture_default_str();
  add_common_options(*c, o->common);
  return {c, [o] { return run_planted(*o); }};
}

}  // namespace levattn::cli
