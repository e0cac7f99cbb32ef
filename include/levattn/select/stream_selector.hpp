// StreamSelector — the universal set U = {j : τ_j ≥ ε} in one pass over keys that arrive in
// blocks, with memory that does not grow with n, mergeable across parts of a stream.
//
// State: the GramSummary of every key pushed (O(d²·log n), see gram.hpp), the candidates (keys
// not yet evicted, with their values and global indices) and a buffer of at most pending_rows
// keys not yet scored. Every pending_rows keys the selector refits a LeverageBound on the current
// summary (O(d³)), scores the buffered keys (O(d²) each) and keeps those with bound score
// s ≥ ε/4; whenever the candidates have doubled since they were last re-scored it re-scores them
// all under the current summary and evicts those with s < ε/4 for good. Cost: O(d²) amortised per
// key (a refit per pending_rows ≥ d keys; a re-scoring costs ≤ 2 d² per key inserted since the
// last one). Size: Σ_j s_j ≤ rank ≤ d, so after a re-scoring at most 4d/ε candidates remain and
// between re-scorings at most 8d/ε + pending_rows: O(d² log n + (d + d_v)·d/ε) in all.
//
// Exactness. result() equals the offline set — select_by_threshold over LeverageScorer
// (rcond, no ridge) fitted on all keys, as `levattn select --eps` computes it — bit for bit,
// indices and scores, ties at τ_j == ε included, as long as the summary stays exact(): parts
// merged must be consecutive (each built with first_row = where the previous one ends). Evicting
// at s < ε/4 leaves a factor 2 beyond LeverageBound's for rounding. Proof: docs/proofs.md §3.
//
// Heavy entries at any time: stream_heavy() (attention/stream_heavy.hpp) runs the library's
// HeavySearch over held_keys() under the summary of every key pushed; its
// guarantee and the queries it lists as uncertain: docs/proofs.md §3.
//
// Fixed-budget mode (budget > 0): keeps the `budget` keys with the highest current bound scores
// (ties to the lower index) and result() returns the top `budget` by final τ among them. This
// carries NO guarantee: a key dropped early may end in the offline top-k, since the scores of
// the keys that outranked it fall later too.
#pragma once

#include <cstdint>
#include <vector>

#include "levattn/core/half.hpp"
#include "levattn/core/matrix_view.hpp"
#include "levattn/linalg/gram.hpp"
#include "levattn/linalg/gram_factors.hpp"
#include "levattn/scores/leverage_bound.hpp"
#include "levattn/select/universal_set.hpp"

namespace levattn {

struct StreamOptions {
  double eps = 0.0;              // threshold mode: ε in (0, 1]
  index_t budget = 0;            // > 0: fixed-budget mode (eps is then ignored)
  double rcond = kDefaultRcond;  // cut-off of the final scorer, see gram_factors.hpp
  index_t first_row = 0;         // global index of the first key this selector receives
  index_t value_dim = 0;         // columns of the values carried with the keys (0: none)
  index_t pending_rows = 0;      // keys buffered between refits; 0: max(4096, 16·d)
};

// The kept keys, in ascending global index.
struct StreamResult {
  UniversalSet set;           // global indices, final τ, bound rank/ε (or budget)
  index_t rank = 0;           // numerical rank of the final summary
  index_t count = 0;          // keys pushed
  std::vector<float> keys;    // set.size() × d
  std::vector<float> values;  // set.size() × value_dim
};

class StreamSelector {
 public:
  // Throws Error{bad_input} for d < 1, ε outside (0, 1] (threshold mode), budget < 0, rcond
  // outside (0, 1), first_row < 0, value_dim < 0 or pending_rows < 0.
  StreamSelector(index_t d, StreamOptions options);

  // Appends keys (rows × d, finite) and, when value_dim > 0, their values (rows × value_dim; an
  // empty view otherwise). They get global indices next_index(), next_index() + 1, …. Throws
  // Error{bad_input} on a shape mismatch or a NaN/Inf key or value, naming the row by its global index;
  // the selector is then unchanged.
  void push(ConstMatrixF keys, ConstMatrixF values = {});
  // The same for 16-bit keys and values (f16 or bf16, one type for both), read as they are: the
  // block is checked whole (the selector is unchanged on error), then widened exactly at most
  // pending_rows rows at a time — the selector holds its rows as float — so the workspace stays
  // O((d + value_dim)·pending_rows) whatever the block. When the block has at most pending_rows
  // rows, the whole state is that of pushing the keys and values widened to float, bit for bit. A
  // longer block is pushed as its pieces, which may evict at other times: in threshold mode
  // result() is still that of the widened push, bit for bit (it depends on the summary alone); in
  // budget mode it is that of pushing the widened pieces one after another.
  void push(MatrixView<const Half> keys, MatrixView<const Half> values = {});
  void push(MatrixView<const BFloat16> keys, MatrixView<const BFloat16> values = {});

  // Takes in the keys of another selector with the same d, mode, ε/budget, rcond and value_dim.
  // Exact (see above) when other.first_row() == next_index(); otherwise the union is still a
  // superset-safe selector but result() is only equal to the offline set up to rounding.
  void merge(const StreamSelector& other);

  // The set over every key pushed so far (does not change the state; pushing may go on).
  StreamResult result() const;

  // The keys held now (candidates and pending; every key that can still enter result()): their
  // global indices, ascending, and their rows (rows × d), copied.
  struct HeldKeys {
    index_t rows = 0;
    std::vector<index_t> index;
    std::vector<float> keys;
  };
  HeldKeys held_keys() const;

  index_t dim() const { return d_; }
  index_t first_row() const { return summary_.first_row(); }
  index_t next_index() const { return summary_.end_row(); }
  index_t count() const { return summary_.count(); }
  // Keys held now (candidates and pending).
  index_t retained() const { return cand_.rows + pending_.rows; }
  // The largest number of keys held at once so far.
  index_t peak_retained() const { return peak_retained_; }
  const GramSummary& summary() const { return summary_; }
  const StreamOptions& options() const { return options_; }

 private:
  struct Rows {  // keys with their values and global indices
    index_t rows = 0;
    std::vector<float> keys, values;
    std::vector<index_t> index;
    void append(const float* k, const float* v, index_t j, index_t d, index_t dv);
  };

  void check_shapes(index_t rows, index_t cols, index_t value_rows, index_t value_cols) const;
  template <class T>
  void push_widened(MatrixView<const T> keys, MatrixView<const T> values);
  void score_and_keep(ConstMatrixF keys, const float* values, index_t value_stride, const index_t* index,
                      index_t first_index);
  void flush();
  void rescore();
  void note_peak();

  index_t d_;
  StreamOptions options_;
  GramSummary summary_;
  LeverageBound bound_;
  Rows cand_, pending_;
  index_t rescored_size_ = 0;  // candidates right after the last re-scoring
  index_t peak_retained_ = 0;
};

}  // namespace levattn
