#include "attention/prefix_normalisers.hpp"

#include <Eigen/Dense>
#include <algorithm>

namespace levattn::detail {

namespace {
constexpr index_t kStep = 256;  // queries per Gram snapshot
using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0, Eigen::OuterStride<>>
rows_of(ConstMatrixF m, index_t begin, index_t end) {
  return {m.row(begin), end - begin, m.cols, Eigen::OuterStride<>(m.stride)};
}
}  // namespace

void prefix_normalisers(ConstMatrixF queries, ConstMatrixF keys, index_t offset, double* out) {
  const index_t d = queries.cols;
  Eigen::MatrixXd G = Eigen::MatrixXd::Zero(d, d);  // Gram of keys [0, summed)
  index_t summed = 0;
  for (index_t first = 0; first < queries.rows; first += kStep) {
    const index_t last = std::min(queries.rows, first + kStep);  // queries [first, last)
    const index_t upto = std::clamp<index_t>(first + offset + 1, 0, keys.rows);
    if (upto > summed) {
      const RowMatrix kb = rows_of(keys, summed, upto).cast<double>();
      G.noalias() += kb.transpose() * kb;
      summed = upto;
    }
    const RowMatrix qb = rows_of(queries, first, last).cast<double>();
    const Eigen::VectorXd base = ((qb * G).array() * qb.array()).rowwise().sum();
    for (index_t i = first; i < last; ++i) {
      double n = base(i - first);
      const index_t end = std::min(keys.rows, i + offset + 1);  // keys [summed, end) on top
      for (index_t j = summed; j < end; ++j) {
        double p = 0.0;
        for (index_t c = 0; c < d; ++c) p += static_cast<double>(queries(i, c)) * keys(j, c);
        n += p * p;
      }
      out[i] = n;
    }
  }
}

}  // namespace levattn::detail
