// Query-dependent selection rules: accumulated attention (H2O) and the per-query oracle.
#include "levattn/eval/query_rules.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/first_error.hpp"
#include "eval/score_rows.hpp"
#include "linalg/blas.hpp"

namespace levattn {

namespace {

constexpr index_t kKeyBlock = 256;    // keys per column-sum work unit
constexpr index_t kQueryTile = 1024;  // queries per float product tile

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

std::vector<double> accumulated_attention(const std::vector<ConstMatrixF>& queries, ConstMatrixF keys,
                                          const AttentionOptions& options) {
  for (const ConstMatrixF& q : queries)
    detail::check_eval_inputs(q, keys, nullptr, options, "accumulated attention", /*causal_allowed=*/true);
  const index_t n = keys.rows, d = keys.cols;
  const double c = effective_scale(options, d);
  const bool softmax = options.f.kind == ScoreKind::softmax;
  std::vector<float> dense_keys(static_cast<size_t>(n * d)), zero_values(static_cast<size_t>(n), 0.0f);
  for (index_t j = 0; j < n; ++j) std::copy(keys.row(j), keys.row(j) + d, dense_keys.data() + j * d);

  std::vector<double> mass(static_cast<size_t>(n), 0.0);
  const index_t blocks = (n + kKeyBlock - 1) / kKeyBlock;
  for (const ConstMatrixF& q : queries) {
    const index_t m = q.rows;
    if (m == 0) continue;
    // Row normalisers L_i from the exact operator (values of width 1, unused).
    std::vector<double> lse(static_cast<size_t>(m));
    std::vector<float> unused(static_cast<size_t>(m));
    attend_exact(q, ConstMatrixF(dense_keys.data(), n, d), ConstMatrixF(zero_values.data(), n, 1), options,
                 MatrixF(unused.data(), m, 1), lse.data());
    std::vector<float> dense_q(static_cast<size_t>(m * d));
    for (index_t i = 0; i < m; ++i) std::copy(q.row(i), q.row(i) + d, dense_q.data() + i * d);
    FirstError error;  // a GEMM's dimension check, or scratch that does not fit
#pragma omp parallel if (m * n * d >= detail::kParallelWork)
    {
      std::vector<float> s(static_cast<size_t>(std::min(m, kQueryTile) * kKeyBlock));
#pragma omp for schedule(dynamic)
      for (index_t b = 0; b < blocks; ++b) {
        if (error.failed()) continue;
        try {
          const index_t j0 = b * kKeyBlock, cols = std::min(kKeyBlock, n - j0);
          for (index_t i0 = 0; i0 < m; i0 += kQueryTile) {
            const index_t rows = std::min(kQueryTile, m - i0);
            linalg::sgemm(false, true, 1.0f, ConstMatrixF(dense_q.data() + i0 * d, rows, d),
                          ConstMatrixF(dense_keys.data() + j0 * d, cols, d), 0.0f, MatrixF(s.data(), rows, cols));
            for (index_t i = 0; i < rows; ++i) {
              const double L = lse[i0 + i];
              if (L == -std::numeric_limits<double>::infinity()) continue;
              const float* row = s.data() + i * cols;
              // Causal (bottom-right): query i0 + i sees keys up to i0 + i + n − m.
              const index_t visible =
                  options.causal ? std::min(cols, std::max<index_t>(0, i0 + i + n - m + 1 - j0)) : cols;
              for (index_t j = 0; j < visible; ++j) {
                const double x = c * row[j];
                const double lw = softmax ? x
                                          : (x == 0.0 ? -std::numeric_limits<double>::infinity()
                                                      : options.f.p * std::log(std::fabs(x)));
                mass[j0 + j] += std::exp(lw - L);
              }
            }
          }
        } catch (...) {
          error.capture();
        }
      }
    }
    error.rethrow_if_any();
  }
  return mass;
}

OracleResult oracle_attention(ConstMatrixF queries, ConstMatrixF keys, ConstMatrixF values,
                              const AttentionOptions& options, index_t k) {
  detail::check_eval_inputs(queries, keys, &values, options, "oracle");
  const index_t m = queries.rows, n = keys.rows, dv = values.cols;
  require(k >= 1 && k <= n,
          "oracle: budget k must lie in [1, n] = [1, " + std::to_string(n) + "], got " + std::to_string(k));
  OracleResult r;
  r.k = k;
  r.kept.resize(static_cast<size_t>(m * k));
  r.out.assign(static_cast<size_t>(m * dv), 0.0);
  const bool softmax = options.f.kind == ScoreKind::softmax;
  std::vector<double> norm_log(static_cast<size_t>(m));    // log of each row's normaliser
  std::vector<double> kept_w(static_cast<size_t>(m * k));  // f-weights / e^{top} of the kept keys

  auto start = std::chrono::steady_clock::now();
  const detail::LogWeights weights(keys, options.f, effective_scale(options, keys.cols));
  const bool parallel = m * n * keys.cols >= detail::kParallelWork;
  detail::for_each_weight_block(weights, queries, parallel, [&](index_t, index_t begin, index_t rows, double* w) {
    std::vector<index_t> order(static_cast<size_t>(n));
    for (index_t i = 0; i < rows; ++i) {
      const double* row = w + i * n;
      std::iota(order.begin(), order.end(), index_t{0});
      std::nth_element(order.begin(), order.begin() + (k - 1), order.end(),
                       [row](index_t a, index_t c) { return row[a] > row[c] || (row[a] == row[c] && a < c); });
      std::sort(order.begin(), order.begin() + k);
      const index_t q = begin + i;
      std::copy(order.begin(), order.begin() + k, r.kept.begin() + q * k);
      const double top = *std::max_element(row, row + n);
      if (top == -std::numeric_limits<double>::infinity()) {
        norm_log[q] = top;
        continue;
      }
      double full = 0.0, kept = 0.0;
      for (index_t j = 0; j < n; ++j) full += std::exp(row[j] - top);
      for (index_t t = 0; t < k; ++t) kept += (kept_w[q * k + t] = std::exp(row[order[t]] - top));
      norm_log[q] = std::log(softmax ? kept : full);
    }
  });
  r.select_seconds = seconds_since(start);

  start = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(static) if (m * k * dv >= detail::kParallelWork)
  for (index_t q = 0; q < m; ++q) {
    if (norm_log[q] == -std::numeric_limits<double>::infinity()) continue;
    const double inv = std::exp(-norm_log[q]);
    double* o = r.out.data() + q * dv;
    for (index_t t = 0; t < k; ++t) {
      const index_t j = r.kept[q * k + t];
      const double w = kept_w[q * k + t] * inv;
      for (index_t c = 0; c < dv; ++c) o[c] += w * values(j, c);
    }
  }
  r.attend_seconds = seconds_since(start);
  return r;
}

}  // namespace levattn
