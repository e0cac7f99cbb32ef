// Key-selection rules that look at the keys alone (one key head, n×d): each ranks the keys by a
// score, and a budget k keeps the k keys of largest score (ties to the lower index, as
// select_top_k). Rankings are nested: the set at budget k is contained in the set at k + 1.
//
//   leverage      τ_j = k_jᵀ(KᵀK)⁺k_j (scores/leverage.hpp). For x² attention τ_j bounds the
//                 weight any query can give key j, so the threshold set {τ ≥ ε} keeps every entry
//                 A ≥ ε of every query (the universal-set guarantee).
//   ridge         k_jᵀ(KᵀK + λI)⁻¹k_j with λ = ridge_fraction · ‖K‖_F² / d (a fraction of the mean
//                 eigenvalue of KᵀK, so the rule does not depend on the keys' scale).
//   lewis         ℓ1 Lewis weights w_j (scores/lewis.hpp): the importance of key j for |<q,k>|
//                 attention, as leverage is for x². Throws Error{failure} if the fixed point does
//                 not converge.
//   row-norm      ‖k_j‖².
//   random        a uniformly random order of the keys, from `seed` (and the head index).
//   sinks-window  the first `sinks` keys, then the latest keys: budget k keeps
//                 [0, min(sinks, k)) ∪ the last k − min(sinks, k) keys (StreamingLLM's attention
//                 sinks plus a recent window, as the last query of a sequence sees them).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "levattn/core/matrix_view.hpp"
#include "levattn/linalg/gram_factors.hpp"
#include "levattn/scores/lewis.hpp"

namespace levattn {

struct KeyRuleOptions {
  double ridge_fraction = 0.1;   // ridge: λ = ridge_fraction · ‖K‖_F² / d, > 0
  index_t sinks = 4;             // sinks-window: leading keys always kept, ≥ 0
  std::uint64_t seed = 1;        // random
  double rcond = kDefaultRcond;  // leverage, ridge, lewis: singular-value cut-off (gram_factors.hpp)
  LewisOptions lewis = {};       // lewis: tolerances and iteration budget (its rcond is the above)
};

// One rule. scores() returns one score per key (larger = kept first); `head` distinguishes the
// heads of one input (the random rule draws a different order per head). Throws Error{bad_input}
// on keys with no rows or NaN/Inf.
class KeyRule {
 public:
  virtual ~KeyRule() = default;
  virtual std::string name() const = 0;
  virtual std::vector<double> scores(ConstMatrixF keys, index_t head) const = 0;
};

// The rule named `name` (one of key_rule_names()). Throws Error{bad_input} for an unknown name or
// invalid options (ridge_fraction ≤ 0 or not finite, sinks < 0).
std::unique_ptr<KeyRule> make_key_rule(const std::string& name, const KeyRuleOptions& options = {});

// Every rule name, in a fixed order: leverage, ridge, lewis, row-norm, random, sinks-window.
const std::vector<std::string>& key_rule_names();

// The kept keys at budget k (1 ≤ k ≤ n), ascending: select_top_k over the scores.
std::vector<index_t> keep_top_k(const std::vector<double>& scores, index_t k);

}  // namespace levattn
