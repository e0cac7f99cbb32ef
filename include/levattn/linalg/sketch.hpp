// Sketching operators S (m × n) applied to keys K (n × d) as they arrive in row blocks, giving
// SK (m × d, double). Used for fast approximate leverage scores (scores/approx_leverage.hpp) and
// usable on streaming input: add() takes the next rows, sketch() answers at any time.
//
// Kinds (all scaled so that E[SᵀS] = I):
//   count_sketch  each key goes to one random row with a random sign (Clarkson–Woodruff 2013).
//   sparse_sign   each key goes to s distinct random rows with random signs ±1/√s (the "sparse
//                 sign" / OSNAP embedding; Nelson–Nguyễn 2013, Tropp et al. 2019 recommend s = 8).
//                 Cost O(n·d·s); the default of approximate leverage scores.
//   gaussian      i.i.d. N(0, 1/m) entries. Cost O(n·d·m): for small inputs and references.
//   srht          subsampled randomised Hadamard transform √(N/m)·P·H·D over a virtual length
//                 N = 2⁶² (so n need not be known in advance): random signs D, the Walsh–Hadamard
//                 matrix H, m rows sampled uniformly. Applied per aligned block of B = 2^b keys
//                 with a fast transform: cost O(n·d·log B + (n/B)·m·d).
//
// Determinism: every entry of S is a pure function of (seed, key index, row) — keys are numbered
// in the order add() receives them — and each row of SK is summed in key order, so the result
// never depends on the thread count. For count_sketch and sparse_sign it also does not depend on
// how the input is split into blocks; for gaussian and srht the split may change the last bits.
#pragma once

#include <cstdint>
#include <vector>

#include "levattn/core/half.hpp"
#include "levattn/core/matrix_view.hpp"

namespace levattn {

enum class SketchKind { count_sketch, sparse_sign, gaussian, srht };

// "count_sketch", "sparse_sign", "gaussian", "srht".
const char* sketch_kind_name(SketchKind kind);

struct SketchOptions {
  SketchKind kind = SketchKind::sparse_sign;
  index_t rows = 0;      // m ≥ 1
  index_t nonzeros = 8;  // s, sparse_sign only: 1 ≤ s ≤ min(m, 64)
  std::uint64_t seed = 1;
};

class Sketch {
 public:
  // An empty sketch (SK = 0) of d-dimensional keys. Throws Error{bad_input} on d < 1, m < 1 or
  // s outside [1, min(m, 64)].
  Sketch(index_t d, const SketchOptions& options);

  // SK += S[:, count .. count + rows) · block, where count is the number of keys added so far.
  // block must have d columns and finite entries; throws Error{bad_input} naming the first bad
  // row (numbered from the start of the stream) and leaves the sketch unchanged then.
  // Parallel over columns (OpenMP).
  void add(ConstMatrixF block);
  // The same for 16-bit keys, widened (exactly) to float a chunk of rows at a time (16 MiB of
  // floats, or 8,192 rows where those take more, as each chunk's add() copies the sketch): for
  // count_sketch and sparse_sign the bits equal those of add() on the widened keys; for gaussian
  // and srht, as for any other split of the input, the last bits may differ. A bad row leaves the
  // sketch unchanged here too.
  void add(MatrixView<const Half> block);
  void add(MatrixView<const BFloat16> block);

  // SK, m × d row-major, for the keys added so far.
  std::vector<double> sketch() const;

  index_t rows() const { return options_.rows; }
  index_t dim() const { return d_; }
  index_t count() const { return count_; }
  const SketchOptions& options() const { return options_; }

 private:
  template <class T>
  void add_widened(MatrixView<const T> block);
  void add_sparse(ConstMatrixF block);
  void add_gaussian(ConstMatrixF block);
  void add_srht(ConstMatrixF block);
  void flush_srht_block(const std::vector<double>& block, index_t block_index, std::vector<double>& into) const;

  index_t d_;
  SketchOptions options_;
  index_t count_ = 0;
  std::vector<double> sk_;  // m × d
  // srht: the sampled rows of H and the partial block of D·K not yet transformed.
  std::vector<std::uint64_t> srht_rows_;
  index_t srht_block_ = 0;            // B
  std::vector<double> srht_pending_;  // B × d, rows [0, count_ mod B) filled
};

}  // namespace levattn
