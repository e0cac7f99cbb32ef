// Non-owning, row-major matrix views over caller-owned buffers (numpy, torch, ggml all fit).
//
// A view is (data, rows, cols, stride): element (i, j) lives at data[i * stride + j], and
// stride >= cols. Views never allocate and never free; the caller keeps the buffer alive.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "levattn/core/error.hpp"

namespace levattn {

using index_t = std::int64_t;

template <class T>
struct MatrixView {
  T* data = nullptr;
  index_t rows = 0;
  index_t cols = 0;
  index_t stride = 0;  // elements between the starts of consecutive rows

  MatrixView() = default;
  MatrixView(T* data_, index_t rows_, index_t cols_, index_t stride_)
      : data(data_), rows(rows_), cols(cols_), stride(stride_) {
    require(rows >= 0 && cols >= 0, "matrix view: negative shape");
    require(stride >= cols, "matrix view: stride smaller than the number of columns");
    require(data != nullptr || rows == 0 || cols == 0, "matrix view: null data");
  }
  // A dense view: stride == cols.
  MatrixView(T* data_, index_t rows_, index_t cols_) : MatrixView(data_, rows_, cols_, cols_) {}

  // Views over non-const data convert to views over const data (implicitly, as pointers do).
  // NOLINTBEGIN(google-explicit-constructor)
  template <class U>
  requires std::is_same_v<const U, T> MatrixView(const MatrixView<U>& other)
      : data(other.data), rows(other.rows), cols(other.cols), stride(other.stride) {}
  // NOLINTEND(google-explicit-constructor)

  T* row(index_t i) const { return data + i * stride; }
  T& operator()(index_t i, index_t j) const { return data[i * stride + j]; }
  // Rows [begin, end) as a view with the same stride.
  MatrixView rows_range(index_t begin, index_t end) const {
    return MatrixView(data + begin * stride, end - begin, cols, stride);
  }
  bool empty() const { return rows == 0 || cols == 0; }
};

using MatrixF = MatrixView<float>;
using ConstMatrixF = MatrixView<const float>;
using MatrixD = MatrixView<double>;
using ConstMatrixD = MatrixView<const double>;

// "(rows, cols)" for messages.
inline std::string shape_string(index_t rows, index_t cols) {
  return "(" + std::to_string(rows) + ", " + std::to_string(cols) + ")";
}

}  // namespace levattn
