// levattn stream --keys K.npy --eps E [--block B] --output U.npy [--json]
// The universal set of (n, d) keys read B rows at a time in one pass: memory does not grow with n.
// Writes the same file as `levattn select --eps E` (int64 indices, ascending), bit for bit.
#include <cstdio>
#include <memory>
#include <vector>

#include "commands.hpp"
#include "levattn/io/npy.hpp"
#include "levattn/io/npy_rows.hpp"
#include "levattn/select/stream_selector.hpp"
#include "report.hpp"
#include "summaries.hpp"

namespace levattn::cli {

namespace {
struct StreamCliOptions {
  std::string keys, output;
  double eps = 0.0;
  index_t block = 65536;
  double rcond = kDefaultRcond;
  CommonOptions common;
};

int run_stream(const StreamCliOptions& o) {
  apply_threads(o.common);
  if (!ends_with(o.output, ".npy")) throw UsageError("stream writes .npy: --output must end in .npy");
  if (!ends_with(o.keys, ".npy")) throw UsageError("stream reads .npy files: --keys must end in .npy");
  check_eps(o.eps);
  io::NpyRowReader reader(o.keys);
  const index_t n = reader.rows(), d = reader.cols();
  const index_t block = std::min(o.block, n);

  StreamSelector selector(d, {.eps = o.eps, .rcond = o.rcond});
  std::vector<float> buffer(static_cast<size_t>(block * d));
  double reading = 0.0, computing = 0.0;
  Progress progress("stream", n);
  for (index_t begin = 0; begin < n; begin += block) {
    const index_t rows = std::min(block, n - begin);
    Stopwatch read;
    reader.read(begin, rows, buffer.data());
    reading += read.seconds();
    Stopwatch compute;
    selector.push(ConstMatrixF(buffer.data(), rows, d));  // errors name the row in the file
    computing += compute.seconds();
    progress.update(begin + rows);
  }
  Stopwatch compute;
  const StreamResult result = selector.result();
  computing += compute.seconds();

  Stopwatch write;
  io::write_npy(o.output, result.set.indices.data(), {result.set.size()});
  const double writing = write.seconds();
  if (!result.set.within_bound) std::fprintf(stderr, "levattn: warning: |U| exceeds its bound rank/eps\n");

  if (o.common.json) {
    nlohmann::json j = universal_set_summary_json(
        "stream", {n, d, o.eps, std::nullopt, result.set.size(), result.set.bound, result.set.within_bound, o.output});
    j.update({{"block", block},
              {"rank", result.rank},
              {"peak_retained_keys", selector.peak_retained()},
              {"keys_per_second", double(n) / (reading + computing)},
              {"seconds", {{"read", reading}, {"compute", computing}, {"write", writing}}}});
    print_json(j);
  } else {
    std::fprintf(stderr, "levattn: wrote %s: |U| = %lld of %lld keys, bound %.6g, at most %lld keys held\n",
                 o.output.c_str(), static_cast<long long>(result.set.size()), static_cast<long long>(n),
                 result.set.bound, static_cast<long long>(selector.peak_retained()));
  }
  return 0;
}
}  // namespace

Command add_stream_command(CLI::App& app) {
  auto o = std::make_shared<StreamCliOptions>();
  CLI::App* c = app.add_subcommand("stream",
                                   "The universal set {j : τ_j ≥ ε} in one pass over an (n, d) .npy read in blocks "
                                   "(memory independent of n; same output as select --eps)");
  c->add_option("--keys", o->keys, "Keys: file.npy, (n, d), any float dtype, C order")->required();
  c->add_option("--eps", o->eps, "Threshold ε in (0, 1]: U = {j : τ_j ≥ ε}")->required();
  c->add_option("--block", o->block, "Rows read at a time")->check(CLI::PositiveNumber)->capture_default_str();
  add_rcond_option(*c, o->rcond);
  c->add_option("--output", o->output, "Output: OUT.npy, int64 indices ascending")->required();
  add_common_options(*c, o->common);
  return {c, [o] { return run_stream(*o); }};
}

}  // namespace levattn::cli
