// Rows of log attention weights log f(c·<q_i,k_j>) from exact double products: the shared first
// step of the exact reference and the oracle (eval/).
#pragma once

#include <algorithm>
#include <vector>

#include "core/first_error.hpp"
#include "levattn/attention/exact.hpp"
#include "levattn/core/matrix_view.hpp"

namespace levattn::detail {

class LogWeights {
 public:
  // Copies keys (n×d, finite) to double once. c is the effective scale.
  LogWeights(ConstMatrixF keys, const ScoreFunction& f, double c);
  // out (rows × n) = log f(c·<q_i,k_j>) for queries [begin, begin + rows): c·s (softmax) or
  // p·log|c·s| (−∞ when s = 0). Returns nothing else; safe to call from parallel threads.
  void rows(ConstMatrixF queries, index_t begin, index_t rows, double* out) const;
  index_t keys() const { return n_; }

 private:
  index_t n_, d_;
  std::vector<double> keys_;
  ScoreFunction f_;
  double c_;
};

// Query rows handled together by the eval passes (a block's n doubles a row stay in cache-sized
// chunks; blocks are independent, so results do not depend on the thread count).
constexpr index_t kEvalBlock = 32;
// Multiply-adds below which a pass runs on one thread (a parallel region costs more than it saves).
constexpr index_t kParallelWork = index_t{1} << 22;

// Calls block(b, begin, rows, w) for every block b of kEvalBlock query rows [begin, begin + rows),
// with w (rows × n, writable) that block's rows of weights.rows(); on the threads of one parallel
// region when `parallel`, each block on one thread (so results do not depend on the thread count).
// The first error of any block (block's own, a GEMM's, scratch that does not fit) is rethrown
// after the region; the remaining blocks are skipped.
template <class Block>
void for_each_weight_block(const LogWeights& weights, ConstMatrixF queries, bool parallel, Block block) {
  const index_t m = queries.rows, n = weights.keys();
  const index_t blocks = (m + kEvalBlock - 1) / kEvalBlock;
  FirstError error;
#pragma omp parallel if (parallel)
  {
    std::vector<double> w;  // reused from block to block on this thread
#pragma omp for schedule(dynamic)
    for (index_t b = 0; b < blocks; ++b) {
      if (error.failed()) continue;
      try {
        const index_t begin = b * kEvalBlock, rows = std::min(kEvalBlock, m - begin);
        w.resize(static_cast<size_t>(kEvalBlock * n));
        weights.rows(queries, begin, rows, w.data());
        block(b, begin, rows, w.data());
      } catch (...) {
        error.capture();
      }
    }
  }
  error.rethrow_if_any();
}

// Checks queries, keys (and values when non-null) for shape and finite entries, and the score
// function (p > 0, finite), refusing a causal mask unless causal_allowed; `what` names the caller
// in messages.
void check_eval_inputs(ConstMatrixF queries, ConstMatrixF keys, const ConstMatrixF* values,
                       const AttentionOptions& options, const char* what, bool causal_allowed = false);

}  // namespace levattn::detail
