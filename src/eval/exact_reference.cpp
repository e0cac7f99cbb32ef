// The double-precision exact attention of one head (exact_reference.hpp).
#include "levattn/eval/exact_reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "eval/score_rows.hpp"
#include "levattn/select/universal_set.hpp"
#include "linalg/blas.hpp"

namespace levattn {

ExactReference exact_reference(ConstMatrixF queries, ConstMatrixF keys, ConstMatrixF values,
                               const AttentionOptions& options, double min_eps) {
  detail::check_eval_inputs(queries, keys, &values, options, "exact reference");
  check_eps(min_eps);
  const index_t m = queries.rows, n = keys.rows, dv = values.cols;
  const detail::LogWeights weights(keys, options.f, effective_scale(options, keys.cols));
  std::vector<double> v(static_cast<size_t>(n * dv));
  for (index_t j = 0; j < n; ++j)
    for (index_t c = 0; c < dv; ++c) v[j * dv + c] = values(j, c);

  ExactReference ref;
  ref.m = m, ref.d_v = dv;
  ref.out.assign(static_cast<size_t>(m * dv), 0.0);
  ref.log_normaliser.assign(static_cast<size_t>(m), -std::numeric_limits<double>::infinity());
  const index_t blocks = (m + detail::kEvalBlock - 1) / detail::kEvalBlock;
  std::vector<std::vector<WeightedEntry>> heavy(static_cast<size_t>(blocks));
  const bool parallel = m * n * (keys.cols + dv) >= detail::kParallelWork;
  detail::for_each_weight_block(weights, queries, parallel, [&](index_t b, index_t begin, index_t rows, double* w) {
    std::vector<double> sums(static_cast<size_t>(rows), 0.0);
    for (index_t i = 0; i < rows; ++i) {
      double* row = w + i * n;
      const double top = *std::max_element(row, row + n);
      if (top == -std::numeric_limits<double>::infinity()) {  // |x|^p row with every product 0
        std::fill(row, row + n, 0.0);
        continue;
      }
      double sum = 0.0;
      for (index_t j = 0; j < n; ++j) sum += (row[j] = std::exp(row[j] - top));
      sums[i] = sum;
      ref.log_normaliser[begin + i] = top + std::log(sum);
      for (index_t j = 0; j < n; ++j)
        if (row[j] / sum >= min_eps) heavy[b].push_back({begin + i, j, row[j] / sum});
    }
    double* o = ref.out.data() + begin * dv;
    linalg::dgemm(false, false, 1.0, ConstMatrixD(w, rows, n), ConstMatrixD(v.data(), n, dv), 0.0,
                  MatrixD(o, rows, dv));
    for (index_t i = 0; i < rows; ++i)
      for (index_t c = 0; c < dv; ++c) o[i * dv + c] = sums[i] > 0.0 ? o[i * dv + c] / sums[i] : 0.0;
  });
  for (const auto& h : heavy) ref.heavy.insert(ref.heavy.end(), h.begin(), h.end());
  return ref;
}

}  // namespace levattn
