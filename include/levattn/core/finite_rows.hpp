// The one check that input rows are finite, for every layer and front end: the first row of a
// view holding a NaN or an infinity, and the error that names it ("keys: row 7 holds a NaN or an
// infinity").
#pragma once

#include <algorithm>
#include <cmath>
#include <string>

#include "levattn/core/half.hpp"
#include "levattn/core/matrix_view.hpp"

namespace levattn {

// The first row in [begin, end) of X (0 ≤ begin ≤ end ≤ X.rows) holding a NaN or an infinity, or
// end when every one is finite. Elements: float, Half or BFloat16.
template <class T>
index_t first_nonfinite_row(MatrixView<const T> X, index_t begin, index_t end) {
  for (index_t r = begin; r < end; ++r)
    if (!std::all_of(X.row(r), X.row(r) + X.cols, [](T v) { return std::isfinite(to_float(v)); })) return r;
  return end;
}
inline index_t first_nonfinite_row(ConstMatrixF X, index_t begin, index_t end) {
  return first_nonfinite_row<float>(X, begin, end);
}

// The first row of X holding a NaN or an infinity, or X.rows.
template <class T>
index_t first_nonfinite_row(MatrixView<const T> X) {
  return first_nonfinite_row<T>(X, 0, X.rows);
}
inline index_t first_nonfinite_row(ConstMatrixF X) { return first_nonfinite_row<float>(X, 0, X.rows); }

// "<what>: row <row> holds a NaN or an infinity", for callers that found the row themselves.
inline std::string nonfinite_row_message(const std::string& what, index_t row) {
  return what + ": row " + std::to_string(row) + " holds a NaN or an infinity";
}

// Throws Error{bad_input} with nonfinite_row_message(what, first_row + r) for the first row r of X
// that holds a NaN or an infinity; first_row numbers a block's rows as in the matrix it was cut from.
inline void require_finite_rows(ConstMatrixF X, const std::string& what, index_t first_row = 0) {
  if (const index_t r = first_nonfinite_row(X); r < X.rows)
    throw Error(ErrorKind::bad_input, nonfinite_row_message(what, first_row + r));
}
// The same for views of Half or BFloat16.
template <class T>
void require_finite_rows(MatrixView<const T> X, const std::string& what, index_t first_row = 0) {
  if (const index_t r = first_nonfinite_row(X); r < X.rows)
    throw Error(ErrorKind::bad_input, nonfinite_row_message(what, first_row + r));
}

}  // namespace levattn
