// levattn-mpi heavy: every entry A[i,j] = <q_i,k_j>² / Σ_l <q_i,k_l>² ≥ ε, as `levattn heavy`
// writes it (p = 2, 2-D inputs), byte for byte.
//   1. Rank r reads keys [n·r/P, n·(r+1)/P); one all-gather of Gram summaries gives every rank the
//      single-process scorer, bit for bit (as in select).
//   2. Each rank scores its own keys and keeps its scan set (τ_j ≥ ε(1 − slack)); an all-gather in
//      rank order gives every rank the single-process scan set (|scan| ≲ 1.05·d/ε rows).
//   3. Queries are split at multiples of the search's tile size, so every tile is the one the
//      single process computes; each rank searches its own queries.
//   4. Rows the universal set cannot vouch for (fallback rows, rare) need every key: each rank
//      computes their products with its keys, rank 0 gathers them in key order and finishes them.
//   5. Rank 0 gathers the entries and writes them atomically in (query, key) order.
// Float16 keys are read and searched as they are stored; queries are read as float32.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>

#include "arguments.hpp"
#include "collective.hpp"
#include "commands.hpp"
#include "heavy_csv.hpp"
#include "levattn/attention/heavy.hpp"
#include "report.hpp"
#include "summaries.hpp"
#include "text_output.hpp"

namespace levattn::mpi {

namespace {

static_assert(sizeof(index_t) == sizeof(std::int64_t), "indices travel as MPI_INT64_T");

// Every rank's scan set, concatenated in rank order: the scan set of all n keys.
HeavyScanSet global_scan_set(const LeverageScorer& scorer, const Share& keys, double eps, const World& w) {
  const HeavyScanSet mine = keys.with_view([&](auto rows) { return heavy_scan_set(scorer, rows, keys.begin, eps); });
  return {all_gather_elements(mine.index, MPI_INT64_T, w), all_gather_elements(mine.tau, MPI_DOUBLE, w),
          all_gather_elements(mine.rows, MPI_FLOAT, w)};
}

// The entries of the fallback rows `deferred` (global query numbers, ascending on each rank),
// on rank 0: every rank computes their products with its own keys; rank 0 assembles each row's
// products in key order and finishes it as the single-process search does. Batched so that rank 0
// holds at most ~2^24 products at once. Counts zero rows in zero_rows (rank 0).
std::vector<HeavyEntry> finish_fallback_rows(const std::vector<index_t>& deferred, const Share& queries,
                                             const Share& keys, double eps, index_t& zero_rows, const World& w) {
  std::vector<float> rows;
  for (index_t qi : deferred)
    rows.insert(rows.end(), queries.view().row(qi - queries.begin), queries.view().row(qi - queries.begin) + keys.d);
  const std::vector<index_t> all = all_gather_elements(deferred, MPI_INT64_T, w);
  const std::vector<float> all_rows = all_gather_elements(rows, MPI_FLOAT, w);
  const auto count = static_cast<index_t>(all.size());
  const index_t n = keys.n, d = keys.d;
  const index_t batch = std::max<index_t>(1, (index_t{1} << 24) / n);
  std::vector<HeavyEntry> found;
  std::vector<double> row_products(static_cast<size_t>(w.rank == 0 ? n : 0));
  for (index_t b0 = 0; b0 < count; b0 += batch) {
    const index_t b = std::min(batch, count - b0);
    std::vector<double> mine(static_cast<size_t>(b * keys.rows));
    for (index_t f = 0; f < b; ++f)
      keys.with_view(
          [&](auto rows) { heavy_products(all_rows.data() + (b0 + f) * d, rows, mine.data() + f * keys.rows); });
    const std::vector<double> gathered = gather_to_root(mine, MPI_DOUBLE, w);  // [rank][row][key]
    if (w.rank != 0) continue;
    for (index_t f = 0; f < b; ++f) {
      for (int r = 0; r < w.size; ++r) {
        const index_t begin = even_split(n, r, w), rows_r = even_split(n, r + 1, w) - begin;
        const double* src = gathered.data() + b * begin + f * rows_r;
        std::copy(src, src + rows_r, row_products.begin() + begin);
      }
      if (!heavy_entries_from_products(all[b0 + f], row_products.data(), n, eps, found)) ++zero_rows;
    }
  }
  return found;
}

int run_heavy(const cli::HeavyArguments& o, const World& w) {
  cli::apply_threads(o.common);
  cli::Stopwatch total_time;
  agreed(w, [&] {
    if (o.common.json && o.output.empty())
      throw cli::UsageError("--json prints the summary on stdout, so the entries need --output");
    if (o.p != 2.0)
      throw cli::UsageError("levattn-mpi heavy searches f(x) = x² (--p 2) only; levattn heavy --p handles other p");
    if (o.verify > 0)
      throw cli::UsageError("levattn-mpi heavy has no --verify; levattn heavy --verify checks a run on one machine");
    check_eps(o.eps);
  });

  // 1–2: the keys, the scorer and the scan set.
  const Share keys = read_share(
      o.keys, "keys", w, [&](index_t n, int r) { return even_split(n, r, w); }, io::Precision::keep_16_bit);
  std::optional<HeavySearch> search;
  std::mutex deferred_mutex;
  std::vector<index_t> deferred;  // this rank's fallback rows, row numbers of its query share
  agreed(w, [&] {
    LeverageScorer scorer(keys.d, {0.0, o.rcond});
    scorer.fit(global_summary(keys, w));
    HeavyScanSet scan = global_scan_set(scorer, keys, o.eps, w);
    const HeavyFallback defer = [&](index_t qi, const float*, std::vector<HeavyEntry>&, HeavyStats&) {
      const std::lock_guard<std::mutex> lock(deferred_mutex);
      deferred.push_back(qi);
    };
    search.emplace(std::move(scorer), keys.n, o.eps, std::move(scan), defer);
  });

  // 3: this rank's tiles of queries.
  const index_t tq = search->query_tile_rows();
  const Share queries = read_share(o.queries, "queries", w, [&](index_t m, int r) {
    const index_t tiles = (m + tq - 1) / tq;
    return std::min(m, tq * (tiles * r / w.size));
  });
  std::vector<HeavyEntry> entries;
  HeavyStats stats;
  agreed(w, [&] {
    require(queries.d == keys.d,
            "queries have " + std::to_string(queries.d) + " columns but keys have " + std::to_string(keys.d));
    stats = search->run(queries.view(), [&](const HeavyEntry* e, index_t count) {
      for (index_t i = 0; i < count; ++i) entries.push_back({e[i].query + queries.begin, e[i].key, e[i].score});
    });
  });

  // 4: fallback rows.
  std::sort(deferred.begin(), deferred.end());
  for (index_t& qi : deferred) qi += queries.begin;
  index_t zero_fallback = 0;
  std::vector<HeavyEntry> fallback_entries;
  agreed(w, [&] { fallback_entries = finish_fallback_rows(deferred, queries, keys, o.eps, zero_fallback, w); });

  // 5: gather, order, write.
  std::vector<std::int64_t> q, k;
  std::vector<double> a;
  for (const HeavyEntry& e : entries) q.push_back(e.query), k.push_back(e.key), a.push_back(e.score);
  entries = {};
  const std::vector<std::int64_t> all_q = gather_to_root(q, MPI_INT64_T, w), all_k = gather_to_root(k, MPI_INT64_T, w);
  const std::vector<double> all_a = gather_to_root(a, MPI_DOUBLE, w);
  std::int64_t counts[3] = {stats.zero_queries, stats.fallback_queries, stats.rechecked};
  MPI_Reduce(w.rank == 0 ? MPI_IN_PLACE : counts, counts, 3, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
  std::vector<HeavyEntry> all = std::move(fallback_entries);
  agreed(w, [&] {
    if (w.rank != 0) return;
    for (size_t i = 0; i < all_q.size(); ++i) all.push_back({all_q[i], all_k[i], all_a[i]});
    std::sort(all.begin(), all.end(), [](const HeavyEntry& x, const HeavyEntry& y) {
      return std::tie(x.query, x.key) < std::tie(y.query, y.key);
    });
    cli::TextOutput output(o.output);
    const cli::HeavyCsvColumns columns;  // 2-D inputs, p = 2: query,key,score
    cli::write_heavy_csv_header(output.stream(), columns);
    for (const HeavyEntry& e : all) cli::write_heavy_csv_row(output.stream(), columns, e, 0, false);
    output.finish("the entries");
  });
  if (w.rank != 0) return 0;
  const UniversalSet& u = search->universal_set();
  const std::int64_t zero_rows = counts[0] + zero_fallback;
  const cli::HeavySummary summary{.n = keys.n,
                                  .m = queries.n,
                                  .d = keys.d,
                                  .heads = 1,
                                  .eps = o.eps,
                                  .p = o.p,
                                  .universal_set_size = u.size(),
                                  .bound = u.bound,
                                  .scanned_keys = search->scanned_keys(),
                                  .searched_queries = queries.n,
                                  .heavy_count = static_cast<index_t>(all.size()),
                                  .zero_queries = zero_rows,
                                  .fallback_queries = counts[1],
                                  .rechecked = counts[2],
                                  .output = o.output};
  if (o.common.json) {
    nlohmann::json j = cli::heavy_summary_json(summary);
    j.update({{"ranks", w.size}, {"keys_type", element_type_name(keys.type)}, {"seconds", total_time.seconds()}});
    cli::print_json(j);
  } else {
    cli::print_heavy_line("levattn-mpi", summary, " on " + std::to_string(w.size) + " ranks");
  }
  return 0;
}

}  // namespace

Command add_heavy_command(CLI::App& app) {
  auto o = std::make_shared<cli::HeavyArguments>();
  CLI::App* c = app.add_subcommand("heavy", "Every attention entry A[i,j] ≥ ε for f(x) = x²");
  cli::add_heavy_arguments(*c, *o, "Queries: file.npy, (m, d)", "Keys: file.npy, (n, d)");
  // Accepted as levattn accepts them, so that run_heavy can say what to use instead.
  c->get_option("--p")->description("Exponent of f(x) = |x|^p: 2 only over MPI");
  c->get_option("--verify")->description("Not over MPI: use levattn heavy --verify");
  return {c, [o](const World& w) { return run_heavy(*o, w); }};
}

}  // namespace levattn::mpi
