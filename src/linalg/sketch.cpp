#include "levattn/linalg/sketch.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <optional>
#include <string>

#include "core/first_error.hpp"
#include "levattn/core/finite_rows.hpp"
#include "linalg/counter_random.hpp"
#include "linalg/kernels.hpp"
#include "linalg/sketch_kernels.hpp"
#include "linalg/widen_rows.hpp"

namespace levattn {

namespace {

// Streams of counter-based random numbers, one per use.
constexpr std::uint64_t kStreamSparseRow = 1, kStreamSparseSign = 2, kStreamGaussian = 3, kStreamSrhtRow = 4,
                        kStreamSrhtSign = 5;
constexpr index_t kMaxNonzeros = 64;
constexpr index_t kKeysPerPass = index_t{1} << 13;  // keys whose nonzeros are drawn and sorted at once
constexpr index_t kGaussianRowChunk = 16;
// 16-bit keys are widened per chunk of max(kKeysPerPass rows, 16 MiB of floats).
constexpr index_t kWidenedFloats = index_t{1} << 22;

kernels::ScatterFn scatter_kernel() {
#ifdef LEVATTN_AVX512
  if (kernels::use_avx512()) return kernels::scatter_avx512();
#endif
#ifdef LEVATTN_AVX2
  if (kernels::use_avx2()) return kernels::scatter_avx2();
#endif
  return kernels::scatter_generic();
}

}  // namespace

const char* sketch_kind_name(SketchKind kind) {
  switch (kind) {
    case SketchKind::count_sketch:
      return "count_sketch";
    case SketchKind::sparse_sign:
      return "sparse_sign";
    case SketchKind::gaussian:
      return "gaussian";
    case SketchKind::srht:
      return "srht";
  }
  return "?";
}

Sketch::Sketch(index_t d, const SketchOptions& options) : d_(d), options_(options) {
  require(d >= 1, "sketch: dimension must be at least 1");
  require(options.rows >= 1, "sketch: need at least one row, got " + std::to_string(options.rows));
  require(options.rows <= (index_t{1} << 31) - 1, "sketch: too many rows");
  if (options_.kind == SketchKind::count_sketch) options_.nonzeros = 1;
  if (options_.kind == SketchKind::sparse_sign)
    require(options_.nonzeros >= 1 && options_.nonzeros <= std::min(options_.rows, kMaxNonzeros),
            "sketch: sparse sign needs 1 ≤ s ≤ min(m, 64) nonzeros per key, got " + std::to_string(options_.nonzeros));
  sk_.assign(static_cast<size_t>(options_.rows * d_), 0.0);
  if (options_.kind == SketchKind::srht) {
    srht_block_ =
        std::clamp<index_t>(static_cast<index_t>(std::bit_ceil(static_cast<std::uint64_t>(options_.rows))), 256, 16384);
    srht_rows_.resize(static_cast<size_t>(options_.rows));
    for (index_t t = 0; t < options_.rows; ++t)
      srht_rows_[t] = detail::counter_bits(options_.seed, kStreamSrhtRow, static_cast<std::uint64_t>(t), 0) >> 2;
    srht_pending_.assign(static_cast<size_t>(srht_block_ * d_), 0.0);
  }
}

void Sketch::add(ConstMatrixF block) {
  require(block.cols == d_,
          "sketch: keys have " + std::to_string(block.cols) + " columns, sketch has dimension " + std::to_string(d_));
  if (block.rows == 0) return;
  switch (options_.kind) {
    case SketchKind::count_sketch:
    case SketchKind::sparse_sign:
      add_sparse(block);
      break;
    case SketchKind::gaussian:
      add_gaussian(block);
      break;
    case SketchKind::srht:
      add_srht(block);
      break;
  }
  count_ += block.rows;
}

template <class T>
void Sketch::add_widened(MatrixView<const T> block) {
  require(block.cols == d_,
          "sketch: keys have " + std::to_string(block.cols) + " columns, sketch has dimension " + std::to_string(d_));
  const index_t chunk = std::max(kKeysPerPass, kWidenedFloats / d_);
  std::vector<float> widened(static_cast<size_t>(std::min(chunk, block.rows) * d_));
  // add() leaves the sketch unchanged when a chunk holds a bad row; with more than one chunk, the
  // chunks before it are undone from a copy of the state (O(m·d), whatever the number of rows).
  std::optional<Sketch> before;
  if (block.rows > chunk) before = *this;
  try {
    for (index_t begin = 0; begin < block.rows; begin += chunk) {
      const index_t rows = std::min(chunk, block.rows - begin);
#pragma omp parallel for schedule(static)
      for (index_t r = 0; r < rows; r += kKeysPerPass / 8)
        widen_rows(block, begin + r, std::min(kKeysPerPass / 8, rows - r), widened.data() + r * d_);
      add(ConstMatrixF(widened.data(), rows, d_));
    }
  } catch (...) {
    if (before) *this = std::move(*before);
    throw;
  }
}

void Sketch::add(MatrixView<const Half> block) { add_widened(block); }
void Sketch::add(MatrixView<const BFloat16> block) { add_widened(block); }

void Sketch::add_sparse(ConstMatrixF block) {
  const index_t m = options_.rows, s = options_.nonzeros;
  const double scale = 1.0 / std::sqrt(static_cast<double>(s));
  // Sketch rows are handled in bands that fit in L2 (≈ 256 KiB of doubles); the nonzeros of a
  // pass are sorted by band (stably: key order is kept), and each band gathers its keys. Every
  // sketch row is thus summed in key order whatever the thread count or block split.
  const index_t band = std::max<index_t>(1, (index_t{1} << 15) / d_);
  const index_t bands = (m + band - 1) / band;
  // Work on a copy so that a bad row leaves the sketch unchanged.
  std::vector<double> out = sk_;
  std::vector<std::int32_t> target(static_cast<size_t>(kKeysPerPass * s));
  std::vector<double> value(target.size());
  std::vector<std::int32_t> sorted_target(target.size()), sorted_key(target.size());
  std::vector<double> sorted_value(target.size());
  std::vector<index_t> start(static_cast<size_t>(bands + 1));
  const kernels::ScatterFn scatter = scatter_kernel();
  bool finite = true;
  for (index_t begin = 0; begin < block.rows && finite; begin += kKeysPerPass) {
    const index_t rows = std::min(kKeysPerPass, block.rows - begin);
#pragma omp parallel for schedule(static)
    for (index_t r = 0; r < rows; ++r) {
      const auto key = static_cast<std::uint64_t>(count_ + begin + r);
      std::int32_t* tr = target.data() + r * s;
      double* vr = value.data() + r * s;
      std::uint64_t draw = 0;
      for (index_t t = 0; t < s; ++t) {
        std::int32_t row;
        do {  // s distinct rows: redraw on a collision
          row = static_cast<std::int32_t>(detail::counter_bits(options_.seed, kStreamSparseRow, key, draw++) %
                                          static_cast<std::uint64_t>(m));
        } while (std::find(tr, tr + t, row) != tr + t);
        tr[t] = row;
        vr[t] = (detail::counter_bits(options_.seed, kStreamSparseSign, key, static_cast<std::uint64_t>(t)) & 1)
                    ? scale
                    : -scale;
      }
    }
    // Counting sort of the nonzeros by band, stable.
    const index_t entries = rows * s;
    std::fill(start.begin(), start.end(), 0);
    for (index_t e = 0; e < entries; ++e) ++start[target[e] / band + 1];
    for (index_t b = 0; b < bands; ++b) start[b + 1] += start[b];
    std::vector<index_t> fill(start.begin(), start.end() - 1);
    for (index_t e = 0; e < entries; ++e) {
      const index_t at = fill[target[e] / band]++;
      sorted_target[at] = target[e];
      sorted_key[at] = static_cast<std::int32_t>(e / s);
      sorted_value[at] = value[e];
    }
    bool pass_finite = true;
#pragma omp parallel for schedule(dynamic, 1) reduction(&& : pass_finite)
    for (index_t b = 0; b < bands; ++b)
      pass_finite =
          scatter(block.row(begin), block.stride, d_, sorted_key.data() + start[b], sorted_target.data() + start[b],
                  sorted_value.data() + start[b], start[b + 1] - start[b], out.data()) &&
          pass_finite;
    finite = pass_finite;
  }
  if (!finite) require_finite_rows(block, "keys", count_);
  sk_.swap(out);
}

void Sketch::add_gaussian(ConstMatrixF block) {
  require_finite_rows(block, "keys", count_);
  const index_t m = options_.rows;
  const double scale = 1.0 / std::sqrt(static_cast<double>(m));
  const index_t chunks = (m + kGaussianRowChunk - 1) / kGaussianRowChunk;
#pragma omp parallel for schedule(dynamic, 1)
  for (index_t ch = 0; ch < chunks; ++ch) {
    std::vector<double> x(static_cast<size_t>(d_));
    const index_t i0 = ch * kGaussianRowChunk, i1 = std::min(m, i0 + kGaussianRowChunk);
    for (index_t r = 0; r < block.rows; ++r) {
      for (index_t c = 0; c < d_; ++c) x[c] = block(r, c);
      const auto key = static_cast<std::uint64_t>(count_ + r);
      for (index_t i = i0; i < i1; ++i) {
        const double g =
            scale * detail::counter_normal(options_.seed, kStreamGaussian, key, static_cast<std::uint64_t>(i));
        double* o = sk_.data() + i * d_;
        for (index_t c = 0; c < d_; ++c) o[c] += g * x[c];
      }
    }
  }
}

void Sketch::add_srht(ConstMatrixF block) {
  require_finite_rows(block, "keys", count_);
  const index_t B = srht_block_;
  for (index_t r = 0; r < block.rows; ++r) {
    const index_t key = count_ + r, local = key % B;
    const double sign =
        (detail::counter_bits(options_.seed, kStreamSrhtSign, static_cast<std::uint64_t>(key), 0) & 1) ? 1.0 : -1.0;
    double* p = srht_pending_.data() + local * d_;
    for (index_t c = 0; c < d_; ++c) p[c] = sign * block(r, c);
    if (local == B - 1) {
      flush_srht_block(srht_pending_, key / B, sk_);
      std::fill(srht_pending_.begin(), srht_pending_.end(), 0.0);
    }
  }
}

// into += the sampled rows of H·(pending block), block `block_index` of the virtual 2⁶² rows:
// for a sampled row i and a key j = base + j' (base = block_index·B, a multiple of B),
// H[i][j] = (−1)^popcount(i & base) · H_B[i mod B][j'].
void Sketch::flush_srht_block(const std::vector<double>& block, index_t block_index, std::vector<double>& into) const {
  const index_t B = srht_block_, m = options_.rows;
  std::vector<double> h = block;
  for (index_t half = 1; half < B; half *= 2) {
#pragma omp parallel for schedule(static)
    for (index_t i = 0; i < B / 2; ++i) {
      const index_t lo = (i / half) * 2 * half + (i % half), hi = lo + half;
      double* a = h.data() + lo * d_;
      double* b = h.data() + hi * d_;
      for (index_t c = 0; c < d_; ++c) {
        const double x = a[c], y = b[c];
        a[c] = x + y;
        b[c] = x - y;
      }
    }
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(m));
  const std::uint64_t base = static_cast<std::uint64_t>(block_index) * static_cast<std::uint64_t>(B);
#pragma omp parallel for schedule(static)
  for (index_t t = 0; t < m; ++t) {
    const std::uint64_t i = srht_rows_[t];
    const double sign = (std::popcount(i & base) & 1) ? -scale : scale;
    const double* src = h.data() + static_cast<index_t>(i & static_cast<std::uint64_t>(B - 1)) * d_;
    double* o = into.data() + t * d_;
    for (index_t c = 0; c < d_; ++c) o[c] += sign * src[c];
  }
}

std::vector<double> Sketch::sketch() const {
  std::vector<double> out = sk_;
  if (options_.kind == SketchKind::srht && count_ % srht_block_ != 0)
    flush_srht_block(srht_pending_, count_ / srht_block_, out);
  return out;
}

}  // namespace levattn
