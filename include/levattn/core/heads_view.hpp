// Non-owning view of a dense (batch, heads, rows, cols) tensor (float, Half or BFloat16), row-major: the layout of
// numpy/torch attention inputs (B, H, n, d). Each (b, h) slice is a MatrixView.
#pragma once

#include <type_traits>

#include "levattn/core/half.hpp"
#include "levattn/core/matrix_view.hpp"

namespace levattn {

template <class T>
struct HeadsView {
  T* data = nullptr;
  index_t batch = 0, heads = 0, rows = 0, cols = 0;

  HeadsView() = default;
  HeadsView(T* data_, index_t batch_, index_t heads_, index_t rows_, index_t cols_)
      : data(data_), batch(batch_), heads(heads_), rows(rows_), cols(cols_) {
    require(batch >= 0 && heads >= 0 && rows >= 0 && cols >= 0, "heads view: negative shape");
    require(data != nullptr || batch * heads * rows * cols == 0, "heads view: null data");
  }
  // A single head (rows, cols) seen as (1, 1, rows, cols).
  explicit HeadsView(MatrixView<T> m) : HeadsView(m.data, 1, 1, m.rows, m.cols) {
    require(m.stride == m.cols || m.rows <= 1, "heads view: the matrix must be dense");
  }
  // Views over non-const data convert to views over const data (implicitly, as pointers do).
  // NOLINTBEGIN(google-explicit-constructor)
  template <class U>
  requires std::is_same_v<const U, T> HeadsView(const HeadsView<U>& o)
      : data(o.data), batch(o.batch), heads(o.heads), rows(o.rows), cols(o.cols) {}
  // NOLINTEND(google-explicit-constructor)

  MatrixView<T> head(index_t b, index_t h) const {
    return MatrixView<T>(data + ((b * heads + h) * rows) * cols, rows, cols, cols);
  }
  index_t count() const { return batch * heads; }
};

using HeadsF = HeadsView<float>;
using ConstHeadsF = HeadsView<const float>;
using ConstHeadsF16 = HeadsView<const Half>;
using ConstHeadsBF16 = HeadsView<const BFloat16>;

}  // namespace levattn
