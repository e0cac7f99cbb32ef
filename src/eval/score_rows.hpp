// Rows of log attention weights log f(c·<q_i,k_j>) from exact double products: the shared first
// step of the exact reference and the oracle (eval/).
#pragma once

#include <vector>

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

// Checks queries, keys (and values when non-null) for shape and finite entries, and the score
// function (p > 0, finite), refusing a causal mask unless causal_allowed; `what` names the caller
// in messages.
void check_eval_inputs(ConstMatrixF queries, ConstMatrixF keys, const ConstMatrixF* values,
                       const AttentionOptions& options, const char* what, bool causal_allowed = false);

}  // namespace levattn::detail
