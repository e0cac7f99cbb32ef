#include "score_kinds.hpp"

#include "report.hpp"

namespace levattn::cli {

void add_score_kind_options(CLI::App& c, ScoreKindOptions& o) {
  c.add_option("--p", o.p, "Exponent of f(x) = |x|^p: p ≠ 2 uses ℓp Lewis weights")->capture_default_str();
  c.add_option("--approx", o.approx,
               "γ > 0: sketched leverage scores, each within a factor 1+γ with probability ≥ 1 − failure");
  c.add_option("--failure", o.failure, "Per-key failure probability of --approx, in (0, 1)")->capture_default_str();
  c.add_option("--seed", o.seed, "Seed of the sketch and projection (--approx)")->capture_default_str();
}

void check_score_kind(const ScoreKindOptions& o, double ridge) {
  if (o.approx && o.p != 2.0) throw UsageError("--approx gives ℓ2 leverage scores: it cannot be combined with --p ≠ 2");
  if (ridge != 0.0 && (o.approx || o.p != 2.0)) throw UsageError("--ridge applies to exact ℓ2 leverage scores only");
  if (o.approx) require(*o.approx > 0.0, "--approx: gamma must be > 0, got " + std::to_string(*o.approx));
}

KeyScoreOptions key_score_options(const ScoreKindOptions& o, double ridge, double rcond) {
  KeyScoreOptions k;
  k.p = o.p;
  k.approx = o.approx.value_or(0.0);
  k.failure = o.failure;
  k.seed = o.seed;
  k.ridge = ridge;
  k.rcond = rcond;
  return k;
}

KeyScores head_key_scores(const HeadArray& keys, index_t h, const KeyScoreOptions& options, bool sensitivities) {
  return with_typed_head(keys, h, [&](auto head) { return compute_key_scores(head, options, sensitivities); });
}

nlohmann::json key_scores_report(const KeyScores& s, const ScoreKindOptions& o) {
  if (o.approx) {
    const ApproxLeveragePlan& plan = s.plan;
    return {{"method", s.method},
            {"gamma", *o.approx},
            {"failure_bound", plan.failure()},
            {"sketch_rows", plan.sketch_rows},
            {"projection_columns", plan.jl_columns},
            {"distortion", plan.distortion},
            {"float_scores", plan.float_scores},
            {"rounding_estimate", plan.rounding},
            {"seed", o.seed}};
  }
  if (o.p != 2.0)
    return {{"method", s.method},
            {"p", o.p},
            {"iterations", s.lewis_iterations},
            {"residual", s.lewis_residual},
            {"limited_by_rounding", s.lewis_limited_by_rounding},
            {"sensitivity_factor", s.sensitivity_factor}};
  return {{"method", s.method}};
}

}  // namespace levattn::cli
