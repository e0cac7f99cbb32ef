#include "mpi_select.hpp"

#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "levattn/io/npy.hpp"
#include "levattn/io/npy_rows.hpp"
#include "levattn/linalg/gram.hpp"
#include "levattn/scores/leverage.hpp"
#include "levattn/select/universal_set.hpp"

namespace levattn::mpi {

namespace {

struct World {
  int rank = 0, size = 1;
  World() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
};

// Runs `local` on every rank, then agrees: if any rank threw, every rank throws the error of the
// lowest such rank (levattn::Error keeps its kind; UsageError stays a usage error).
void agreed(const World& w, const std::function<void()>& local) {
  int code = 0;  // 0 ok, 1 failure, 2 usage, 3 bad input
  std::string message;
  try {
    local();
  } catch (const cli::UsageError& e) {
    code = 2, message = e.what();
  } catch (const Error& e) {
    code = e.kind() == ErrorKind::bad_input ? 3 : 1, message = e.what();
  } catch (const std::bad_alloc&) {
    code = 1, message = "out of memory";
  } catch (const std::exception& e) {
    code = 1, message = e.what();
  }
  int first = code != 0 ? w.rank : w.size;
  MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (first == w.size) return;
  int length = static_cast<int>(message.size());
  MPI_Bcast(&code, 1, MPI_INT, first, MPI_COMM_WORLD);
  MPI_Bcast(&length, 1, MPI_INT, first, MPI_COMM_WORLD);
  message.resize(static_cast<size_t>(length));
  MPI_Bcast(message.data(), length, MPI_CHAR, first, MPI_COMM_WORLD);
  if (code == 2) throw cli::UsageError(message);
  throw Error(code == 3 ? ErrorKind::bad_input : ErrorKind::failure, message);
}

// Gathers every rank's bytes on every rank, in rank order.
std::vector<std::vector<std::uint8_t>> all_gather(const std::vector<std::uint8_t>& mine, const World& w) {
  const int n = static_cast<int>(mine.size());
  std::vector<int> sizes(static_cast<size_t>(w.size)), offsets(static_cast<size_t>(w.size), 0);
  MPI_Allgather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, MPI_COMM_WORLD);
  for (int r = 1; r < w.size; ++r) offsets[r] = offsets[r - 1] + sizes[r - 1];
  std::vector<std::uint8_t> all(static_cast<size_t>(offsets.back() + sizes.back()));
  MPI_Allgatherv(mine.data(), n, MPI_BYTE, all.data(), sizes.data(), offsets.data(), MPI_BYTE, MPI_COMM_WORLD);
  std::vector<std::vector<std::uint8_t>> out;
  for (int r = 0; r < w.size; ++r) out.emplace_back(all.begin() + offsets[r], all.begin() + offsets[r] + sizes[r]);
  return out;
}

// This rank's rows of an (n, d) .npy file, with the global summary of all ranks' rows.
struct Share {
  index_t n = 0, d = 0, begin = 0, rows = 0;
  std::vector<float> keys;
  ConstMatrixF view() const { return {keys.data(), rows, d}; }
};

Share read_share(const std::string& path, const World& w) {
  Share s;
  agreed(w, [&] {
    io::NpyRowReader reader(path);
    s.n = reader.rows(), s.d = reader.cols();
    s.begin = s.n * w.rank / w.size;
    s.rows = s.n * (w.rank + 1) / w.size - s.begin;
    s.keys.resize(static_cast<size_t>(s.rows * s.d));
    reader.read(s.begin, s.rows, s.keys.data());
    for (index_t r = 0; r < s.rows; ++r)
      for (index_t c = 0; c < s.d; ++c)
        require(std::isfinite(s.keys[r * s.d + c]),
                "keys: row " + std::to_string(s.begin + r) + " holds a NaN or an infinity");
  });
  return s;
}

// Every rank's summary, merged in rank order: bit-identical to one summary of all n rows.
GramSummary global_summary(const Share& s, const World& w) {
  GramSummary mine(s.d, s.begin);
  mine.add(s.view());
  const auto parts = all_gather(mine.to_bytes(), w);
  GramSummary total = GramSummary::from_bytes(parts[0].data(), parts[0].size());
  for (int r = 1; r < w.size; ++r) total.merge(GramSummary::from_bytes(parts[r].data(), parts[r].size()));
  return total;
}

template <class T>
std::vector<T> gather_to_root(const std::vector<T>& mine, MPI_Datatype type, const World& w) {
  const int n = static_cast<int>(mine.size());
  std::vector<int> sizes(static_cast<size_t>(w.size)), offsets(static_cast<size_t>(w.size), 0);
  MPI_Gather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  for (int r = 1; r < w.size; ++r) offsets[r] = offsets[r - 1] + sizes[r - 1];
  std::vector<T> all(w.rank == 0 ? static_cast<size_t>(offsets.back() + sizes.back()) : 0);
  MPI_Gatherv(mine.data(), n, type, all.data(), sizes.data(), offsets.data(), type, 0, MPI_COMM_WORLD);
  return all;
}

struct SelectOptions {
  std::string keys, output;
  std::optional<double> eps;
  std::optional<index_t> top_k;
  double rcond = kDefaultRcond;
  cli::CommonOptions common;
};

int run_select(const SelectOptions& o, const World& w) {
  cli::apply_threads(o.common);
  cli::Stopwatch total_time;
  agreed(w, [&] {
    if (!cli::ends_with(o.output, ".npy")) throw cli::UsageError("select writes .npy: --output must end in .npy");
    if (o.eps) check_eps(*o.eps);
  });
  const Share share = read_share(o.keys, w);
  agreed(w, [&] {
    if (o.top_k) require(*o.top_k >= 1 && *o.top_k <= share.n, "top-k must lie in [1, n] = [1, " +
                                                                   std::to_string(share.n) + "], got " + std::to_string(*o.top_k));
  });
  LeverageScorer scorer(share.d, {0.0, o.rcond});
  agreed(w, [&] { scorer.fit(global_summary(share, w)); });
  const std::vector<double> tau = scorer.scores(share.view());

  // Each rank's candidates: its keys ≥ ε, or its own top k (the global top k lie among them).
  UniversalSet local;
  if (o.eps)
    local = select_by_threshold(tau.data(), share.rows, *o.eps, double(scorer.rank()));
  else if (share.rows > 0)
    local = select_top_k(tau.data(), share.rows, std::min(*o.top_k, share.rows));
  std::vector<std::int64_t> index;
  for (index_t j : local.indices) index.push_back(share.begin + j);
  const std::vector<std::int64_t> all_index = gather_to_root(index, MPI_INT64_T, w);
  const std::vector<double> all_tau = gather_to_root(local.scores, MPI_DOUBLE, w);

  UniversalSet u;
  agreed(w, [&] {
    if (w.rank != 0) return;
    const auto m = static_cast<index_t>(all_tau.size());
    u = o.eps ? select_by_threshold(all_tau.data(), m, *o.eps, double(scorer.rank()))
              : select_top_k(all_tau.data(), m, *o.top_k);
    for (index_t& j : u.indices) j = all_index[static_cast<size_t>(j)];
    io::write_npy(o.output, u.indices.data(), {u.size()});
  });
  if (w.rank != 0) return 0;
  if (!u.within_bound) std::fprintf(stderr, "levattn-mpi: warning: |U| exceeds its bound rank/eps\n");
  if (o.common.json) {
    nlohmann::json j = {{"command", "select"}, {"n", share.n}, {"d", share.d}, {"ranks", w.size},
                        {"rank", scorer.rank()}, {"universal_set_size", u.size()}, {"bound", u.bound},
                        {"within_bound", u.within_bound}, {"output", o.output},
                        {"seconds", total_time.seconds()}};
    if (o.eps) j["eps"] = *o.eps; else j["top_k"] = *o.top_k;
    cli::print_json(j);
  } else {
    std::fprintf(stderr, "levattn-mpi: wrote %s: |U| = %lld over %d ranks, bound %.6g\n", o.output.c_str(),
                 static_cast<long long>(u.size()), w.size, u.bound);
  }
  return 0;
}

}  // namespace

int run(int argc, char** argv) {
  const World w;
  CLI::App app("levattn-mpi — levattn select over MPI ranks (same arguments as levattn)", "levattn-mpi");
  app.require_subcommand(1);
  auto so = std::make_shared<SelectOptions>();
  CLI::App* sel = app.add_subcommand("select", "The universal set {j : τ_j ≥ ε}, or the top-k by τ");
  sel->add_option("--keys", so->keys, "Keys: file.npy, (n, d)")->required();
  auto* eps = sel->add_option("--eps", so->eps, "Threshold ε in (0, 1]");
  auto* k = sel->add_option("--top-k", so->top_k, "Budget: the k keys with the largest τ (ties: lower index)");
  eps->excludes(k);
  k->excludes(eps);
  sel->add_option("--rcond", so->rcond, "Relative singular-value cut-off")->capture_default_str();
  sel->add_option("--output", so->output, "Output: OUT.npy (int64 indices ascending)")->required();
  cli::add_common_options(*sel, so->common);
  sel->callback([sel] {
    if (sel->count("--eps") + sel->count("--top-k") != 1) throw CLI::RequiredError("exactly one of --eps and --top-k");
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (w.rank != 0) return e.get_exit_code() == 0 ? 0 : 2;
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "levattn-mpi: error: %s\n", e.what());
    return 2;
  }
  return run_select(*so, w);
}

}  // namespace levattn::mpi
