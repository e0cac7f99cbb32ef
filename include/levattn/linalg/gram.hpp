// GramSummary — the mergeable summary G = KᵀK of a run of consecutive key rows.
//
// Summation order (what makes results reproducible): rows are placed at global positions
// first_row, first_row + 1, …; positions cut the rows into aligned blocks of 256. Each block is
// summed on its own, every float×float product formed exactly in double; whole blocks are added
// pairwise along the aligned binary tree over block numbers (a piece covering blocks
// [b, b + 2^l) with b a multiple of 2^l is the sum of its two halves, left + right); and G is the
// sum of the resulting maximal pieces (with the partial blocks at either end) from left to right.
// That order is a function of the rows and their positions alone, so the bits of G do not depend
// on how the rows were split into add() calls (one call, blocks of any size, single rows), on the
// thread count, or on how consecutive runs were merged: a summary built from parts
// [a, b), [b, c), … with merge() equals, bit for bit, one summary that add()ed rows [a, c).
// The tree also keeps rounding small: an entry sees about log₂(n/256) additions after the block
// sums (a test holds every entry to 1e-13·G_ii at n = 10⁷).
//
// Size: at most 2·log₂(n/256) + 2 matrices of d×d doubles plus two partial blocks of ≤ 255 rows.
#pragma once

#include <cstdint>
#include <vector>

#include "levattn/core/half.hpp"
#include "levattn/core/matrix_view.hpp"

namespace levattn {

class GramSummary {
 public:
  // An empty summary of d-dimensional keys (d ≥ 1) whose first row will sit at global position
  // first_row ≥ 0 (0 for a whole stream; the start of its share for a part of one).
  explicit GramSummary(index_t d, index_t first_row = 0);

  // G += keysᵀ keys, the rows taking positions end_row(), end_row() + 1, …. keys must have d
  // columns. Throws Error{bad_input} naming the first row (counted within `keys`) that holds a
  // NaN or an infinity; the summary is then unchanged. Parallel over blocks (OpenMP).
  void add(ConstMatrixF keys);
  // The same for 16-bit keys (f16, bf16), read as they are: the summary equals, bit for bit, the one
  // add() builds from the same values widened to float (every product of two widened values is
  // exact in double, as for float keys; blocks are widened one at a time into a small scratch, and
  // partial blocks are held widened). Summaries of 16-bit and float keys merge freely.
  void add(MatrixView<const Half> keys);
  void add(MatrixView<const BFloat16> keys);
  // G += Σ_j a_j a_jᵀ with a_j = row_scale[j]·k_j rounded to float (a relative change of at most
  // 2⁻²⁴ per entry), for weighted Gram matrices KᵀWK (row_scale = √w). row_scale has keys.rows
  // finite entries ≥ 0 (else Error{bad_input}); a row that overflows float once scaled is
  // Error{failure}. count grows by keys.rows.
  void add(ConstMatrixF keys, const double* row_scale);
  // The same for 16-bit keys: each row widened (exactly) to float, then scaled as above — the bits
  // of add(widened keys, row_scale).
  void add(MatrixView<const Half> keys, const double* row_scale);
  void add(MatrixView<const BFloat16> keys, const double* row_scale);

  // The summary of both key sets. When other.first_row() == end_row() (other continues this run)
  // the result is bit-identical to one summary of the concatenated rows; otherwise it is the
  // Gram matrix of the union to double rounding, and this summary loses that guarantee for
  // good (exact() turns false). Throws Error{bad_input} on a dimension mismatch.
  void merge(const GramSummary& other);

  index_t dim() const { return d_; }
  // Number of key rows summarised.
  index_t count() const { return count_; }
  // Position of the first row, and one past the last one.
  index_t first_row() const { return first_row_; }
  index_t end_row() const { return first_row_ + count_; }
  // False once a merge() joined runs that were not consecutive (see merge()).
  bool exact() const { return loose_.empty(); }
  // G = KᵀK, d×d, row-major, symmetric (both triangles filled).
  std::vector<double> gram() const;

  // The summary as bytes and back (for MPI); from_bytes throws Error{bad_input} on anything
  // to_bytes did not produce.
  std::vector<std::uint8_t> to_bytes() const;
  static GramSummary from_bytes(const std::uint8_t* bytes, std::size_t size);

 private:
  // A piece is the pairwise sum over blocks [first, first + 2^level) (first a multiple of
  // 2^level); a fragment holds the raw rows of a block this summary holds only part of.
  struct Item {
    bool fragment = false;
    index_t first = 0;        // block number (piece) or global row of the first row (fragment)
    index_t level = 0;        // piece: log₂ of the block count
    index_t rows = 0;         // fragment: rows held
    std::vector<double> sum;  // piece: dpad×dpad, upper triangle meaningful
    std::vector<float> data;  // fragment: rows×d
  };

  template <class T>
  void add_rows(MatrixView<const T> keys);
  template <class T>
  void add_scaled_rows(MatrixView<const T> keys, const double* row_scale);
  static void push_piece_into(std::vector<Item>& items, Item piece, index_t d);
  void push(Item item);
  void push_piece(Item piece);
  void add_item_sum(const Item& item, std::vector<double>& acc) const;

  index_t d_;
  index_t first_row_;
  index_t count_ = 0;
  std::vector<Item> items_;    // left to right: maximal pieces, fragments only at the ends
  std::vector<double> loose_;  // sum of runs merged out of order (empty while exact)
};

}  // namespace levattn
