#include "levattn/linalg/gram.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/first_error.hpp"
#include "linalg/kernels.hpp"

namespace levattn {

namespace {
// Rows of one call are cut into at most this many contiguous slices, each summed by one thread
// in row order and then added in slice order: the thread count never changes the sums.
constexpr index_t kSlices = 16;
}  // namespace

GramSummary::GramSummary(index_t d) : d_(d) {
  require(d >= 1, "gram summary: dimension must be at least 1");
  const index_t dpad = kernels::padded_dim(d);
  upper_.assign(static_cast<size_t>(dpad * dpad), 0.0);
}

void GramSummary::add(ConstMatrixF keys) { add(keys, nullptr); }

void GramSummary::add(ConstMatrixF keys, const double* row_scale) {
  require(keys.cols == d_, "gram summary: keys have " + std::to_string(keys.cols) +
                               " columns, summary has dimension " + std::to_string(d_));
  if (keys.rows == 0) return;
  if (row_scale != nullptr)
    for (index_t r = 0; r < keys.rows; ++r)
      require(row_scale[r] >= 0.0 && std::isfinite(row_scale[r]),
              "gram summary: row scale " + std::to_string(r) + " must be finite and ≥ 0");
  const auto& kernel = kernels::active_kernels();
  const index_t dpad = kernels::padded_dim(d_);
  const index_t blocks = (keys.rows + kernels::kBlockRows - 1) / kernels::kBlockRows;
  const index_t slices = std::min(kSlices, blocks);
  std::vector<double> partial(static_cast<size_t>(slices * dpad * dpad), 0.0);
  index_t first_bad_block = blocks;  // blocks holding NaN/Inf, smallest index
  FirstError error;                  // e.g. a kernel's scratch that does not fit

#pragma omp parallel for schedule(dynamic, 1) reduction(min : first_bad_block)
  for (index_t s = 0; s < slices; ++s) {
    try {
      double* G = partial.data() + s * dpad * dpad;
      std::vector<float> scaled(row_scale != nullptr ? static_cast<size_t>(kernels::kBlockRows * d_) : 0);
      for (index_t b = blocks * s / slices; b < blocks * (s + 1) / slices && !error.failed(); ++b) {
        const index_t begin = b * kernels::kBlockRows;
        const index_t rows = std::min(kernels::kBlockRows, keys.rows - begin);
        const float* X = keys.row(begin);
        index_t stride = keys.stride;
        if (row_scale != nullptr) {
          for (index_t r = 0; r < rows; ++r) {
            const double w = row_scale[begin + r];
            const float* x = keys.row(begin + r);
            for (index_t c = 0; c < d_; ++c) scaled[r * d_ + c] = static_cast<float>(w * x[c]);
          }
          X = scaled.data();
          stride = d_;
        }
        if (!kernel.gram(X, rows, d_, stride, G)) {
          first_bad_block = std::min(first_bad_block, b);
          break;
        }
      }
    } catch (...) {
      error.capture();
    }
  }
  error.rethrow_if_any();
  if (first_bad_block < blocks) {
    const index_t begin = first_bad_block * kernels::kBlockRows;
    const index_t end = std::min(begin + kernels::kBlockRows, keys.rows);
    for (index_t r = begin; r < end; ++r)
      for (index_t c = 0; c < d_; ++c)
        require(std::isfinite(keys(r, c)),
                "keys: row " + std::to_string(r) + " holds a NaN or an infinity");
    throw Error(ErrorKind::failure, "gram summary: a row of block " + std::to_string(first_bad_block) +
                                        " overflows float once scaled");
  }
  for (index_t s = 0; s < slices; ++s) {
    const double* G = partial.data() + s * dpad * dpad;
    for (index_t a = 0; a < d_; ++a)
      for (index_t b = a; b < d_; ++b) upper_[a * dpad + b] += G[a * dpad + b];
  }
  count_ += keys.rows;
}

void GramSummary::merge(const GramSummary& other) {
  require(other.d_ == d_, "gram summary: cannot merge dimension " + std::to_string(other.d_) +
                              " into dimension " + std::to_string(d_));
  for (size_t i = 0; i < upper_.size(); ++i) upper_[i] += other.upper_[i];
  count_ += other.count_;
}

std::vector<double> GramSummary::gram() const {
  const index_t dpad = kernels::padded_dim(d_);
  std::vector<double> G(static_cast<size_t>(d_ * d_));
  for (index_t a = 0; a < d_; ++a)
    for (index_t b = a; b < d_; ++b) G[a * d_ + b] = G[b * d_ + a] = upper_[a * dpad + b];
  return G;
}

}  // namespace levattn
