// A key/value cache for decoding: append (k, v) each step, attend with the step's query over the
// keys the cache retains. Policies, compared at equal budgets (bench/bench_kv_cache.cpp):
//
//  * leverage: the keys of largest ℓ2 leverage score under the Gram matrix G of every key
//    appended so far (budget mode), or every key whose current score is ≥ ε (threshold mode).
//    Scores are refreshed every `refresh` appends: a LeverageScorer is refit on the GramSummary
//    of every key appended and scores the retained keys — the same bits as a scorer fitted from
//    scratch on every key appended so far (gram.hpp: the summary's bits do not depend on how the
//    rows arrived) — at O(d³ + size·d²) each, plus O(d²) amortised per append for the summary.
//    Keys appended since the last refresh are kept until the next one (a short recency window
//    inside the budget). Because a key's score only falls as keys arrive, a key evicted in
//    threshold mode (score < ε at a refresh) can never re-enter the universal set: for |x|²
//    attention, every entry A ≥ ε of every later query lies in the cache, up to the rounding of
//    the scores (see leverage.hpp). Budget mode carries no such guarantee.
//  * window (StreamingLLM style): the first `sinks` keys and the latest budget − sinks.
//  * accumulated (H2O style): the latest budget/2 keys, and of the older ones the budget − budget/2
//    with the largest attention received so far (summed over the steps' softmax weights).
//  * key_norm: the budget keys of largest ‖k‖ (ties: the older is evicted first) — the baseline
//    that leverage, a scale-free score, must beat when relevant keys are also the long ones.
//
// attend(): softmax normalised over the retained keys; |x|² (pow:2) normalised by the exact full
// normaliser qᵀGq over every key appended, so the output is the exact truncation of true
// attention and missing_mass() is exact up to rounding. qᵀGq is the library's normaliser
// (LeverageScorer::normalisers) of the scorer last refit, plus Σ <q,k>² in double over the at
// most `refresh` keys appended since: O(d² + refresh·d) a query, and a refit (O(d³)) every
// `refresh` appends for every policy under pow:2. Other pow:P are refused. Memory
// O(d²·log n + budget·(d + d_v) + refresh·d) (threshold mode: d/ε keys in place of the budget
// after each refresh); softmax with a policy other than leverage keeps no Gram summary.
//
// Storage: keys and values are kept as float32, or (KVCacheOptions::storage) rounded to float16
// or bfloat16 on append — half the bytes. Everything the cache computes then uses the rounded
// keys and values: the Gram summary, the scores, the threshold guarantee and attend() are exact
// with respect to them (attend reads the 16-bit rows in place, in float arithmetic).
#pragma once

#include <vector>

#include "levattn/attention/exact.hpp"
#include "levattn/core/row_store.hpp"
#include "levattn/linalg/gram.hpp"
#include "levattn/scores/leverage.hpp"

namespace levattn {

enum class CachePolicy { leverage, window, accumulated, key_norm };

struct KVCacheOptions {
  CachePolicy policy = CachePolicy::leverage;
  index_t budget = 256;  // keys kept (every policy but leverage's threshold mode); ≥ 1
  double eps = 0.0;      // leverage only: > 0 selects threshold mode (budget then ignored)
  index_t sinks = 4;     // window only
  // Leverage or pow:2: appends between refits of the scorer; 0: max(1, budget/4) for leverage,
  // the budget for the other policies (the unfitted keys then never outnumber the cache).
  index_t refresh = 0;
  AttentionOptions attention;              // softmax or pow:2; causal is irrelevant (one query per step)
  ElementType storage = ElementType::f32;  // of the retained keys and values: f32, f16 or bf16
};

class KVCache {
 public:
  // Throws Error{bad_input} for d, d_v < 1, budget < 1, ε outside [0, 1], sinks outside
  // [0, budget), refresh < 0, a scale < 0 or not finite, an f other than softmax and pow:2.
  KVCache(index_t d, index_t d_v, KVCacheOptions options);

  // Appends one key (d floats) and value (d_v floats); throws Error{bad_input} on NaN/Inf.
  void append(const float* key, const float* value);
  // Appends rows of keys (rows × d) and values (rows × d_v) in order, all or nothing: throws
  // Error{bad_input}, changing nothing, on a shape mismatch or a NaN/Inf in any row.
  void append(ConstMatrixF keys, ConstMatrixF values);
  // out (d_v floats) = attention of query (d floats) over the retained keys, as described above.
  // Updates the accumulated-attention scores of the H2O policy.
  void attend(const float* query, float* out);
  // Attends each row of queries (m × d) in order into out (m × d_v); missing (m doubles, or null)
  // receives missing_mass() after each. Throws Error{bad_input}, changing nothing, on a shape
  // mismatch or a NaN/Inf in any query.
  void attend(ConstMatrixF queries, MatrixF out, double* missing = nullptr);

  index_t size() const { return static_cast<index_t>(position_.size()); }  // keys retained
  index_t appended() const { return appended_; }
  // Global positions of the retained keys, ascending.
  std::vector<index_t> positions() const;
  // pow:2 only: 1 − Σ_{retained} A of the last attend() (0 before any attend).
  double missing_mass() const { return missing_mass_; }
  // Bytes of the retained keys and values: size()·(d + d_v)·(4 for f32, 2 for f16 and bf16).
  index_t stored_bytes() const { return keys_.bytes() + values_.bytes(); }

 private:
  void evict(index_t slot);
  // Leverage policy or pow:2: the Gram summary of every key appended is kept.
  bool keeps_gram() const;
  // Refits scorer_ on summary_ and empties the unfitted rows; leverage: rescores the retained keys
  // and, in threshold mode, evicts those below ε.
  void refit();
  void enforce_budget();
  index_t unfitted_rows() const { return static_cast<index_t>(unfitted_.size()) / d_; }

  index_t d_, dv_;
  KVCacheOptions options_;
  index_t appended_ = 0;
  RowStore keys_, values_;         // retained, in slots (unordered), of options.storage
  std::vector<index_t> position_;  // global position of each slot
  std::vector<double> weight_;     // leverage: score at the last refresh (+∞ if newer);
                                   // accumulated: attention received so far; key_norm: ‖k‖²
  GramSummary summary_;            // every key appended, when keeps_gram()
  LeverageScorer scorer_;          // fitted on summary_ at the last refit
  std::vector<float> unfitted_;    // keys appended since the last refit (rows × d)
  std::vector<double> products_;   // scratch for attend(): <q, k> over unfitted_
  double missing_mass_ = 0.0;
  std::vector<double> lse_;  // scratch for attend()
  // Scratch of max(d, d_v) floats: in append(), the key and value as stored; in attend(), one
  // retained key widened (accumulated policy).
  std::vector<float> row_;
};

}  // namespace levattn
