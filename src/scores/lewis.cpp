#include "levattn/scores/lewis.hpp"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <utility>

#include "anderson_mixing.hpp"
#include "levattn/core/finite_rows.hpp"
#include "levattn/linalg/gram.hpp"
#include "linalg/gram_eigen.hpp"
#include "linalg/scaled_rows.hpp"

namespace levattn {

namespace {

using Mat = linalg::RowMatrixD;

constexpr double kMinusInf = -std::numeric_limits<double>::infinity();
constexpr int kMaxRefusals = 3;   // over-relaxed steps refused before falling back (p < 2)
constexpr int kMaxHalvings = 40;  // Armijo halvings of one step (p ≥ 4)
constexpr double kArmijo = 1e-4;
constexpr double kObjectiveNoise = 1e-9;   // relative rounding allowance of f
constexpr std::size_t kAndersonDepth = 3;  // differences kept by the Anderson acceleration (p < 4)
constexpr index_t kMinStallWindow = 20;    // evaluations without halving the residual: rounding

// One weighted leverage-score evaluation at log-weights v (−∞ for zero weights).
struct Evaluation {
  std::vector<double> log_phi;  // log φ(w)_j (−∞ where φ = 0)
  double residual = 0.0;        // max_j |φ_j − w_j| / max(φ_j, w_j)
  double objective = 0.0;       // f(w), p ≥ 4 only
  index_t rank = 0;
};

// The Cohen–Peng map on keys of element type T (float, Half or BFloat16), read as they are.
template <class T>
class LewisMap {
 public:
  LewisMap(MatrixView<const T> keys, double p, double rcond) : keys_(keys), p_(p), rcond_(rcond) {
    require_finite_rows(keys, "keys");
    // Power-of-two pre-scaling (exact) so that scaled rows stay below 1 in magnitude.
    shift_ = linalg::pow2_shift(keys);
  }

  // Evaluates at v into `out`, whose buffers are reused from call to call.
  void operator()(const std::vector<double>& v, Evaluation& out) const {
    const index_t n = keys_.rows, d = keys_.cols;
    const double alpha = 1.0 - 2.0 / p_;  // u = w^alpha
    double log_umax = kMinusInf;
#pragma omp parallel for schedule(static) reduction(max : log_umax)
    for (index_t j = 0; j < n; ++j)
      if (v[j] > kMinusInf) log_umax = std::max(log_umax, alpha * v[j]);
    std::vector<double>& scale = scale_;
    scale.resize(static_cast<size_t>(n));
    const double two_shift = std::ldexp(1.0, shift_);
#pragma omp parallel for schedule(static)
    for (index_t j = 0; j < n; ++j)
      scale[j] = v[j] > kMinusInf ? two_shift * std::exp(0.5 * (alpha * v[j] - log_umax)) : 0.0;
    GramSummary summary(d);
    summary.add(keys_, scale.data());
    const std::vector<double> G = summary.gram();
    const GramFactors factors = factor_gram(G, d, 0.0, rcond_);
    out.rank = factors.rank;
    std::vector<double>& t = t_;
    t.resize(static_cast<size_t>(n));
    factors.inverse_root.sum_squares(keys_, t.data(), "keys");
    // t_j = k_jᵀ(c²·KᵀU'K)⁺k_j with c = 2^shift, U' = U/u_max, so τ'_j = c²·t_j/u_max.
    const double log_offset = 2.0 * shift_ * std::log(2.0) - log_umax;
    out.log_phi.resize(static_cast<size_t>(n));
    double worst = 0.0;
#pragma omp parallel for schedule(static) reduction(max : worst)
    for (index_t j = 0; j < n; ++j) {
      const double lp = t[j] > 0.0 ? 0.5 * p_ * (std::log(t[j]) + log_offset) : kMinusInf;
      out.log_phi[j] = lp;
      if (lp == kMinusInf && v[j] == kMinusInf) continue;
      const double gap = (lp == kMinusInf || v[j] == kMinusInf) ? INFINITY : std::fabs(lp - v[j]);
      worst = std::max(worst, -std::expm1(-gap));  // 1 − e^{−gap} = |φ − w| / max(φ, w)
    }
    out.residual = worst;
    if (p_ >= 4.0) {  // the line search's objective (p ≥ 4 only)
      // f(w) = −log det(KᵀUK) + (1−2/p)Σw, with log det(KᵀUK) = log det G − r·log_offset'…
      // G = c²/u_max · KᵀUK: log det(KᵀUK) = log det G − r·(2·shift·ln 2 − log u_max).
      // log pdet(G) = log det(BᵀGB), B an orthonormal basis of range(G) = range(Kᵀ), which
      // positive weights never change (fixed at the first evaluation).
      const Eigen::Map<const Mat> g(G.data(), d, d);
      if (basis_.cols() == 0) basis_ = range_basis(g, factors.rank);
      const Mat projected = basis_.transpose() * g * basis_;
      const Eigen::LDLT<Mat> ldlt(projected);
      double log_det = 0.0;
      for (index_t i = 0; i < projected.rows(); ++i) log_det += std::log(std::fabs(ldlt.vectorD()(i)));
      log_det -= double(factors.rank) * log_offset;
      double total = 0.0;
      for (index_t j = 0; j < n; ++j)
        if (v[j] > kMinusInf) total += std::exp(v[j]);
      out.objective = -log_det + alpha * total;
    }
  }

 private:
  // An orthonormal basis of the span of the `rank` largest directions of the equilibrated G.
  static Mat range_basis(const Eigen::Map<const Mat>& g, index_t rank) {
    const index_t d = g.rows();
    const linalg::EquilibratedEigen eig = linalg::equilibrated_eigen(g, 0.0);
    Eigen::VectorXd sqrt_diag(d);  // D^{1/2}, 1 on zero columns as in the equilibration
    for (index_t i = 0; i < d; ++i) sqrt_diag(i) = g(i, i) > 0.0 ? std::sqrt(g(i, i)) : 1.0;
    const Mat span = sqrt_diag.asDiagonal() * eig.eigenvectors.rightCols(rank);
    const Eigen::HouseholderQR<Mat> qr(span);
    return qr.householderQ() * Mat::Identity(d, rank);
  }

  MatrixView<const T> keys_;
  double p_, rcond_;
  int shift_ = 0;
  mutable Mat basis_;                      // p ≥ 4: fixed at the first evaluation
  mutable std::vector<double> scale_, t_;  // scratch reused across evaluations
};

// max_j |log φ_j − log w_j| from the relative residual 1 − e^{−gap}.
double log_gap(double residual) { return -std::log1p(-residual); }

void step(const std::vector<double>& v, const std::vector<double>& log_phi, double beta, std::vector<double>& out) {
  out.resize(v.size());
#pragma omp parallel for schedule(static)
  for (size_t j = 0; j < v.size(); ++j)
    out[j] = (v[j] == kMinusInf || log_phi[j] == kMinusInf) ? kMinusInf : v[j] + beta * (log_phi[j] - v[j]);
}

// ∇_v f · Δv for Δv = β(log φ − v): Σ_j (1−2/p)(w_j − σ_j)·Δv_j, σ_j = w_j·(φ_j/w_j)^{2/p}.
double slope(const std::vector<double>& v, const std::vector<double>& log_phi, double beta, double p) {
  double s = 0.0;
  for (size_t j = 0; j < v.size(); ++j) {
    if (v[j] == kMinusInf || log_phi[j] == kMinusInf) continue;
    const double g = log_phi[j] - v[j];
    const double w = std::exp(v[j]);
    s += (1.0 - 2.0 / p) * (w - w * std::exp(2.0 / p * g)) * beta * g;
  }
  return s;
}

// "mirror descent" (p ≥ 4), else "cohen-peng" with the accelerations that were on, e.g.
// "cohen-peng (over-relaxed, anderson abandoned)".
std::string method_name(double p, bool anderson_requested, bool anderson_kept, bool over_relaxed) {
  if (p >= 4.0) return "mirror descent";
  std::string extras;
  if (p < 2.0) extras = over_relaxed ? "over-relaxed" : "over-relaxation abandoned";
  if (anderson_requested)
    extras += std::string(extras.empty() ? "" : ", ") + (anderson_kept ? "anderson" : "anderson abandoned");
  return extras.empty() ? "cohen-peng" : "cohen-peng (" + extras + ")";
}

}  // namespace

double LewisWeights::sensitivity_factor() const {
  return p <= 2.0 ? 1.0 : std::pow(static_cast<double>(rank), p / 2.0 - 1.0);
}

std::vector<double> LewisWeights::sensitivities() const {
  const double f = sensitivity_factor();
  std::vector<double> s(weights.size());
  for (size_t j = 0; j < s.size(); ++j) s[j] = f * weights[j];
  return s;
}

void check_power_exponent(double p) {
  if (p > 0.0 && std::isfinite(p)) return;
  std::ostringstream msg;
  msg << "p must be finite and > 0, got " << p;
  throw Error(ErrorKind::bad_input, msg.str());
}

namespace {

template <class T>
LewisWeights lewis_weights_of(MatrixView<const T> keys, double p, const LewisOptions& o) {
  check_power_exponent(p);
  require(keys.rows >= 1 && keys.cols >= 1,
          "keys: need at least one key of dimension ≥ 1, got " + shape_string(keys.rows, keys.cols));
  require(o.tolerance > 0.0 && o.tolerance < 1.0, "Lewis weights: tolerance must lie in (0, 1)");
  require(o.max_iterations >= 1, "Lewis weights: max_iterations must be ≥ 1");
  require(o.stall_tolerance > 0.0 && o.stall_tolerance < 1.0, "Lewis weights: stall_tolerance must lie in (0, 1)");
  const LewisMap<T> map(keys, p, o.rcond);

  LewisWeights out;
  out.p = p;
  const double beta_fast = 4.0 / (p + 2.0);
  bool over_relaxed = p < 2.0;
  int refusals = 0;
  // Anderson acceleration (p < 4): a proposal is kept only if it shrinks the largest log-gap by the
  // factor the plain Cohen–Peng step guarantees; after kMaxRefusals failures it is switched off.
  const double contraction = std::fabs(1.0 - p / 2.0);
  bool accelerate = o.accelerate && p < 4.0 && p != 2.0;
  int anderson_refusals = 0;
  detail::AndersonMixing anderson(kAndersonDepth, std::min(1.0, beta_fast));

  std::vector<double> v(static_cast<size_t>(keys.rows), 0.0);  // w = 1
  Evaluation at, there;
  std::vector<double> next;
  map(v, at);
  index_t evaluations = 1;
  bool first = true;
  // The rounding floor (see lewis.hpp): the best iterate so far, and the accepted step at which the
  // residual last halved. Counted in accepted steps, not evaluations: refused proposals and line
  // search halvings spend evaluations without moving.
  const double slowest = std::clamp(p < 4.0 ? contraction : (p - 2.0) / (p + 2.0), 1e-3, 0.999);
  const index_t stall_window =
      std::max<index_t>(kMinStallWindow, static_cast<index_t>(std::ceil(3.0 * std::log(2.0) / -std::log(slowest))));
  std::vector<double> best_v = v;
  Evaluation best = at;
  double halved_to = at.residual;
  index_t steps = 0, halved_at = 0;
  bool stalled = false;
  while (at.residual > o.tolerance) {
    if (at.residual < best.residual) {
      best = at;
      best_v = v;
    }
    if (at.residual <= 0.5 * halved_to) {
      halved_to = at.residual;
      halved_at = steps;
    }
    if (best.residual <= o.stall_tolerance && steps - halved_at >= stall_window) {
      stalled = true;
      break;
    }
    if (evaluations >= o.max_iterations) {
      std::ostringstream msg;
      msg << "Lewis weights (p = " << p << ") did not converge: relative residual " << at.residual << " after "
          << evaluations << " iterations (best " << best.residual << ")";
      throw Error(ErrorKind::failure, msg.str());
    }
    // From the second step on (w = 1 is no useful history), propose from the recorded iterates;
    // with fewer than two recorded, or after a refusal cleared them, take the plain step below.
    if (accelerate && !first) {
      anderson.record(v, at.log_phi);
      if (anderson.history() >= 1) {
        anderson.propose(next);
        map(next, there);
        ++evaluations;
        if (log_gap(there.residual) <= contraction * log_gap(at.residual)) {
          v.swap(next);
          std::swap(at, there);
          ++steps;
          continue;
        }
        anderson.clear();
        if (++anderson_refusals >= kMaxRefusals) accelerate = false;
        continue;
      }
    }
    // The first step from w = 1 is the plain Cohen–Peng step (w ← τ^{p/2}) for p < 4.
    double beta = (first && p < 4.0) ? 1.0 : (over_relaxed || p >= 2.0) ? beta_fast : 1.0;
    for (int halvings = 0;; ++halvings) {
      step(v, at.log_phi, beta, next);
      map(next, there);
      ++evaluations;
      bool accept = true;
      if (p < 2.0 && beta > 1.0 && there.residual > at.residual) {
        accept = false;
        if (++refusals >= kMaxRefusals) over_relaxed = false;
        beta = 1.0;
      } else if (p >= 4.0) {
        // f carries rounding (measured ~1e-10 relative); once the predicted decrease is below
        // kObjectiveNoise·|f| Armijo cannot decide, and the step is taken: that close to the
        // fixed point the full step contracts the error by (p−2)/(p+2).
        const double predicted = slope(v, at.log_phi, beta, p);
        const double noise = kObjectiveNoise * (std::fabs(at.objective) + double(at.rank));
        const bool better = -predicted <= noise || there.objective <= at.objective + kArmijo * predicted;
        if (!better && halvings < kMaxHalvings) {
          accept = false;
          beta *= 0.5;
        }
      }
      if (accept) {
        v.swap(next);
        std::swap(at, there);
        ++steps;
        break;
      }
      if (evaluations >= o.max_iterations) break;
    }
    first = false;
  }
  if (stalled) {
    v.swap(best_v);
    std::swap(at, best);
    out.limited_by_rounding = true;
  }
  out.method = method_name(p, o.accelerate && p != 2.0, accelerate, over_relaxed);
  out.weights.resize(v.size());
  for (size_t j = 0; j < v.size(); ++j) out.weights[j] = v[j] == kMinusInf ? 0.0 : std::exp(v[j]);
  out.rank = at.rank;
  out.cut_directions = keys.cols - at.rank;
  out.iterations = evaluations;
  out.residual = at.residual;
  return out;
}

}  // namespace

LewisWeights lewis_weights(ConstMatrixF keys, double p, const LewisOptions& options) {
  return lewis_weights_of(keys, p, options);
}
LewisWeights lewis_weights(MatrixView<const Half> keys, double p, const LewisOptions& options) {
  return lewis_weights_of(keys, p, options);
}
LewisWeights lewis_weights(MatrixView<const BFloat16> keys, double p, const LewisOptions& options) {
  return lewis_weights_of(keys, p, options);
}

}  // namespace levattn
