// GramSummary — the mergeable summary G = KᵀK of a set of keys.
//
// Every float×float product is formed exactly in double and summed in double: each block of 256
// rows is summed on its own, and the block sums are added into 16 fixed partial sums, so an
// entry sees about n/4096 roundings instead of n (a test holds every entry to 1e-13·G_ii at
// n = 10⁷). The result depends only on the rows added and the order of add()/merge() calls,
// never on the thread count.
#pragma once

#include <vector>

#include "levattn/core/matrix_view.hpp"

namespace levattn {

class GramSummary {
 public:
  // An empty summary of d-dimensional keys (d ≥ 1).
  explicit GramSummary(index_t d);

  // G += keysᵀ keys. keys must have d columns. Throws Error{bad_input} naming the first row
  // that holds a NaN or an infinity (G is then unchanged). Parallel over rows (OpenMP).
  void add(ConstMatrixF keys);
  // G += Σ_j a_j a_jᵀ with a_j = row_scale[j]·k_j rounded to float (a relative change of at most
  // 2⁻²⁴ per entry), for weighted Gram matrices KᵀWK (row_scale = √w). row_scale has keys.rows
  // finite entries ≥ 0 (else Error{bad_input}); a row that overflows float once scaled is
  // Error{failure}. count grows by keys.rows.
  void add(ConstMatrixF keys, const double* row_scale);

  // G += other.G, count += other.count: the summary of the union of both key sets.
  void merge(const GramSummary& other);

  index_t dim() const { return d_; }
  // Number of key rows summarised.
  index_t count() const { return count_; }
  // G = KᵀK, d×d, row-major, symmetric (both triangles filled).
  std::vector<double> gram() const;

 private:
  index_t d_;
  index_t count_ = 0;
  std::vector<double> upper_;  // padded d×d, upper triangle holds G
};

}  // namespace levattn
