// The --p, --approx, --failure and --seed options of the scores/select commands, and the --json
// facts of the scores they choose (computed by levattn/select/key_scores.hpp).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>

#include "heads.hpp"
#include "levattn/select/key_scores.hpp"

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
// The library's options for these command-line options.
KeyScoreOptions key_score_options(const ScoreKindOptions& options, double ridge, double rcond);
// compute_key_scores (key_scores.hpp) of head h of keys, in the element type they were loaded in.
KeyScores head_key_scores(const HeadArray& keys, index_t h, const KeyScoreOptions& options, bool sensitivities);
// Method-specific facts of computed scores, for --json.
nlohmann::json key_scores_report(const KeyScores& scores, const ScoreKindOptions& options);

}  // namespace levattn::cli
