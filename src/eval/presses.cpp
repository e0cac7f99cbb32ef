// KV-cache presses (presses.hpp): key rules, the sketched leverage scores, SnapKV and H2O.
#include "levattn/eval/presses.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "levattn/attention/heavy.hpp"
#include "levattn/eval/query_rules.hpp"

namespace levattn {

namespace {

// Press names that are key rules, and the key rule each one is.
const std::map<std::string, std::string>& key_rule_of() {
  static const std::map<std::string, std::string> rules = {
      {"leverage", "leverage"}, {"ridge", "ridge"},          {"lewis", "lewis"},
      {"key-norm", "row-norm"}, {"streaming", "sinks-window"}, {"random", "random"}};
  return rules;
}

void check_finite_keys(ConstMatrixF keys, const std::string& press) {
  require(keys.rows >= 1 && keys.cols >= 1,
          press + ": need at least one key of dimension ≥ 1, got " + shape_string(keys.rows, keys.cols));
  for (index_t j = 0; j < keys.rows; ++j)
    for (index_t c = 0; c < keys.cols; ++c)
      require(std::isfinite(keys(j, c)), press + ": key " + std::to_string(j) + " is not finite");
}

void check_context_queries(const std::vector<ConstMatrixF>& queries, ConstMatrixF keys, const std::string& press) {
  require(!queries.empty(), press + ": needs the context queries of at least one query head");
  for (const ConstMatrixF& q : queries)
    require(q.rows == keys.rows && q.cols == keys.cols,
            press + ": context queries " + shape_string(q.rows, q.cols) + " must match the keys " +
                shape_string(keys.rows, keys.cols) + " (one query per context token)");
}

std::vector<double> sketched_leverage(ConstMatrixF keys, const ApproxLeverageOptions& options) {
  check_finite_keys(keys, "sketched-leverage");
  ApproxLeverageOptions o = options;
  o.method = ApproxMethod::sketched;
  ApproxLeverageScorer scorer(keys.cols, o);
  scorer.fit(keys);
  return scorer.scores(keys);
}

std::vector<double> snapkv(const std::vector<ConstMatrixF>& queries, ConstMatrixF keys, const PressOptions& o) {
  require(o.window >= 1, "snapkv: window must be ≥ 1, got " + std::to_string(o.window));
  require(o.pool >= 1 && o.pool % 2 == 1, "snapkv: pool must be odd and ≥ 1, got " + std::to_string(o.pool));
  const index_t n = keys.rows, w = std::min(o.window, n);
  std::vector<ConstMatrixF> window;
  for (const ConstMatrixF& q : queries)
    window.push_back(q.rows_range(n - w, n));
  AttentionOptions causal = o.attention;
  causal.causal = true;  // bottom-right: window query t sees keys up to n − w + t
  const std::vector<double> mass = accumulated_attention(window, keys, causal);
  std::vector<double> pooled(static_cast<size_t>(n));
  const index_t half = o.pool / 2;
  for (index_t j = 0; j < n; ++j) {
    double sum = 0.0;
    for (index_t t = std::max<index_t>(0, j - half); t <= std::min(n - 1, j + half); ++t) sum += mass[t];
    pooled[j] = sum / static_cast<double>(o.pool);
  }
  std::fill(pooled.begin() + (n - w), pooled.end(), std::numeric_limits<double>::infinity());
  return pooled;
}

}  // namespace

const std::vector<std::string>& press_names() {
  static const std::vector<std::string> names = {"leverage", "ridge",     "lewis",  "sketched-leverage", "key-norm",
                                                 "streaming", "random", "snapkv", "h2o"};
  return names;
}

bool press_needs_queries(const std::string& press) { return press == "snapkv" || press == "h2o"; }

std::vector<double> press_scores(const std::string& press, const std::vector<ConstMatrixF>& context_queries,
                                 ConstMatrixF keys, index_t head, const PressOptions& options) {
  if (const auto rule = key_rule_of().find(press); rule != key_rule_of().end())
    return make_key_rule(rule->second, options.key_rules)->scores(keys, head);
  if (press == "sketched-leverage") return sketched_leverage(keys, options.sketch);
  if (press_needs_queries(press)) {
    check_finite_keys(keys, press);
    check_context_queries(context_queries, keys, press);
    if (press == "snapkv") return snapkv(context_queries, keys, options);
    AttentionOptions causal = options.attention;
    causal.causal = true;
    return accumulated_attention(context_queries, keys, causal);
  }
  std::string known;
  for (const std::string& name : press_names()) known += (known.empty() ? "" : ", ") + name;
  throw Error(ErrorKind::bad_input, "unknown press '" + press + "' (known: " + known + ")");
}

std::vector<index_t> threshold_press(ConstMatrixF keys, double eps, double rcond) {
  require(std::isfinite(eps) && eps > 0.0 && eps <= 1.0, "threshold press: ε must lie in (0, 1], got " +
                                                              std::to_string(eps));
  KeyRuleOptions o;
  o.rcond = rcond;
  const std::vector<double> tau = make_key_rule("leverage", o)->scores(keys, 0);
  const double cut = heavy_scan_threshold(eps);
  std::vector<index_t> kept;
  for (index_t j = 0; j < keys.rows; ++j)
    if (tau[j] >= cut) kept.push_back(j);
  return kept;
}

}  // namespace levattn
