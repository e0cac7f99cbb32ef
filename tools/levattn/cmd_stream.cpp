// levattn stream --keys K --eps E [--block B] --output U.npy [--json]
// The universal set of (n, d) keys read B rows at a time in one pass: memory does not grow with n.
// Writes the same file as `levattn select --eps E` (int64 indices, ascending), bit for bit.
// K is a .npy file (read with pread, B rows at a time) or a .safetensors tensor (memory-mapped);
// float16 and bfloat16 blocks are pushed as they are stored, with the output of the same values
// stored as float32. A .safetensors tensor that cannot be mapped as it is (F64, or not little-endian
// C order at an aligned offset) is copied whole, with a warning and "keys_read": "copied whole".
#include <cstdio>
#include <memory>
#include <optional>
#include <vector>

#include "commands.hpp"
#include "levattn/io/npy.hpp"
#include "levattn/io/npy_rows.hpp"
#include "levattn/io/tensor.hpp"
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

struct StreamTimes {
  double reading = 0.0, computing = 0.0;
};

// Pushes rows [0, n) of elements T, `block` at a time: read(begin, rows, buffer) returns the rows
// as a view (into buffer, which it may resize, or into a mapped file).
template <class T, class Read>
void push_blocks(StreamSelector& selector, index_t n, index_t block, const Read& read, StreamTimes& times) {
  Progress progress("stream", n);
  std::vector<T> buffer;
  for (index_t begin = 0; begin < n; begin += block) {
    const index_t rows = std::min(block, n - begin);
    Stopwatch read_time;
    const MatrixView<const T> view = read(begin, rows, buffer);
    times.reading += read_time.seconds();
    Stopwatch compute;
    selector.push(view);  // errors name the row in the file
    times.computing += compute.seconds();
    progress.update(begin + rows);
  }
}

// Rows of a .npy file through pread, in the element type it stores (float16 kept 16-bit).
template <class T>
auto npy_rows(io::NpyRowReader& reader) {
  return [&reader](index_t begin, index_t rows, std::vector<T>& buffer) {
    buffer.resize(static_cast<size_t>(rows * reader.cols()));
    reader.read(begin, rows, buffer.data());
    return MatrixView<const T>(buffer.data(), rows, reader.cols());
  };
}

// Rows of a tensor already in memory (mapped), of element type T.
template <class T>
auto tensor_rows(const io::FloatTensor& tensor) {
  return [&tensor](index_t begin, index_t rows, std::vector<T>&) {
    const index_t d = tensor.dim(1);
    return MatrixView<const T>(tensor.data_as<T>() + begin * d, rows, d);
  };
}

int run_stream(const StreamCliOptions& o) {
  const double t_threads = start_threads(o.common);
  if (!ends_with(o.output, ".npy")) throw UsageError("stream writes .npy: --output must end in .npy");
  check_eps(o.eps);
  std::optional<io::NpyRowReader> reader;
  io::FloatTensor tensor;
  ElementType type = ElementType::f32;
  index_t n = 0, d = 0;
  if (ends_with(o.keys, ".npy")) {
    reader.emplace(o.keys);
    n = reader->rows(), d = reader->cols(), type = reader->element_type();
  } else {
    tensor = io::load_float_tensor(o.keys, io::Precision::keep_16_bit);
    require(tensor.ndim() == 2 && tensor.dim(0) >= 1 && tensor.dim(1) >= 1,
            o.keys + ": expected a 2-D (n, d) array with n, d ≥ 1, got shape " + io::format_shape(tensor.shape()));
    n = tensor.dim(0), d = tensor.dim(1), type = tensor.element_type();
    if (!tensor.mapped())  // F64, big-endian or misaligned: converted whole on load
      std::fprintf(stderr,
                   "levattn: warning: %s stores %s that cannot be read in place: all %lld keys were copied "
                   "into memory as %s, so memory grows with n (a .npy file is read by blocks)\n",
                   o.keys.c_str(), io::dtype_name(tensor.source_dtype()).c_str(), static_cast<long long>(n),
                   element_type_name(type));
  }
  const index_t block = std::min(o.block, n);

  StreamSelector selector(d, {.eps = o.eps, .rcond = o.rcond});
  StreamTimes times;
  switch (type) {
    case ElementType::f32:
      if (reader)
        push_blocks<float>(selector, n, block, npy_rows<float>(*reader), times);
      else
        push_blocks<float>(selector, n, block, tensor_rows<float>(tensor), times);
      break;
    case ElementType::f16:
      if (reader)
        push_blocks<Half>(selector, n, block, npy_rows<Half>(*reader), times);
      else
        push_blocks<Half>(selector, n, block, tensor_rows<Half>(tensor), times);
      break;
    case ElementType::bf16:  // .npy has no bfloat16: a .safetensors tensor
      push_blocks<BFloat16>(selector, n, block, tensor_rows<BFloat16>(tensor), times);
      break;
  }
  Stopwatch compute;
  const StreamResult result = selector.result();
  times.computing += compute.seconds();

  Stopwatch write;
  io::write_npy(o.output, result.set.indices.data(), {result.set.size()});
  const double writing = write.seconds();
  if (!result.set.within_bound) std::fprintf(stderr, "levattn: warning: |U| exceeds its bound rank/eps\n");

  if (o.common.json) {
    nlohmann::json j = universal_set_summary_json(
        "stream", {n, d, o.eps, std::nullopt, result.set.size(), result.set.bound, result.set.within_bound, o.output});
    j.update({{"block", block},
              {"keys_type", element_type_name(type)},
              {"keys_read", reader            ? "by blocks"
                            : tensor.mapped() ? "mapped"
                                              : "copied whole"},
              {"rank", result.rank},
              {"peak_retained_keys", selector.peak_retained()},
              {"keys_per_second", double(n) / (times.reading + times.computing)},
              {"seconds",
               {{"threads", t_threads}, {"read", times.reading}, {"compute", times.computing}, {"write", writing}}}});
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
                                   "The universal set {j : τ_j ≥ ε} in one pass over (n, d) keys read in blocks "
                                   "(memory independent of n; same output as select --eps)");
  c->add_option("--keys", o->keys,
                "Keys, (n, d): file.npy (any float dtype, C order; read with pread) or file.safetensors[:name] "
                "(memory-mapped); float16/bfloat16 read as they are")
      ->required();
  c->add_option("--eps", o->eps, "Threshold ε in (0, 1]: U = {j : τ_j ≥ ε}")->required();
  c->add_option("--block", o->block, "Rows read at a time")->check(CLI::PositiveNumber)->capture_default_str();
  add_rcond_option(*c, o->rcond);
  c->add_option("--output", o->output, "Output: OUT.npy, int64 indices ascending")->required();
  add_common_options(*c, o->common);
  return {c, [o] { return run_stream(*o); }};
}

}  // namespace levattn::cli
