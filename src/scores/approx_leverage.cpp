#include "levattn/scores/approx_leverage.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "core/first_error.hpp"
#include "levattn/core/finite_rows.hpp"
#include "linalg/blas.hpp"
#include "linalg/counter_random.hpp"
#include "linalg/widen_rows.hpp"
#include "scores/beta_distribution.hpp"

namespace levattn {

namespace {

using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr std::uint64_t kStreamProjection = 11;
constexpr index_t kMaxSketchRows = index_t{1} << 28;
constexpr index_t kScoreTile = 1024;  // rows per float GEMM of the projection

// Costs relative to one multiply-add of the exact pipeline's double kernels, calibrated by
// measurement (figures, machine and date: BENCHMARKS.md, "Issue 4", cost model). A sketch
// nonzero's cost per key entry is a gather of the key row and an update of an L2-resident band of
// sketch rows, bound by memory; it grows with m (the bands are reloaded per pass) and, through
// fixed per-pass work, at small d.
// automatic sketches only when the model predicts at most kSketchMargin of the exact cost: the
// constants were fitted on one CPU (an Intel Xeon) and are off by up to 1.15× on another (an AMD
// EPYC, d = 64: predicted 0.99× the exact time, measured 1.13×), so a near tie goes to the exact
// scores, which are never slower than themselves and carry no failure probability.
constexpr double kSketchMargin = 0.8;
constexpr double kCostFloatGemm = 0.6;
constexpr double kCostFloatTrapezoid = 0.7;
double scatter_cost(index_t m, index_t d) { return 24.0 + 6.2e-4 * double(m) + 640.0 / double(d); }

// Float rounding of the scores gets this share of γ: the sketch and projection are planned for
// γ_s with (1 + γ_s)(1 + γ/20) = 1 + γ, and the k = r scores run in float only when their
// estimated rounding (float_rounding) fits in γ/20.
constexpr double kRoundingShare = 1.0 / 20.0;
double sketch_gamma(double gamma) { return (1.0 + gamma) / (1.0 + kRoundingShare * gamma) - 1.0; }

// Estimated relative error of a score ‖T k‖² formed in float: 2·d·2⁻²⁴·cond(T), with cond(T) the
// square root of the ratio of the largest to the smallest kept eigenvalue of the equilibrated
// sketched Gram matrix. An estimate of the usual size of the error, not a worst-case bound
// (which carries another factor √d): the tests measure it against double scores.
double float_rounding(index_t d, const GramFactors& f) {
  if (f.rank == 0) return 0.0;
  const double cond = std::sqrt(f.eigenvalues.front() / f.eigenvalues[static_cast<size_t>(f.rank - 1)]);
  return 2.0 * double(d) * std::ldexp(1.0, -24) * cond;
}

double distortion(index_t r, index_t m, double sketch_failure) {
  return std::sqrt(double(r) / double(m)) + std::sqrt(2.0 * std::log(2.0 / sketch_failure) / double(m));
}

// P(X ∉ [lo, hi]) for X = (r/k)·Beta(k/2, (r−k)/2), k < r.
double outside(index_t r, index_t k, double lo, double hi) {
  const double a = 0.5 * double(k), b = 0.5 * double(r - k), f = double(k) / double(r);
  const double below = detail::incomplete_beta(a, b, std::clamp(lo * f, 0.0, 1.0));
  const double above = 1.0 - detail::incomplete_beta(a, b, std::clamp(hi * f, 0.0, 1.0));
  return below + above;
}

// Fills eta, projection_failure and scale of `plan` for rank r (k = plan.jl_columns ≤ r).
void finish_plan(ApproxLeveragePlan& plan, index_t r, double gamma) {
  plan.distortion = distortion(r, plan.sketch_rows, plan.sketch_failure);
  const double eta = plan.distortion;
  const double A = (1 + eta) * (1 + eta) / (1 + gamma);
  const double B = eta < 1 ? (1 + gamma) * (1 - eta) * (1 - eta) : 0.0;
  if (plan.jl_columns >= r) {
    plan.jl_columns = r;
    plan.scale = B > 0 ? std::sqrt(A * B) : 1.0;
    plan.projection_failure = A <= B ? 0.0 : 1.0;
    return;
  }
  if (!(B > A)) {
    plan.scale = 1.0;
    plan.projection_failure = 1.0;
    return;
  }
  // Golden-section search over log c for the most probable window [A/c, B/c].
  const index_t k = plan.jl_columns;
  const auto miss = [&](double log_c) { return outside(r, k, A / std::exp(log_c), B / std::exp(log_c)); };
  double lo = std::log(A) - 1.0, hi = std::log(B) + 1.0;
  constexpr double kGolden = 0.6180339887498949;
  double x1 = hi - kGolden * (hi - lo), x2 = lo + kGolden * (hi - lo);
  double f1 = miss(x1), f2 = miss(x2);
  for (int it = 0; it < 80; ++it) {
    if (f1 <= f2) {
      hi = x2, x2 = x1, f2 = f1;
      x1 = hi - kGolden * (hi - lo), f1 = miss(x1);
    } else {
      lo = x1, x1 = x2, f1 = f2;
      x2 = lo + kGolden * (hi - lo), f2 = miss(x2);
    }
  }
  const double best = 0.5 * (lo + hi);
  plan.scale = std::exp(best);
  plan.projection_failure = miss(best);
}

double sketched_cost(index_t n, index_t d, index_t s, index_t m, index_t k) {
  const double nd = double(n) * double(d);
  // k = d: the float trapezoid kernel, as planned (double, one unit, if cond(T) turns out too large).
  const double scoring = k >= d ? kCostFloatTrapezoid * 0.5 * nd * double(d) : kCostFloatGemm * nd * double(k);
  return scatter_cost(m, d) * nd * double(s) + double(m) * d * d + scoring + double(d) * d * d;
}

// The smallest m meeting the failure target for projection width k (rank r), or 0 if none.
index_t rows_needed(index_t r, index_t k, double gamma, double failure) {
  ApproxLeveragePlan p;
  p.jl_columns = k;
  p.sketch_failure = k >= r ? failure : failure / 10;
  const auto ok = [&](index_t m) {
    p.sketch_rows = m;
    p.jl_columns = k;
    finish_plan(p, r, gamma);
    return p.failure() <= failure;
  };
  if (!ok(kMaxSketchRows)) return 0;
  index_t lo = std::max<index_t>(r, 1), hi = kMaxSketchRows;
  if (ok(lo)) return lo;
  while (hi - lo > 1) {
    const index_t mid = lo + (hi - lo) / 2;
    (ok(mid) ? hi : lo) = mid;
  }
  return hi;
}

void check_options(index_t d, const ApproxLeverageOptions& o) {
  require(d >= 1, "approximate leverage: dimension must be at least 1");
  require(o.gamma > 0.0 && std::isfinite(o.gamma),
          "approximate leverage: gamma must be finite and > 0, got " + std::to_string(o.gamma));
  require(o.failure > 0.0 && o.failure < 1.0,
          "approximate leverage: failure probability must lie in (0, 1), got " + std::to_string(o.failure));
  require(o.sketch_rows >= 0 && o.jl_columns >= 0, "approximate leverage: negative override");
}

}  // namespace

ApproxLeveragePlan plan_approx_leverage(index_t n, index_t d, const ApproxLeverageOptions& o) {
  check_options(d, o);
  ApproxLeveragePlan best;
  if (o.method == ApproxMethod::exact) return best;
  const index_t s = o.sketch == SketchKind::sparse_sign ? o.nonzeros : 1;
  if (o.sketch_rows > 0 || o.jl_columns > 0) {  // explicit overrides: report what they give
    best.sketched = true;
    best.jl_columns = o.jl_columns > 0 ? o.jl_columns : d;
    best.sketch_failure = best.jl_columns >= d ? o.failure : o.failure / 10;
    best.sketch_rows =
        o.sketch_rows > 0 ? o.sketch_rows : rows_needed(d, best.jl_columns, sketch_gamma(o.gamma), o.failure);
    // A projection too narrow for δ at any m: a sketch of 256·d rows, and the failure it gives.
    if (best.sketch_rows == 0) best.sketch_rows = 256 * d;
    finish_plan(best, d, sketch_gamma(o.gamma));
    return best;
  }
  double best_cost =
      o.method == ApproxMethod::automatic ? kSketchMargin * (1.5 * double(n) * d * d + double(d) * d * d) : INFINITY;
  for (const index_t k : {d, 3 * d / 4, d / 2, 3 * d / 8, d / 4, d / 8}) {
    if (k < 2) continue;
    const index_t m = rows_needed(d, k, sketch_gamma(o.gamma), o.failure);
    if (m == 0) continue;
    const double cost = sketched_cost(n, d, s, m, k);
    if (cost < best_cost) {
      best_cost = cost;
      best = ApproxLeveragePlan{};
      best.sketched = true;
      best.sketch_rows = m;
      best.jl_columns = k;
      best.sketch_failure = k >= d ? o.failure : o.failure / 10;
      finish_plan(best, d, sketch_gamma(o.gamma));
    }
  }
  require(best.sketched || o.method == ApproxMethod::automatic,
          "approximate leverage: no sketch size meets gamma and failure");
  return best;
}

ApproxLeverageScorer::ApproxLeverageScorer(index_t d, ApproxLeverageOptions options)
    : d_(d), options_(options), exact_(std::max<index_t>(d, 1), {0.0, options.rcond}) {
  check_options(d, options_);
}

template <class Elem>
ApproxLeverageScorer& ApproxLeverageScorer::fit_rows(MatrixView<const Elem> keys) {
  require(keys.cols == d_,
          "keys have " + std::to_string(keys.cols) + " columns, scorer has dimension " + std::to_string(d_));
  require(keys.rows >= 1, "keys: need at least one key");
  plan_ = plan_approx_leverage(keys.rows, d_, options_);
  projection_.clear();
  root_ = TrapezoidalForm();
  if (!plan_.sketched) {
    exact_.fit(keys);
    rank_ = exact_.rank();
    return *this;
  }
  Sketch sketch(d_, {options_.sketch, plan_.sketch_rows, options_.nonzeros, options_.seed});
  sketch.add(keys);
  const std::vector<double> sk = sketch.sketch();
  std::vector<double> G(static_cast<size_t>(d_ * d_), 0.0);
  linalg::dsyrk_upper(true, 1.0, ConstMatrixD(sk.data(), plan_.sketch_rows, d_), 0.0, MatrixD(G.data(), d_, d_));
  for (index_t a = 0; a < d_; ++a)
    for (index_t b = 0; b < a; ++b) G[a * d_ + b] = G[b * d_ + a];
  const GramFactors factors = factor_gram(G, d_, 0.0, options_.rcond);
  rank_ = factors.rank;
  finish_plan(plan_, std::max<index_t>(rank_, 1), sketch_gamma(options_.gamma));
  plan_.rounding = float_rounding(d_, factors);
  if (plan_.jl_columns >= rank_) {
    root_ = factors.inverse_root;
    plan_.float_scores = plan_.rounding <= kRoundingShare * options_.gamma;
    if (!plan_.float_scores) plan_.rounding = 0.0;  // double scores: rounding of order 1e-16·cond
    return *this;
  }
  plan_.float_scores = true;
  // Π = √(r/k)·Q, Q the first k columns of a Haar-random r×r orthogonal matrix (QR of a Gaussian
  // r×k matrix with the signs of R's diagonal moved into Q).
  const index_t r = rank_, k = plan_.jl_columns;
  Mat g(r, k);
  for (index_t i = 0; i < r; ++i)
    for (index_t j = 0; j < k; ++j)
      g(i, j) = detail::counter_normal(options_.seed, kStreamProjection, static_cast<std::uint64_t>(i),
                                       static_cast<std::uint64_t>(j));
  const Eigen::HouseholderQR<Mat> qr(g);
  Mat Q = qr.householderQ() * Mat::Identity(r, k);
  for (index_t j = 0; j < k; ++j)
    if (qr.matrixQR()(j, j) < 0) Q.col(j) = -Q.col(j);
  const std::vector<double> T = factors.inverse_root.dense();  // r × d
  const Eigen::Map<const Mat> t(T.data(), r, d_);
  const Mat M = t.transpose() * Q * std::sqrt(double(r) / double(k));  // d × k
  projection_.resize(static_cast<size_t>(d_ * k));
  for (index_t i = 0; i < d_ * k; ++i) projection_[i] = static_cast<float>(M.data()[i]);
  return *this;
}

template <class Elem>
void ApproxLeverageScorer::scores_rows(MatrixView<const Elem> keys, double* out) const {
  if (!plan_.sketched) {
    exact_.scores(keys, out);
    return;
  }
  require(keys.cols == d_, "keys: have " + std::to_string(keys.cols) + " columns, expected " + std::to_string(d_));
  const double c = plan_.scale;
  if (projection_.empty()) {
    if (rank_ == 0) {
      root_.sum_squares(keys, out, "keys");  // zeros, after checking the rows are finite
      return;
    }
    if (plan_.float_scores)
      root_.sum_squares_float32(keys, out, "keys");
    else
      root_.sum_squares(keys, out, "keys");
    for (index_t j = 0; j < keys.rows; ++j) out[j] *= c;
    return;
  }
  const index_t k = plan_.jl_columns;
  const index_t tiles = (keys.rows + kScoreTile - 1) / kScoreTile;
  index_t first_bad = keys.rows;
  FirstError error;  // the GEMM's dimension check, or scratch that does not fit
#pragma omp parallel reduction(min : first_bad)
  {
    std::vector<float> y, widened;  // allocated in the try: they may not fit
#pragma omp for schedule(static)
    for (index_t t = 0; t < tiles; ++t) {
      if (error.failed()) continue;
      try {
        if (y.empty()) y.resize(static_cast<size_t>(kScoreTile * k));
        if (!std::is_same_v<Elem, float> && widened.empty()) widened.resize(static_cast<size_t>(kScoreTile * d_));
        const index_t begin = t * kScoreTile, rows = std::min(kScoreTile, keys.rows - begin);
        ConstMatrixF tile;  // the tile's rows as float: in place, or widened
        if constexpr (std::is_same_v<Elem, float>) {
          tile = keys.rows_range(begin, begin + rows);
        } else {
          widen_rows(keys, begin, rows, widened.data());
          tile = ConstMatrixF(widened.data(), rows, d_);
        }
        linalg::sgemm(false, false, 1.0f, tile, ConstMatrixF(projection_.data(), d_, k), 0.0f,
                      MatrixF(y.data(), rows, k));
        for (index_t i = 0; i < rows; ++i) {
          const float* yi = y.data() + i * k;
          double sum = 0.0;
          for (index_t j = 0; j < k; ++j) sum += static_cast<double>(yi[j]) * yi[j];
          out[begin + i] = c * sum;
          if (!std::isfinite(sum)) first_bad = std::min(first_bad, begin + i);
        }
      } catch (...) {
        error.capture();
      }
    }
  }
  error.rethrow_if_any();
  if (first_bad < keys.rows) {
    // A NaN/Inf in the keys, or a float overflow of the product: name the row either way.
    require_finite_rows(keys, "keys");
    throw Error(ErrorKind::failure, "approximate leverage: float overflow projecting row " + std::to_string(first_bad));
  }
}

ApproxLeverageScorer& ApproxLeverageScorer::fit(ConstMatrixF keys) { return fit_rows(keys); }
ApproxLeverageScorer& ApproxLeverageScorer::fit(MatrixView<const Half> keys) { return fit_rows(keys); }
ApproxLeverageScorer& ApproxLeverageScorer::fit(MatrixView<const BFloat16> keys) { return fit_rows(keys); }

void ApproxLeverageScorer::scores(ConstMatrixF keys, double* out) const { scores_rows(keys, out); }
void ApproxLeverageScorer::scores(MatrixView<const Half> keys, double* out) const { scores_rows(keys, out); }
void ApproxLeverageScorer::scores(MatrixView<const BFloat16> keys, double* out) const { scores_rows(keys, out); }

namespace {
template <class T>
std::vector<double> scores_of(const ApproxLeverageScorer& scorer, MatrixView<const T> keys) {
  std::vector<double> out(static_cast<size_t>(keys.rows));
  scorer.scores(keys, out.data());
  return out;
}
}  // namespace

std::vector<double> ApproxLeverageScorer::scores(ConstMatrixF keys) const { return scores_of(*this, keys); }
std::vector<double> ApproxLeverageScorer::scores(MatrixView<const Half> keys) const { return scores_of(*this, keys); }
std::vector<double> ApproxLeverageScorer::scores(MatrixView<const BFloat16> keys) const {
  return scores_of(*this, keys);
}

}  // namespace levattn
