// levattn heavy --queries Q --keys K --eps E [--p P [--delta D]] [--output heavy.csv] [--verify N]
//               [--seed S] [--json]
// Every entry A[i,j] = |<q_i,k_j>|^p / Σ_l |<q_i,k_l>|^p ≥ ε (p = 2 by default) as CSV
// "query,key,score" ("head," first for 3-D input), sorted by (head,) query, key; score with 9
// significant digits. With --p ≠ 2 a column "estimated" follows: 1 when the normaliser was
// estimated by Lewis-weight sampling (the score is then Â and entries clear ε/(1+δ)), 0 when exact.
// float16/bfloat16 keys are read as they are (the entries of the rounded keys, the same output as
// the keys stored as float32); queries are loaded as float32.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>

#include "arguments.hpp"
#include "commands.hpp"
#include "heads.hpp"
#include "heavy_csv.hpp"
#include "levattn/attention/heavy.hpp"
#include "levattn/attention/power_heavy.hpp"
#include "levattn/attention/verify.hpp"
#include "report.hpp"
#include "summaries.hpp"
#include "text_output.hpp"

namespace levattn::cli {

namespace {
struct HeavyOptions : HeavyArguments {
  double delta = 0.1;
  std::uint64_t seed = 1;
};

int run_heavy(const HeavyOptions& o) {
  Phases phases;
  phases.threads = start_threads(o.common);
  if (o.common.json && o.output.empty())
    throw UsageError("--json prints the summary on stdout, so the entries need --output");
  check_eps(o.eps);
  require(o.delta > 0.0 && o.delta < 1.0, "delta must lie in (0, 1), got " + std::to_string(o.delta));
  const bool power = o.p != 2.0;
  Stopwatch load;
  const HeadArray keys = load_heads(o.keys, "keys", io::Precision::keep_16_bit);
  const HeadArray queries = load_heads(o.queries, "queries");
  check_compatible(queries, keys);
  phases.load = load.seconds();

  TextOutput output(o.output);
  std::FILE* out = output.stream();
  const HeavyCsvColumns columns{keys.multi_head, power};
  write_heavy_csv_header(out, columns);

  Stopwatch total;
  double writing = 0.0;
  HeavyStats sum;
  index_t uset = 0, scanned = 0;
  double bound = 0.0;
  VerifyReport verified;
  double verify_seconds = 0.0;
  Progress progress("heavy", queries.heads * queries.rows);
  nlohmann::json power_heads = nlohmann::json::array();
  for (index_t h = 0; h < keys.heads; ++h) {
    std::optional<HeavySearch> search2;
    std::optional<PowerHeavySearch> searchp;
    in_head(keys, h, [&] {
      // The search on the keys in the element type they were loaded in.
      if (!power) {
        with_typed_head(keys, h, [&](auto head) { search2.emplace(head, o.eps, o.rcond); });
        return;
      }
      PowerHeavyOptions po;
      po.lewis.rcond = o.rcond;
      po.normaliser.delta = o.delta;
      po.normaliser.seed = o.seed + static_cast<std::uint64_t>(h);
      with_typed_head(keys, h, [&](auto head) { searchp.emplace(head, o.p, o.eps, po); });
    });
    const UniversalSet& u = power ? searchp->universal_set() : search2->universal_set();
    uset += u.size();
    bound += u.bound;
    scanned += power ? searchp->scanned_keys() : search2->scanned_keys();
    const bool estimated = power && searchp->estimated();
    if (power) {
      const PowerNormaliser& nz = searchp->normaliser();
      power_heads.push_back({{"normaliser", normaliser_kind_name(nz.kind())},
                             {"estimated", estimated},
                             {"delta", nz.delta()},
                             {"failure_per_query", nz.failure()},
                             {"sample_size", nz.sample_size()},
                             {"report_threshold", searchp->report_threshold()},
                             {"lewis_iterations", searchp->lewis().iterations},
                             {"lewis_residual", searchp->lewis().residual},
                             {"lewis_limited_by_rounding", searchp->lewis().limited_by_rounding},
                             {"rank", searchp->lewis().rank}});
    }
    const HeavySink sink = [&](const HeavyEntry* e, index_t count) {
      Stopwatch w;
      for (index_t i = 0; i < count; ++i) write_heavy_csv_row(out, columns, e[i], h, estimated);
      writing += w.seconds();
    };
    const auto tell = [&](index_t done) { progress.update(h * queries.rows + done); };
    const HeavyStats stats = in_head(queries, h, [&] {
      return power ? searchp->run(queries.head(h), sink, tell) : search2->run(queries.head(h), sink, tell);
    });
    sum += stats;
    if (o.verify > 0) {
      Stopwatch v;
      std::vector<index_t> rows;
      const std::vector<float> sample = sample_rows(queries.head(h), o.verify, o.seed + h, rows);
      const ConstMatrixF view(sample.data(), index_t(rows.size()), queries.cols);
      // (16-bit keys are read in blocks as they are stored.)
      const VerifyReport r = with_typed_head(keys, h, [&](auto head) {
        return power ? verify_power_heavy(*searchp, head, view) : verify_heavy(*search2, head, view);
      });
      verified.queries += r.queries;
      verified.tolerance = r.tolerance;
      verified.reference += r.reference;
      verified.reference_found += r.reference_found;
      verified.reported += r.reported;
      verified.reported_confirmed += r.reported_confirmed;
      verify_seconds += v.seconds();
    }
  }
  phases.compute = total.seconds() - writing - verify_seconds;
  Stopwatch commit;
  output.finish("the entries");
  phases.write = writing + commit.seconds();

  // With an estimated normaliser precision below 1 is expected; recall below 1 never is.
  const bool any_estimated = power && std::any_of(power_heads.begin(), power_heads.end(),
                                                  [](const nlohmann::json& j) { return j["estimated"].get<bool>(); });
  const bool verify_ok = verified.recall() == 1.0 && (any_estimated || verified.precision() == 1.0);
  if (o.verify > 0 && !verify_ok)
    std::fprintf(stderr, "levattn: warning: verification against brute force found differences\n");
  const HeavySummary summary{.n = keys.rows,
                             .m = queries.rows,
                             .d = keys.cols,
                             .heads = keys.heads,
                             .eps = o.eps,
                             .p = o.p,
                             .universal_set_size = uset,
                             .bound = bound,
                             .scanned_keys = scanned,
                             .searched_queries = sum.queries,
                             .heavy_count = sum.heavy_count,
                             .zero_queries = sum.zero_queries,
                             .fallback_queries = sum.fallback_queries,
                             .rechecked = sum.rechecked,
                             .output = o.output};
  if (o.common.json) {
    nlohmann::json j = heavy_summary_json(summary);
    j["keys_type"] = element_type_name(keys.tensor.element_type());
    j["seconds"] = phases.json();
    j["peak_rss_bytes"] = peak_resident_bytes();
    if (power) {
      j["estimated"] = any_estimated;
      j["per_head"] = power_heads;
    }
    if (o.verify > 0)
      j["verify"] = {{"queries", verified.queries},
                     {"recall", verified.recall()},
                     {"precision", verified.precision()},
                     {"tolerance", verified.tolerance},
                     {"reference_entries", verified.reference},
                     {"reported_entries", verified.reported},
                     {"seconds", verify_seconds}};
    print_json(j);
  } else {
    print_heavy_line("levattn", summary, "");
    if (any_estimated)
      std::fprintf(stderr,
                   "levattn: normaliser estimated by Lewis-weight sampling (delta %g): scores are "
                   "estimates, entries clear eps/(1+delta)\n",
                   o.delta);
    if (o.verify > 0)
      std::fprintf(stderr, "levattn: verify on %lld sampled queries: recall %.6f, precision %.6f\n",
                   static_cast<long long>(verified.queries), verified.recall(), verified.precision());
  }
  return 0;
}
}  // namespace

Command add_heavy_command(CLI::App& app) {
  auto o = std::make_shared<HeavyOptions>();
  CLI::App* c = app.add_subcommand("heavy", "Every attention entry A[i,j] ≥ ε for f(x) = |x|^p (p = 2 by default)");
  add_heavy_arguments(*c, *o, "Queries: (m, d) or (h, m, d), loaded as float32",
                      "Keys: (n, d) or (h, n, d); float16/bfloat16 read as they are");
  c->add_option("--delta", o->delta, "p ≠ 2: relative accuracy δ of a sampled normaliser, in (0, 1)")
      ->capture_default_str();
  c->add_option("--seed", o->seed, "Seed of the --verify sample and of the normaliser's key sample")
      ->capture_default_str();
  return {c, [o] { return run_heavy(*o); }};
}

}  // namespace levattn::cli
