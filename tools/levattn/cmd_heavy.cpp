// levattn heavy --queries Q --keys K --eps E [--output heavy.csv] [--verify N] [--json]
// Every entry A[i,j] = <q_i,k_j>² / Σ_l <q_i,k_l>² ≥ ε as CSV "query,key,score" ("head," first
// for 3-D input), sorted by (head,) query, key; score with 9 significant digits.
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "heads.hpp"
#include "levattn/attention/heavy.hpp"
#include "levattn/attention/verify.hpp"
#include "levattn/io/atomic_file.hpp"
#include "report.hpp"

namespace levattn::cli {

namespace {
struct HeavyOptions {
  std::string queries, keys, output;
  double eps = 0.0;
  index_t verify = 0;
  std::uint64_t seed = 1;
  double rcond = kDefaultRcond;
  CommonOptions common;
};

int run_heavy(const HeavyOptions& o) {
  apply_threads(o.common);
  if (o.common.json && o.output.empty())
    throw UsageError("--json prints the summary on stdout, so the entries need --output");
  check_eps(o.eps);
  Phases phases;
  Stopwatch load;
  const HeadArray keys = load_heads(o.keys, "keys");
  const HeadArray queries = load_heads(o.queries, "queries");
  check_compatible(queries, keys);
  phases.load = load.seconds();

  std::optional<io::AtomicFile> file;
  if (!o.output.empty()) file.emplace(o.output);
  std::FILE* out = file ? file->stream() : stdout;
  std::fprintf(out, keys.multi_head ? "head,query,key,score\n" : "query,key,score\n");

  Stopwatch total;
  double writing = 0.0;
  HeavyStats sum;
  index_t uset = 0, scanned = 0;
  double bound = 0.0;
  VerifyReport verified;
  double verify_seconds = 0.0;
  Progress progress("heavy", queries.heads * queries.rows);
  for (index_t h = 0; h < keys.heads; ++h) {
    const HeavySearch search = in_head(keys, h, [&] { return HeavySearch(keys.head(h), o.eps, o.rcond); });
    uset += search.universal_set().size();
    bound += search.universal_set().bound;
    scanned += search.scanned_keys();
    const HeavyStats stats = in_head(queries, h, [&] { return search.run(
        queries.head(h),
        [&](const HeavyEntry* e, index_t count) {
          Stopwatch w;
          for (index_t i = 0; i < count; ++i) {
            if (keys.multi_head) std::fprintf(out, "%" PRId64 ",", h);
            std::fprintf(out, "%" PRId64 ",%" PRId64 ",%.9g\n", e[i].query, e[i].key, e[i].score);
          }
          writing += w.seconds();
        },
        [&](index_t done) { progress.update(h * queries.rows + done); }); });
    sum += stats;
    if (o.verify > 0) {
      Stopwatch v;
      std::vector<index_t> rows;
      const std::vector<float> sample = sample_rows(queries.head(h), o.verify, o.seed + h, rows);
      const VerifyReport r = verify_heavy(
          search, keys.head(h), ConstMatrixF(sample.data(), index_t(rows.size()), queries.cols));
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
  if (file) {
    file->commit();
  } else if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    throw Error(ErrorKind::failure, "writing the entries to standard output failed");
  }
  phases.write = writing + commit.seconds();

  const bool verify_ok = verified.recall() == 1.0 && verified.precision() == 1.0;
  if (o.verify > 0 && !verify_ok)
    std::fprintf(stderr, "levattn: warning: verification against brute force found differences\n");
  if (o.common.json) {
    nlohmann::json j = {{"command", "heavy"}, {"n", keys.rows}, {"m", queries.rows},
                        {"d", keys.cols}, {"heads", keys.heads}, {"eps", o.eps},
                        {"universal_set_size", uset}, {"bound", bound}, {"scanned_keys", scanned},
                        {"heavy_count", sum.heavy_count}, {"zero_queries", sum.zero_queries},
                        {"fallback_queries", sum.fallback_queries}, {"rechecked", sum.rechecked},
                        {"output", o.output}, {"seconds", phases.json()}};
    if (o.verify > 0)
      j["verify"] = {{"queries", verified.queries}, {"recall", verified.recall()},
                     {"precision", verified.precision()}, {"tolerance", verified.tolerance},
                     {"reference_entries", verified.reference}, {"reported_entries", verified.reported},
                     {"seconds", verify_seconds}};
    print_json(j);
  } else {
    std::fprintf(stderr,
                 "levattn: %lld heavy entries (eps %g) over %lld queries; |U| = %lld (bound %.6g); "
                 "%lld zero rows, %lld fallback rows\n",
                 static_cast<long long>(sum.heavy_count), o.eps, static_cast<long long>(sum.queries),
                 static_cast<long long>(uset), bound, static_cast<long long>(sum.zero_queries),
                 static_cast<long long>(sum.fallback_queries));
    if (o.verify > 0)
      std::fprintf(stderr, "levattn: verify on %lld sampled queries: recall %.6f, precision %.6f\n",
                   static_cast<long long>(verified.queries), verified.recall(), verified.precision());
  }
  return 0;
}
}  // namespace

Command add_heavy_command(CLI::App& app) {
  auto o = std::make_shared<HeavyOptions>();
  CLI::App* c = app.add_subcommand("heavy", "Every attention entry A[i,j] ≥ ε for f(x) = x²");
  c->add_option("--queries", o->queries, "Queries: (m, d) or (h, m, d)")->required();
  c->add_option("--keys", o->keys, "Keys: (n, d) or (h, n, d)")->required();
  c->add_option("--eps", o->eps, "Threshold ε in (0, 1]")->required();
  c->add_option("--output", o->output, "CSV of the entries (default: stdout; required with --json)");
  c->add_option("--verify", o->verify, "Check N sampled queries (per head) against brute force")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--seed", o->seed, "Seed of the --verify sample")->capture_default_str();
  c->add_option("--rcond", o->rcond, "Relative singular-value cut-off of the pseudo-inverse")
      ->capture_default_str();
  add_common_options(*c, o->common);
  return {c, [o] { return run_heavy(*o); }};
}

}  // namespace levattn::cli
