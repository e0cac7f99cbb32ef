#include "levattn/scores/leverage.hpp"

namespace levattn {

LeverageScorer::LeverageScorer(index_t d, LeverageOptions options) : options_(options), summary_(d) {
  refactor();  // validates the options; an empty summary has rank 0
}

template <class T>
LeverageScorer& LeverageScorer::fit_rows(MatrixView<const T> keys) {
  GramSummary summary(dim());
  summary.add(keys);
  return fit(summary);
}

LeverageScorer& LeverageScorer::fit(ConstMatrixF keys) { return fit_rows(keys); }
LeverageScorer& LeverageScorer::fit(MatrixView<const Half> keys) { return fit_rows(keys); }
LeverageScorer& LeverageScorer::fit(MatrixView<const BFloat16> keys) { return fit_rows(keys); }

LeverageScorer& LeverageScorer::fit(const GramSummary& summary) {
  require(summary.dim() == dim(), "leverage scorer: summary of dimension " + std::to_string(summary.dim()) +
                                      ", scorer has " + std::to_string(dim()));
  summary_ = summary;
  refactor();
  return *this;
}

LeverageScorer& LeverageScorer::merge(const LeverageScorer& other) {
  summary_.merge(other.summary_);
  refactor();
  return *this;
}

void LeverageScorer::refactor() { factors_ = factor_gram(summary_.gram(), dim(), options_.ridge, options_.rcond); }

void LeverageScorer::scores(ConstMatrixF keys, double* out) const {
  factors_.inverse_root.sum_squares(keys, out, "keys");
}

void LeverageScorer::scores(MatrixView<const Half> keys, double* out) const {
  factors_.inverse_root.sum_squares(keys, out, "keys");
}

void LeverageScorer::scores(MatrixView<const BFloat16> keys, double* out) const {
  factors_.inverse_root.sum_squares(keys, out, "keys");
}

template <class T>
std::vector<double> LeverageScorer::score_vector(MatrixView<const T> keys) const {
  std::vector<double> out(static_cast<size_t>(keys.rows));
  scores(keys, out.data());
  return out;
}

std::vector<double> LeverageScorer::scores(ConstMatrixF keys) const { return score_vector(keys); }
std::vector<double> LeverageScorer::scores(MatrixView<const Half> keys) const { return score_vector(keys); }
std::vector<double> LeverageScorer::scores(MatrixView<const BFloat16> keys) const { return score_vector(keys); }

void LeverageScorer::normalisers(ConstMatrixF queries, double* out) const {
  factors_.root.sum_squares(queries, out, "queries");
}

void LeverageScorer::normalisers(MatrixView<const Half> queries, double* out) const {
  factors_.root.sum_squares(queries, out, "queries");
}

void LeverageScorer::normalisers(MatrixView<const BFloat16> queries, double* out) const {
  factors_.root.sum_squares(queries, out, "queries");
}

void LeverageScorer::cut_normalisers(ConstMatrixF queries, double* out) const {
  factors_.cut_root.sum_squares(queries, out, "queries");
}

}  // namespace levattn
