// The evaluation driver (evaluate.hpp): rules × budgets × score functions against the exact
// reference, head by head.
#include "levattn/eval/evaluate.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "levattn/attention/heavy.hpp"
#include "levattn/eval/exact_reference.hpp"
#include "levattn/eval/metrics.hpp"
#include "levattn/eval/query_rules.hpp"
#include "levattn/select/universal_set.hpp"

namespace levattn {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// A row's running sums over heads.
struct Accumulator {
  CaptureCount capture;
  ErrorSums error;
  double kept = 0.0, recall = 0.0, select_seconds = 0.0, attend_seconds = 0.0;
  index_t sets = 0;
};

void check_options(const EvalOptions& o, index_t n, const std::vector<std::string>& rules) {
  for (const std::string& r : rules) {
    const auto all = eval_rule_names();
    require(std::find(all.begin(), all.end(), r) != all.end(),
            "eval: unknown rule '" + r + "' (leverage, ridge, lewis, row-norm, random, sinks-window, h2o, oracle)");
  }
  require(!o.functions.empty(), "eval: no score function given");
  require(!o.budgets.empty() || !o.thresholds.empty(), "eval: give at least one budget or threshold");
  for (index_t k : o.budgets)
    require(k >= 1 && k <= n, "eval: budget " + std::to_string(k) + " outside [1, n] = [1, " + std::to_string(n) + "]");
  for (double e : o.thresholds) check_eps(e);
  require(!o.capture_eps.empty(), "eval: no capture threshold ε given");
  for (double e : o.capture_eps) check_eps(e);
  require(o.thresholds.empty() || std::count(rules.begin(), rules.end(), "leverage") > 0,
          "eval: thresholds apply to the leverage rule, which is not among the rules");
  for (index_t j : o.relevant)
    require(j >= 0 && j < n,
            "eval: relevant key " + std::to_string(j) + " outside [0, n) = [0, " + std::to_string(n) + ")");
}

void check_shapes(ConstHeadsF q, ConstHeadsF k, ConstHeadsF v) {
  require(k.batch == q.batch && k.heads > 0 && q.heads % k.heads == 0,
          "eval: query heads must be a multiple of key heads, with equal batch sizes");
  require(v.batch == k.batch && v.heads == k.heads && v.rows == k.rows,
          "eval: values must have one row per key and as many heads as keys");
  require(k.cols == q.cols, "eval: queries and keys must have the same width d");
  require(k.rows >= 1 && q.rows >= 1 && k.cols >= 1 && v.cols >= 1, "eval: no dimension may be 0");
}

std::vector<char> mask_of(const std::vector<index_t>& kept, index_t n) {
  std::vector<char> m(static_cast<size_t>(n), 0);
  for (index_t j : kept) m[j] = 1;
  return m;
}

double recall_of(const std::vector<char>& mask, const std::vector<index_t>& relevant) {
  index_t found = 0;
  for (index_t j : relevant) found += mask[j] ? 1 : 0;
  return static_cast<double>(found) / static_cast<double>(relevant.size());
}

}  // namespace

std::vector<std::string> eval_rule_names() {
  std::vector<std::string> names = key_rule_names();
  names.push_back("h2o");
  names.push_back("oracle");
  return names;
}

EvalReport evaluate(ConstHeadsF queries, ConstHeadsF keys, ConstHeadsF values, const EvalOptions& o) {
  check_shapes(queries, keys, values);
  const std::vector<std::string> rules = o.rules.empty() ? eval_rule_names() : o.rules;
  const index_t n = keys.rows, group = queries.heads / keys.heads;
  check_options(o, n, rules);
  std::map<std::string, std::unique_ptr<KeyRule>> key_rules;
  for (const std::string& r : rules)
    if (r != "h2o" && r != "oracle") key_rules[r] = make_key_rule(r, o.key_rules);
  const double min_eps = *std::min_element(o.capture_eps.begin(), o.capture_eps.end());

  // Rows in report order, each with its accumulator.
  EvalReport report;
  std::vector<Accumulator> acc;
  const auto slots = [&](const std::string& r) {
    return o.budgets.size() + (r == "leverage" ? o.thresholds.size() : 0);
  };
  for (const ScoreFunction& f : o.functions)
    for (const std::string& r : rules)
      for (size_t s = 0; s < slots(r); ++s) {
        EvalRow row;
        row.rule = r;
        row.f = f;
        if (s < o.budgets.size())
          row.budget = o.budgets[s];
        else
          row.threshold = o.thresholds[s - o.budgets.size()];
        report.rows.push_back(row);
        acc.push_back(Accumulator{CaptureCount(o.capture_eps.size()), {}, 0, 0, 0, 0, 0});
      }

  std::map<std::string, std::string> failed;  // rule → the message of its first failure
  for (index_t b = 0; b < keys.batch; ++b)
    for (index_t kh = 0; kh < keys.heads; ++kh) {
      const ConstMatrixF K = keys.head(b, kh), V = values.head(b, kh);
      std::vector<ConstMatrixF> group_queries;
      for (index_t h = kh * group; h < (kh + 1) * group; ++h) group_queries.push_back(queries.head(b, h));

      std::map<std::string, std::pair<std::vector<double>, double>> key_scores;  // scores, seconds
      for (const auto& [name, rule] : key_rules) {
        if (failed.count(name)) continue;
        const auto start = Clock::now();
        try {
          std::vector<double> s = rule->scores(K, b * keys.heads + kh);
          key_scores[name] = {std::move(s), since(start)};
        } catch (const Error& e) {
          if (e.kind() != ErrorKind::failure) throw;
          failed[name] = "batch " + std::to_string(b) + ", key head " + std::to_string(kh) + ": " + e.what();
        }
      }

      size_t row = 0;
      for (const ScoreFunction& f : o.functions) {
        AttentionOptions a;
        a.f = f;
        a.scale = o.scale;
        std::vector<ExactReference> refs;
        refs.reserve(group_queries.size());
        auto start = Clock::now();
        for (const ConstMatrixF& Q : group_queries) refs.push_back(exact_reference(Q, K, V, a, min_eps));
        report.reference_seconds += since(start);

        for (const std::string& r : rules) {
          if (r == "oracle") {
            for (index_t k : o.budgets) {
              Accumulator& x = acc[row++];
              for (size_t g = 0; g < group_queries.size(); ++g) {
                const OracleResult res = oracle_attention(group_queries[g], K, V, a, k);
                count_capture(refs[g].heavy, o.capture_eps, res.kept, k, x.capture);
                x.error.add(refs[g].out, res.out.data());
                x.select_seconds += res.select_seconds;
                x.attend_seconds += res.attend_seconds;
              }
              x.kept += static_cast<double>(k);
              ++x.sets;
            }
            continue;
          }
          if (failed.count(r)) {  // no figures for this rule
            row += slots(r);
            continue;
          }
          std::vector<double> h2o;
          double score_seconds = 0.0;
          if (r == "h2o") {
            start = Clock::now();
            h2o = accumulated_attention(group_queries, K, a);
            score_seconds = since(start);
          } else {
            score_seconds = key_scores[r].second;
          }
          const std::vector<double>& scores = r == "h2o" ? h2o : key_scores[r].first;
          for (size_t s = 0; s < slots(r); ++s) {
            Accumulator& x = acc[row++];
            start = Clock::now();
            std::vector<index_t> kept;
            if (s < o.budgets.size()) {
              kept = keep_top_k(scores, o.budgets[s]);
            } else {
              // τ ≥ ε(1 − slack): the keys HeavySearch scans, absorbing rounding in τ.
              const double eps = heavy_scan_threshold(o.thresholds[s - o.budgets.size()]);
              for (index_t j = 0; j < n; ++j)
                if (scores[j] >= eps) kept.push_back(j);
            }
            x.select_seconds += score_seconds + since(start);
            const std::vector<char> mask = mask_of(kept, n);
            if (!o.relevant.empty()) x.recall += recall_of(mask, o.relevant);
            x.kept += static_cast<double>(kept.size());
            ++x.sets;
            start = Clock::now();
            for (size_t g = 0; g < group_queries.size(); ++g) {
              count_capture(refs[g].heavy, o.capture_eps, mask, x.capture);
              if (kept.empty()) {  // nothing kept: Ô = 0
                const std::vector<float> zero(refs[g].out.size(), 0.0f);
                x.error.add(refs[g].out, zero.data());
                continue;
              }
              const std::vector<float> out = attend_kept(group_queries[g], K, V, kept, a, refs[g].log_normaliser);
              x.error.add(refs[g].out, out.data());
            }
            x.attend_seconds += since(start);
          }
        }
      }
    }

  for (size_t i = 0; i < report.rows.size(); ++i) {
    EvalRow& row = report.rows[i];
    const Accumulator& x = acc[i];
    if (const auto it = failed.find(row.rule); it != failed.end()) {  // no figures (EvalRow::failure)
      const double none = std::numeric_limits<double>::quiet_NaN();
      row.kept_mean = row.error = none;
      row.capture.assign(o.capture_eps.size(), none);
      row.heavy.assign(o.capture_eps.size(), 0);
      row.captured.assign(o.capture_eps.size(), 0);
      row.failure = it->second;
      continue;
    }
    row.heavy = x.capture.heavy;
    row.captured = x.capture.captured;
    for (size_t t = 0; t < o.capture_eps.size(); ++t) row.capture.push_back(x.capture.fraction(t));
    row.error = x.error.relative();
    row.kept_mean = x.kept / static_cast<double>(x.sets);
    row.select_seconds = x.select_seconds;
    row.attend_seconds = x.attend_seconds;
    if (!o.relevant.empty() && row.rule != "oracle") row.relevant_recall = x.recall / static_cast<double>(x.sets);
  }
  return report;
}

}  // namespace levattn
