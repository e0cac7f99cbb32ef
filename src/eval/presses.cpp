// KV-cache presses (presses.hpp): key rules, the sketched leverage scores, SnapKV and H2O.
#include "levattn/eval/presses.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "levattn/core/finite_rows.hpp"
#include "levattn/eval/query_rules.hpp"

namespace levattn {

namespace {

// Press names that are key rules, and the key rule each one is.
const std::map<std::string, std::string>& key_rule_of() {
  static const std::map<std::string, std::string> rules = {
      {"leverage", "leverage"},      {"ridge", "ridge"},  {"lewis", "lewis"}, {"key-norm", "row-norm"},
      {"streaming", "sinks-window"}, {"random", "random"}};
  return rules;
}

void check_finite_keys(ConstMatrixF keys, const std::string& press) {
  require(keys.rows >= 1 && keys.cols >= 1,
          press + ": need at least one key of dimension ≥ 1, got " + shape_string(keys.rows, keys.cols));
  if (const index_t j = first_nonfinite_row(keys); j < keys.rows)
    throw Error(ErrorKind::bad_input, press + ": key " + std::to_string(j) + " is not finite");
}

void check_context_queries(const std::vector<ConstMatrixF>& queries, ConstMatrixF keys, const std::string& press) {
  require(!queries.empty(), press + ": needs the context queries of at least one query head");
  for (const ConstMatrixF& q : queries)
    require(q.rows == keys.rows && q.cols == keys.cols,
            press + ": context queries " + shape_string(q.rows, q.cols) + " must match the keys " +
                shape_string(keys.rows, keys.cols) + " (one query per context token)");
}

std::vector<double> sketched_leverage(ConstMatrixF keys, const ApproxLeverageOptions& options) {
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
  window.reserve(queries.size());
  for (const ConstMatrixF& q : queries) window.push_back(q.rows_range(n - w, n));
  AttentionOptions causal = o.attention;
  causal.causal = true;  // bottom-right: window query t sees keys up to n − w + t
  const std::vector<double> mass = accumulated_attention(window, keys, causal);
  // Pooled over the keys before the window only (the window's own mass would spill onto them).
  const index_t before = n - w, half = o.pool / 2;
  std::vector<double> pooled(static_cast<size_t>(n));
  for (index_t j = 0; j < before; ++j) {
    double sum = 0.0;
    for (index_t t = std::max<index_t>(0, j - half); t <= std::min(before - 1, j + half); ++t) sum += mass[t];
    pooled[j] = sum / static_cast<double>(o.pool);
  }
  // The window ranks above every pooled score, the latest key highest.
  const double above = (before > 0 ? *std::max_element(pooled.begin(), pooled.begin() + before) : 0.0) + 1.0;
  for (index_t j = before; j < n; ++j) pooled[j] = above + static_cast<double>(j - before);
  return pooled;
}

}  // namespace

const std::vector<std::string>& press_names() {
  static const std::vector<std::string> names = {
      "leverage", "ridge", "lewis", "sketched-leverage", "key-norm", "streaming", "random", "snapkv", "h2o"};
  return names;
}

bool press_needs_queries(const std::string& press) { return press == "snapkv" || press == "h2o"; }

std::vector<double> press_scores(const std::string& press, const std::vector<ConstMatrixF>& context_queries,
                                 ConstMatrixF keys, index_t head, const PressOptions& options) {
  const std::vector<std::string>& names = press_names();
  if (std::find(names.begin(), names.end(), press) == names.end()) {
    std::string known;
    for (const std::string& name : press_names()) known += (known.empty() ? "" : ", ") + name;
    throw Error(ErrorKind::bad_input, "unknown press '" + press + "' (known: " + known + ")");
  }
  check_finite_keys(keys, press);  // here, so that messages name the press
  if (const auto rule = key_rule_of().find(press); rule != key_rule_of().end())
    return make_key_rule(rule->second, options.key_rules)->scores(keys, head);
  if (press == "sketched-leverage") return sketched_leverage(keys, options.sketch);
  check_context_queries(context_queries, keys, press);
  if (press == "snapkv") return snapkv(context_queries, keys, options);
  AttentionOptions causal = options.attention;  // h2o
  causal.causal = true;
  return accumulated_attention(context_queries, keys, causal);
}

void press_heads(const std::string& press, ConstHeadsF context_queries, ConstHeadsF keys, index_t budget,
                 const PressOptions& options, index_t* kept, double* scores) {
  const index_t n = keys.rows, B = keys.batch, H = keys.heads;
  require(budget >= 1 && budget <= n,
          "press: budget must lie in [1, n] = [1, " + std::to_string(n) + "], got " + std::to_string(budget));
  const bool with_queries = press_needs_queries(press);
  if (with_queries)
    require(context_queries.batch == B && H >= 1 && context_queries.heads >= 1 && context_queries.heads % H == 0 &&
                context_queries.rows == n && context_queries.cols == keys.cols,
            "press: context queries (" + std::to_string(context_queries.batch) + ", " +
                std::to_string(context_queries.heads) + ", " + std::to_string(context_queries.rows) + ", " +
                std::to_string(context_queries.cols) + ") must hold one query per key of (" + std::to_string(B) + ", " +
                std::to_string(H) + ", " + std::to_string(n) + ", " + std::to_string(keys.cols) +
                "), with a multiple of its heads");
  const index_t per = with_queries ? context_queries.heads / H : 0;
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h) {
      std::vector<ConstMatrixF> group;
      for (index_t g = 0; g < per; ++g) group.push_back(context_queries.head(b, h * per + g));
      const index_t slot = b * H + h;
      std::vector<double> s;
      try {
        s = press_scores(press, group, keys.head(b, h), slot, options);
      } catch (const Error& e) {
        if (B * H == 1) throw;
        throw Error(e.kind(), "batch " + std::to_string(b) + ", head " + std::to_string(h) + ": " + e.what());
      }
      if (scores) std::copy(s.begin(), s.end(), scores + slot * n);
      const std::vector<index_t> top = keep_top_k(s, budget);
      std::copy(top.begin(), top.end(), kept + slot * budget);
    }
}

}  // namespace levattn
