// Widening of 16-bit rows to float32, a block at a time, for kernels that read float (f16 through
// the kernel set's widen_half: F16C where AVX-512 runs): the float values equal the 16-bit ones
// exactly (half.hpp), so whatever a kernel computes from the widened block it computes from the
// 16-bit keys themselves.
#pragma once

#include <type_traits>

#include "levattn/core/half.hpp"
#include "levattn/core/matrix_view.hpp"
#include "linalg/kernels.hpp"

namespace levattn {

// out (rows × X.cols, dense, row stride X.cols) = rows [begin, begin + rows) of X widened to float.
template <class T>
void widen_rows(MatrixView<const T> X, index_t begin, index_t rows, float* out) {
  const index_t d = X.cols;
  for (index_t r = 0; r < rows; ++r) {
    const T* x = X.row(begin + r);
    float* o = out + r * d;
    if constexpr (std::is_same_v<T, Half>) {
      kernels::active_kernels().widen_half(x, d, o);
    } else {
      for (index_t c = 0; c < d; ++c) o[c] = to_float(x[c]);  // bf16: a shift
    }
  }
}

}  // namespace levattn
