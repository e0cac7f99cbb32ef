// levattn demo [--n N] [--m M] [--d D] [--eps E] [--seed S] [--json]
// The main job on its built-in default: a long-context planted instance, its universal set and
// every heavy entry of every query, checked against brute force.
#include <algorithm>
#include <cstdio>
#include <memory>

#include "commands.hpp"
#include "levattn/attention/brute_force.hpp"
#include "levattn/attention/verify.hpp"
#include "levattn/synth/planted.hpp"
#include "report.hpp"

namespace levattn::cli {

namespace {
struct DemoOptions {
  PlantedOptions planted;
  double eps = 0.05;
  CommonOptions common;
};

int run_demo(const DemoOptions& o) {
  const double t_threads = start_threads(o.common);
  check_eps(o.eps);
  const PlantedOptions& p = o.planted;
  Stopwatch generate;
  const PlantedData data = make_planted(p);
  const double t_generate = generate.seconds();

  const auto collect = [](std::vector<HeavyEntry>& into) {
    return [&into](const HeavyEntry* e, index_t count) { into.insert(into.end(), e, e + count); };
  };
  Stopwatch fit;
  const HeavySearch search(data.key_view(), o.eps);
  const double t_fit = fit.seconds();
  std::vector<HeavyEntry> found;
  Stopwatch run;
  const HeavyStats stats = search.run(data.query_view(), collect(found));
  const double t_run = run.seconds();

  std::vector<HeavyEntry> reference;
  Stopwatch brute;
  brute_force_heavy(data.query_view(), data.key_view(), o.eps * (1.0 - 1e-4), collect(reference));
  const double t_brute = brute.seconds();
  const VerifyReport check = compare_heavy(found, reference, o.eps, 1e-4);

  const UniversalSet& u = search.universal_set();
  index_t recovered = 0;
  for (index_t j : data.relevant_keys) recovered += std::binary_search(u.indices.begin(), u.indices.end(), j) ? 1 : 0;
  const double t_fast = t_fit + t_run;
  const double d_bound = double(p.d) / o.eps;

  if (o.common.json) {
    print_json({{"command", "demo"},
                {"n", p.n},
                {"m", p.m},
                {"d", p.d},
                {"eps", o.eps},
                {"seed", p.seed},
                {"rank", search.scorer().rank()},
                {"universal_set_size", u.size()},
                {"bound", u.bound},
                {"bound_d_over_eps", d_bound},
                {"planted_keys", data.relevant_keys.size()},
                {"planted_recovered", recovered},
                {"heavy_count", stats.heavy_count},
                {"reference_entries", check.reference},
                {"recall", check.recall()},
                {"precision", check.precision()},
                {"seconds",
                 {{"threads", t_threads},
                  {"load", t_generate},
                  {"compute", t_fit + t_run + t_brute},
                  {"write", 0.0},
                  {"generate", t_generate},
                  {"scores_and_set", t_fit},
                  {"heavy", t_run},
                  {"brute_force", t_brute}}},
                {"speedup", t_brute / t_fast}});
  } else {
    std::printf(
        "levattn demo: planted model, n = %lld keys, m = %lld queries, d = %lld, "
        "%lld directions x %lld keys, seed %llu, eps = %g\n",
        (long long)p.n, (long long)p.m, (long long)p.d, (long long)p.directions, (long long)p.copies,
        (unsigned long long)p.seed, o.eps);
    std::printf(
        "  leverage scores + universal set  %9.1f ms   |U| = %lld  (bound d/eps = %.0f, "
        "rank/eps = %.0f)\n",
        1e3 * t_fit, (long long)u.size(), d_bound, u.bound);
    std::printf("  planted keys in U                %12lld / %lld\n", (long long)recovered,
                (long long)data.relevant_keys.size());
    std::printf("  heavy entries of all queries     %9.1f ms   %lld entries >= eps\n", 1e3 * t_run,
                (long long)stats.heavy_count);
    std::printf("  brute force, every A[i,j]        %9.1f ms\n", 1e3 * t_brute);
    std::printf(
        "  against brute force              recall %.6f (%lld/%lld), precision %.6f "
        "(%lld/%lld)\n",
        check.recall(), (long long)check.reference_found, (long long)check.reference, check.precision(),
        (long long)check.reported_confirmed, (long long)check.reported);
    std::printf("  speed-up over brute force        %9.1fx\n", t_brute / t_fast);
  }
  return check.recall() == 1.0 && check.precision() == 1.0 ? 0 : 1;
}
}  // namespace

Command add_demo_command(CLI::App& app) {
  auto o = std::make_shared<DemoOptions>();
  CLI::App* c =
      app.add_subcommand("demo", "Planted long-context instance: U and every heavy entry, checked against brute force");
  c->add_option("--n", o->planted.n, "Keys")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--m", o->planted.m, "Queries")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--d", o->planted.d, "Dimension")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--eps", o->eps, "Threshold ε in (0, 1]")->capture_default_str();
  c->add_option("--seed", o->planted.seed, "Seed")->capture_default_str();
  add_common_options(*c, o->common);
  return {c, [o] { return run_demo(*o); }};
}

}  // namespace levattn::cli
