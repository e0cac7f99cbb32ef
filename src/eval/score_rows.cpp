#include "eval/score_rows.hpp"

#include <cmath>
#include <limits>

#include "levattn/core/finite_rows.hpp"
#include "linalg/blas.hpp"

namespace levattn::detail {

namespace {

void check_finite(ConstMatrixF m, const char* what, const char* role) {
  if (const index_t i = first_nonfinite_row(m); i < m.rows)
    throw Error(ErrorKind::bad_input,
                std::string(what) + ": " + role + " row " + std::to_string(i) + " holds a NaN or an infinity");
}

}  // namespace

void check_eval_inputs(ConstMatrixF queries, ConstMatrixF keys, const ConstMatrixF* values,
                       const AttentionOptions& options, const char* what, bool causal_allowed) {
  const std::string w(what);
  require(keys.rows >= 1 && keys.cols >= 1, w + ": need at least one key of dimension ≥ 1");
  require(queries.cols == keys.cols, w + ": queries " + shape_string(queries.rows, queries.cols) + " and keys " +
                                         shape_string(keys.rows, keys.cols) + " differ in d");
  if (values)
    require(values->rows == keys.rows && values->cols >= 1,
            w + ": values " + shape_string(values->rows, values->cols) + " need one row per key");
  require(causal_allowed || !options.causal, w + ": the evaluation compares whole-sequence key sets; no causal mask");
  require(options.f.kind == ScoreKind::softmax || (std::isfinite(options.f.p) && options.f.p > 0.0),
          w + ": pow:P needs P > 0");
  require(std::isfinite(options.scale) && options.scale >= 0.0, w + ": scale must be > 0");
  check_finite(queries, what, "query");
  check_finite(keys, what, "key");
  if (values) check_finite(*values, what, "value");
}

LogWeights::LogWeights(ConstMatrixF keys, const ScoreFunction& f, double c)
    : n_(keys.rows), d_(keys.cols), keys_(static_cast<size_t>(keys.rows * keys.cols)), f_(f), c_(c) {
  for (index_t j = 0; j < n_; ++j)
    for (index_t k = 0; k < d_; ++k) keys_[j * d_ + k] = keys(j, k);
}

void LogWeights::rows(ConstMatrixF queries, index_t begin, index_t rows, double* out) const {
  std::vector<double> q(static_cast<size_t>(rows * d_));
  for (index_t i = 0; i < rows; ++i)
    for (index_t k = 0; k < d_; ++k) q[i * d_ + k] = queries(begin + i, k);
  linalg::dgemm(false, true, 1.0, ConstMatrixD(q.data(), rows, d_), ConstMatrixD(keys_.data(), n_, d_), 0.0,
                MatrixD(out, rows, n_));
  const index_t count = rows * n_;
  if (f_.kind == ScoreKind::softmax) {
    for (index_t e = 0; e < count; ++e) out[e] *= c_;
  } else {
    for (index_t e = 0; e < count; ++e)
      out[e] = out[e] == 0.0 ? -std::numeric_limits<double>::infinity() : f_.p * std::log(std::fabs(c_ * out[e]));
  }
}

}  // namespace levattn::detail
