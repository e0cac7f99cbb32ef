// The evaluation: every selection rule at equal budgets, on any attention input, measured against
// the exact attention — which heavy entries each rule keeps, how far its output is from exact,
// and what it costs. This layer sits above attention (it runs the exact operator and the key
// rules of select/); the CLI's `levattn eval` is a thin front end.
//
// For every score function f, rule and budget k (and, for the leverage rule, every threshold ε'):
//   * kept: keys kept per key head (mean over heads; the oracle keeps k per query);
//   * capture(ε) for each ε of capture_eps (metrics.hpp), over every query of every head;
//   * error ‖O − Ô‖_F / ‖O‖_F over the whole input, with O the double-precision reference;
//   * select_seconds (scores + set, summed over heads) and attend_seconds (gather + attention);
//   * relevant_recall: the mean fraction of `relevant` keys in the kept set (set rules only).
// Key-only rules choose one set per key head; h2o one set per key head from the attention of all
// its query heads; the oracle one set per query. Grouped-query layouts: query head h reads key
// head h / (H_q / H_kv).
//
// Threshold rows (thresholds): the leverage set {τ_j ≥ ε'·(1 − 5e-2)}, the slack absorbing the
// rounding of τ exactly as HeavySearch does (heavy.cpp). Under |x|² it keeps every entry
// A ≥ ε' of every query (the universal-set guarantee), so its capture at every ε ≥ ε' is 1 on
// every input whose queries have no weight along directions cut as rank-deficient.
#pragma once

#include <string>
#include <vector>

#include "levattn/attention/exact.hpp"
#include "levattn/core/heads_view.hpp"
#include "levattn/select/key_rules.hpp"

namespace levattn {

struct EvalOptions {
  std::vector<ScoreFunction> functions = {ScoreFunction::softmax(), ScoreFunction::power(2.0)};
  double scale = 0.0;                                   // c for every f; 0: each f's default (1/√d, 1)
  std::vector<std::string> rules;                       // of eval_rule_names(); empty: every rule
  std::vector<index_t> budgets;                         // each in [1, n]
  std::vector<double> thresholds;                       // leverage threshold sets, each in (0, 1]
  std::vector<double> capture_eps = {0.01, 0.05, 0.1};  // each in (0, 1]
  KeyRuleOptions key_rules;
  std::vector<index_t> relevant;  // optional key indices, each in [0, n)
};

struct EvalRow {
  std::string rule;
  ScoreFunction f;
  index_t budget = 0;      // 0 on a threshold row
  double threshold = 0.0;  // > 0 on a threshold row
  double kept_mean = 0.0;
  std::vector<index_t> heavy, captured;  // per capture ε
  std::vector<double> capture;           // captured / heavy (NaN with no heavy entries)
  double error = 0.0;
  double select_seconds = 0.0, attend_seconds = 0.0;
  double relevant_recall = -1.0;  // −1: not measured (no relevant keys, or the oracle)
  std::string failure;            // non-empty: the rule's scores failed on some key head
                                  // (where, and the error's message); kept_mean, capture
                                  // and error are then NaN, the counts 0
};

struct EvalReport {
  std::vector<EvalRow> rows;       // by f, then rule (in options order), then budget, thresholds
  double reference_seconds = 0.0;  // the exact double-precision reference
};

// Every rule name: the key rules (key_rule_names) then "h2o" and "oracle".
std::vector<std::string> eval_rule_names();

// queries (B, H_q, m, d), keys (B, H_kv, n, d), values (B, H_kv, n, d_v), H_q a multiple of H_kv.
// Throws Error{bad_input} on shape mismatch, NaN/Inf, no budget and no threshold, a budget outside
// [1, n], an ε outside (0, 1], an unknown rule, a relevant key outside [0, n), softmax logits
// beyond float range. A rule whose scores fail (Error{failure}, e.g. Lewis weights that do not
// converge) does not stop the others: its rows carry the message in `failure`.
EvalReport evaluate(ConstHeadsF queries, ConstHeadsF keys, ConstHeadsF values, const EvalOptions& options);

}  // namespace levattn
