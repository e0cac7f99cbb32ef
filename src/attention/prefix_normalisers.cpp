#include "attention/prefix_normalisers.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <vector>

#include "levattn/core/error.hpp"
#include "levattn/linalg/gram.hpp"

namespace levattn::detail {

namespace {
constexpr index_t kStep = 256;  // queries per Gram snapshot
using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows [begin, end) of m in double (16-bit elements widened exactly).
template <class T>
RowMatrix rows_of(MatrixView<const T> m, index_t begin, index_t end) {
  RowMatrix out(end - begin, m.cols);
  for (index_t r = begin; r < end; ++r)
    for (index_t c = 0; c < m.cols; ++c) out(r - begin, c) = static_cast<double>(to_float(m(r, c)));
  return out;
}
}  // namespace

template <class Q, class K>
void prefix_normalisers(HeadsView<const Q> queries, MatrixView<const K> keys, index_t offset, double* out) {
  require(queries.batch == 1, "prefix_normalisers: one batch of query heads at a time");
  const index_t d = queries.cols, n_q = queries.rows;
  GramSummary summary(d);                     // keys [0, summary.count()), read as stored
  std::vector<double> gram = summary.gram();  // its Gram matrix, d×d
  for (index_t first = 0; first < n_q; first += kStep) {
    const index_t last = std::min(n_q, first + kStep);  // queries [first, last) of every head
    const index_t upto = std::clamp<index_t>(first + offset + 1, 0, keys.rows);
    if (upto > summary.count()) {
      summary.add(keys.rows_range(summary.count(), upto));
      gram = summary.gram();
    }
    const Eigen::Map<const RowMatrix> G(gram.data(), d, d);
    for (index_t g = 0; g < queries.heads; ++g) {
      const RowMatrix qb = rows_of(queries.head(0, g), first, last);
      const Eigen::VectorXd base = ((qb * G).array() * qb.array()).rowwise().sum();
      for (index_t i = first; i < last; ++i) {
        double n = base(i - first);
        const index_t end = std::min(keys.rows, i + offset + 1);  // keys [count, end) on top
        for (index_t j = summary.count(); j < end; ++j) {
          double p = 0.0;
          for (index_t c = 0; c < d; ++c) p += qb(i - first, c) * static_cast<double>(to_float(keys(j, c)));
          n += p * p;
        }
        out[g * n_q + i] = n;
      }
    }
  }
}

template void prefix_normalisers(ConstHeadsF, ConstMatrixF, index_t, double*);
template void prefix_normalisers(ConstHeadsF, MatrixView<const Half>, index_t, double*);
template void prefix_normalisers(ConstHeadsF, MatrixView<const BFloat16>, index_t, double*);
template void prefix_normalisers(HeadsView<const Half>, MatrixView<const Half>, index_t, double*);
template void prefix_normalisers(HeadsView<const BFloat16>, MatrixView<const BFloat16>, index_t, double*);

}  // namespace levattn::detail
