// How much of a softmax model's real attention the kept keys of each selection rule hold — the
// study's question (3): are the heavy entries of softmax attention on keys of large leverage?
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "training.hpp"

namespace levattn::vit {

struct CoverageOptions {
  std::vector<std::int64_t> ks{4, 8, 16};
  std::vector<double> thresholds{0.01, 0.05};
  std::vector<Rule> rules{Rule::leverage, Rule::row_norm, Rule::random};
  std::int64_t batch = 500;
  std::uint64_t seed = 0;  // for the random rule
};

// Runs `model` with full softmax on `set` and, per layer, rule and k, counts over every image,
// head and query row the entries A[i,j] ≥ t ("heavy") and those whose key j the rule keeps
// ("held"), and averages the softmax mass Σ_{j kept} A[i,j] of a row. Returns
// {"rows": [{"layer", "rule", "k", "mass", "heavy": [..per threshold], "held": [..]}],
//  "thresholds": [...], "images": N}. Throws Error{bad_input} if a k exceeds n.
nlohmann::json coverage(Vit& model, const Batchable& set, const CoverageOptions& options);

}  // namespace levattn::vit
