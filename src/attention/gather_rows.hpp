// Rows of a matrix copied densely: the kept keys and values LevAttention attends over.
#pragma once

#include <algorithm>
#include <vector>

#include "levattn/core/matrix_view.hpp"

namespace levattn::detail {

// Rows idx of m (each in [0, m.rows)), one after another: idx.size() × m.cols elements (float,
// Half or BFloat16, as stored).
template <class T>
std::vector<T> gather_rows(MatrixView<const T> m, const std::vector<index_t>& idx) {
  std::vector<T> g(idx.size() * static_cast<size_t>(m.cols));
  for (size_t r = 0; r < idx.size(); ++r) std::copy(m.row(idx[r]), m.row(idx[r]) + m.cols, g.data() + r * m.cols);
  return g;
}

}  // namespace levattn::detail
