// The per-key scores the scores/select commands can use, chosen by --p and --approx:
// exact leverage scores (p = 2), ℓp Lewis weights (p ≠ 2; select uses their sensitivity bounds),
// or sketched approximate leverage scores (--approx γ, p = 2 only).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "levattn/core/matrix_view.hpp"

namespace levattn::cli {

struct ScoreKindOptions {
  double p = 2.0;
  std::optional<double> approx;  // γ
  double failure = 0.05;         // per-key failure probability of --approx
  std::uint64_t seed = 1;
};

// Registers --p, --approx, --failure and --seed on `command`.
void add_score_kind_options(CLI::App& command, ScoreKindOptions& options);
// Throws UsageError when --approx is combined with --p ≠ 2 (or with a ridge).
void check_score_kind(const ScoreKindOptions& options, double ridge);

struct KeyScores {
  std::vector<double> values;  // one per key
  index_t rank = 0;
  // The threshold factor and the bound's scale: select keeps values ≥ eps·threshold_factor and
  // bounds |U| by bound_mass/(eps·threshold_factor).
  double threshold_factor = 1.0;
  double bound_mass = 0.0;
  nlohmann::json report;  // method-specific facts for --json
};

// Scores of `keys` as chosen; `sensitivities` turns Lewis weights into s_j = r^{max(0,p/2−1)}·w_j
// (select); scores writes the weights themselves.
KeyScores compute_key_scores(ConstMatrixF keys, const ScoreKindOptions& options, double ridge, double rcond,
                             bool sensitivities);

}  // namespace levattn::cli
