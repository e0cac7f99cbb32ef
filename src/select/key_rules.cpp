// Key-only selection rules (key_rules.hpp): each turns a key head into one score per key.
#include "levattn/select/key_rules.hpp"

#include <cmath>
#include <numeric>
#include <random>

#include "levattn/core/finite_rows.hpp"
#include "levattn/scores/leverage.hpp"
#include "levattn/scores/lewis.hpp"
#include "levattn/select/universal_set.hpp"

namespace levattn {

namespace {

void check_keys(ConstMatrixF keys, const std::string& rule) {
  require(keys.rows >= 1 && keys.cols >= 1,
          rule + ": need at least one key of dimension ≥ 1, got " + shape_string(keys.rows, keys.cols));
  if (const index_t j = first_nonfinite_row(keys); j < keys.rows)
    throw Error(ErrorKind::bad_input, rule + ": key " + std::to_string(j) + " is not finite");
}

class LeverageRule : public KeyRule {
 public:
  LeverageRule(bool ridge, const KeyRuleOptions& o) : ridge_(ridge), o_(o) {}
  std::string name() const override { return ridge_ ? "ridge" : "leverage"; }
  std::vector<double> scores(ConstMatrixF keys, index_t) const override {
    check_keys(keys, name());
    LeverageOptions lo;
    lo.rcond = o_.rcond;
    if (ridge_) {
      double frobenius = 0.0;
      for (index_t j = 0; j < keys.rows; ++j)
        for (index_t c = 0; c < keys.cols; ++c) frobenius += double(keys(j, c)) * keys(j, c);
      lo.ridge = o_.ridge_fraction * frobenius / static_cast<double>(keys.cols);
    }
    LeverageScorer scorer(keys.cols, lo);
    scorer.fit(keys);
    return scorer.scores(keys);
  }

 private:
  bool ridge_;
  KeyRuleOptions o_;
};

class LewisRule : public KeyRule {
 public:
  explicit LewisRule(const KeyRuleOptions& o) : options_(o.lewis) { options_.rcond = o.rcond; }
  std::string name() const override { return "lewis"; }
  std::vector<double> scores(ConstMatrixF keys, index_t) const override {
    check_keys(keys, name());
    return lewis_weights(keys, 1.0, options_).weights;
  }

 private:
  LewisOptions options_;
};

class RowNormRule : public KeyRule {
 public:
  std::string name() const override { return "row-norm"; }
  std::vector<double> scores(ConstMatrixF keys, index_t) const override {
    check_keys(keys, name());
    std::vector<double> s(static_cast<size_t>(keys.rows), 0.0);
    for (index_t j = 0; j < keys.rows; ++j)
      for (index_t c = 0; c < keys.cols; ++c) s[j] += double(keys(j, c)) * keys(j, c);
    return s;
  }
};

class RandomRule : public KeyRule {
 public:
  explicit RandomRule(std::uint64_t seed) : seed_(seed) {}
  std::string name() const override { return "random"; }
  std::vector<double> scores(ConstMatrixF keys, index_t head) const override {
    check_keys(keys, name());
    std::seed_seq seq{seed_, static_cast<std::uint64_t>(head)};
    std::mt19937_64 rng(seq);
    std::vector<index_t> order(static_cast<size_t>(keys.rows));
    std::iota(order.begin(), order.end(), index_t{0});
    for (index_t i = keys.rows - 1; i > 0; --i)
      std::swap(order[i], order[std::uniform_int_distribution<index_t>(0, i)(rng)]);
    std::vector<double> s(static_cast<size_t>(keys.rows));
    for (index_t i = 0; i < keys.rows; ++i) s[order[i]] = static_cast<double>(keys.rows - i);
    return s;
  }

 private:
  std::uint64_t seed_;
};

class SinksWindowRule : public KeyRule {
 public:
  explicit SinksWindowRule(index_t sinks) : sinks_(sinks) {}
  std::string name() const override { return "sinks-window"; }
  std::vector<double> scores(ConstMatrixF keys, index_t) const override {
    check_keys(keys, name());
    const index_t n = keys.rows;
    std::vector<double> s(static_cast<size_t>(n));
    for (index_t j = 0; j < n; ++j)  // sinks first (earliest first), then the latest keys
      s[j] = j < sinks_ ? static_cast<double>(2 * n - j) : static_cast<double>(j);
    return s;
  }

 private:
  index_t sinks_;
};

}  // namespace

const std::vector<std::string>& key_rule_names() {
  static const std::vector<std::string> names = {"leverage", "ridge", "lewis", "row-norm", "random", "sinks-window"};
  return names;
}

std::unique_ptr<KeyRule> make_key_rule(const std::string& name, const KeyRuleOptions& o) {
  require(std::isfinite(o.ridge_fraction) && o.ridge_fraction > 0.0,
          "ridge fraction must be > 0, got " + std::to_string(o.ridge_fraction));
  require(o.sinks >= 0, "sinks must be ≥ 0, got " + std::to_string(o.sinks));
  if (name == "leverage") return std::make_unique<LeverageRule>(false, o);
  if (name == "ridge") return std::make_unique<LeverageRule>(true, o);
  if (name == "lewis") return std::make_unique<LewisRule>(o);
  if (name == "row-norm") return std::make_unique<RowNormRule>();
  if (name == "random") return std::make_unique<RandomRule>(o.seed);
  if (name == "sinks-window") return std::make_unique<SinksWindowRule>(o.sinks);
  throw Error(ErrorKind::bad_input,
              "unknown key rule '" + name + "' (leverage, ridge, lewis, row-norm, random, sinks-window)");
}

std::vector<index_t> keep_top_k(const std::vector<double>& scores, index_t k) {
  return select_top_k(scores.data(), static_cast<index_t>(scores.size()), k).indices;
}

}  // namespace levattn
