#include "score_kinds.hpp"

#include <numeric>

#include "levattn/scores/approx_leverage.hpp"
#include "levattn/scores/leverage.hpp"
#include "levattn/scores/lewis.hpp"
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
}

KeyScores compute_key_scores(ConstMatrixF keys, const ScoreKindOptions& o, double ridge, double rcond,
                             bool sensitivities) {
  KeyScores out;
  if (o.approx) {
    ApproxLeverageOptions a;
    a.gamma = *o.approx;
    a.failure = o.failure;
    a.seed = o.seed;
    a.rcond = rcond;
    ApproxLeverageScorer scorer(keys.cols, a);
    scorer.fit(keys);
    out.values = scorer.scores(keys);
    out.rank = scorer.rank();
    out.threshold_factor = 1.0 / (1.0 + a.gamma);
    out.bound_mass = (1.0 + a.gamma) * double(out.rank);
    const ApproxLeveragePlan& plan = scorer.plan();
    out.report = {{"method", plan.sketched ? "sketched" : "exact (cheaper than any sketch meeting gamma)"},
                  {"gamma", a.gamma},
                  {"failure_bound", plan.failure()},
                  {"sketch_rows", plan.sketch_rows},
                  {"projection_columns", plan.jl_columns},
                  {"distortion", plan.distortion},
                  {"float_scores", plan.float_scores},
                  {"rounding_estimate", plan.rounding},
                  {"seed", o.seed}};
  } else if (o.p != 2.0) {
    const LewisWeights w = lewis_weights(keys, o.p, LewisOptions{1e-6, 300, rcond});
    out.values = sensitivities ? w.sensitivities() : w.weights;
    out.rank = w.rank;
    out.bound_mass = std::accumulate(out.values.begin(), out.values.end(), 0.0);
    if (!sensitivities) out.bound_mass *= w.sensitivity_factor();
    out.report = {{"method", "lewis weights: " + w.method}, {"p", o.p}, {"iterations", w.iterations},
                  {"residual", w.residual}, {"sensitivity_factor", w.sensitivity_factor()}};
  } else {
    LeverageScorer scorer(keys.cols, {ridge, rcond});
    scorer.fit(keys);
    out.values = scorer.scores(keys);
    out.rank = scorer.rank();
    out.bound_mass = double(out.rank);
    out.report = {{"method", "exact leverage"}};
  }
  return out;
}

}  // namespace levattn::cli
