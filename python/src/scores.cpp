// Key scores (leverage, sketched leverage, Lewis weights), universal sets and heavy entries of one
// head: keys (n, d) as C-contiguous float32, float16 or bfloat16 (keys_type), queries (m, d) float32.
#include <pybind11/stl.h>

#include "arrays.hpp"
#include "bindings.hpp"
#include "levattn/attention/heavy.hpp"
#include "levattn/attention/power_heavy.hpp"
#include "levattn/scores/lewis.hpp"
#include "levattn/select/key_scores.hpp"

namespace levattn::python {

namespace {

KeyScoreOptions key_score_options(double p, double approx, double failure, std::uint64_t seed, double ridge,
                                  double rcond) {
  KeyScoreOptions o;
  o.p = p;
  o.approx = approx;
  o.failure = failure;
  o.seed = seed;
  o.ridge = ridge;
  o.rcond = rcond;
  check_key_score_options(o);
  return o;
}

py::dict scores_info(const KeyScores& s, bool approx) {
  py::dict info;
  info["method"] = s.method;
  info["rank"] = s.rank;
  if (approx) {
    info["failure_bound"] = s.plan.failure();
    info["sketch_rows"] = s.plan.sketch_rows;
    info["projection_columns"] = s.plan.jl_columns;
    info["float_scores"] = s.plan.float_scores;
  }
  if (s.lewis_iterations > 0) {
    info["iterations"] = s.lewis_iterations;
    info["residual"] = s.lewis_residual;
    info["limited_by_rounding"] = s.lewis_limited_by_rounding;
    info["sensitivity_factor"] = s.sensitivity_factor;
  }
  return info;
}

// (scores (n,) float64, info): leverage scores, sketched scores or Lewis weights.
// 16-bit keys (keys_type "float16"/"bfloat16") are read as they are for exact ℓ2 scores.
py::tuple key_scores_binding(const py::array& keys, double p, double approx, double failure, std::uint64_t seed,
                             double ridge, double rcond, int threads, const std::string& keys_type) {
  const TypedMatrix K = as_typed_matrix(keys, keys_type, "k");
  const KeyScoreOptions options = key_score_options(p, approx, failure, seed, ridge, rcond);
  KeyScores s;
  {
    py::gil_scoped_release unlocked;
    ThreadScope scope(threads);
    s = with_typed(K, [&](auto view) { return compute_key_scores(view, options, false); });
  }
  return py::make_tuple(double_array(s.values), scores_info(s, approx > 0.0));
}

// (weights (n,), info) of the ℓp Lewis fixed point.
py::tuple lewis_binding(const py::array& keys, double p, double tolerance, double stall_tolerance,
                        index_t max_iterations, double rcond, bool accelerate, int threads,
                        const std::string& keys_type) {
  const TypedMatrix K = as_typed_matrix(keys, keys_type, "k");
  LewisOptions o;
  o.tolerance = tolerance;
  o.stall_tolerance = stall_tolerance;
  o.max_iterations = max_iterations;
  o.rcond = rcond;
  o.accelerate = accelerate;
  LewisWeights w;
  {
    py::gil_scoped_release unlocked;
    ThreadScope scope(threads);
    w = with_typed(K, [&](auto view) { return lewis_weights(view, p, o); });
  }
  py::dict info;
  info["method"] = w.method;
  info["rank"] = w.rank;
  info["iterations"] = w.iterations;
  info["residual"] = w.residual;
  info["limited_by_rounding"] = w.limited_by_rounding;
  info["sensitivity_factor"] = w.sensitivity_factor();
  return py::make_tuple(double_array(w.weights), info);
}

// (indices int64 ascending, scores float64, bound, within_bound, info): the threshold set
// (eps > 0) or the top-k set (top_k > 0) by the scores of key_scores.hpp (Lewis sensitivities).
py::tuple universal_set_binding(const py::array& keys, double eps, index_t top_k, double p, double approx,
                                double failure, std::uint64_t seed, double rcond, int threads,
                                const std::string& keys_type) {
  const TypedMatrix K = as_typed_matrix(keys, keys_type, "k");
  if (eps > 0.0) check_eps(eps);
  require(top_k <= K.rows, "top_k = " + std::to_string(top_k) + " exceeds the number of keys n = " +
                               std::to_string(K.rows));  // before the scores are computed
  const KeyScoreOptions options = key_score_options(p, approx, failure, seed, 0.0, rcond);
  KeyScores s;
  UniversalSet u;
  {
    py::gil_scoped_release unlocked;
    ThreadScope scope(threads);
    s = with_typed(K, [&](auto view) { return compute_key_scores(view, options, true); });
    u = key_universal_set(s, eps, top_k);
  }
  return py::make_tuple(int64_array(u.indices), double_array(u.scores), u.bound, u.within_bound,
                        scores_info(s, approx > 0.0));
}

// (query, key, score, info): every entry A ≥ ε of |x|^p attention of queries over keys. 16-bit keys
// are read as they are.
py::tuple heavy_binding(const py::array& queries, const py::array& keys, double eps, double p, double delta,
                        std::uint64_t seed, double rcond, int threads, const std::string& keys_type) {
  const ConstMatrixF Q = as_matrix(queries, "q");
  const TypedMatrix K = as_typed_matrix(keys, keys_type, "k");
  require(Q.cols == K.cols, "heavy_entries: q and k must have the same width d, got " + std::to_string(Q.cols) +
                                " and " + std::to_string(K.cols));
  check_eps(eps);
  check_power_exponent(p);
  require(delta > 0.0 && delta < 1.0, "delta must lie in (0, 1), got " + std::to_string(delta));
  std::vector<index_t> qi, ki;
  std::vector<double> score;
  const HeavySink sink = [&](const HeavyEntry* e, index_t count) {
    for (index_t i = 0; i < count; ++i) {
      qi.push_back(e[i].query);
      ki.push_back(e[i].key);
      score.push_back(e[i].score);
    }
  };
  py::dict info;
  HeavyStats stats;
  index_t uset = 0, scanned = 0;
  double bound = 0.0;
  bool estimated = false;
  {
    py::gil_scoped_release unlocked;
    ThreadScope scope(threads);
    if (p == 2.0) {
      const HeavySearch search = with_typed(K, [&](auto view) { return HeavySearch(view, eps, rcond); });
      stats = search.run(Q, sink);
      uset = search.universal_set().size();
      bound = search.universal_set().bound;
      scanned = search.scanned_keys();
    } else {
      PowerHeavyOptions o;
      o.lewis.rcond = rcond;
      o.normaliser.delta = delta;
      o.normaliser.seed = seed;
      const PowerHeavySearch search = with_typed(K, [&](auto view) { return PowerHeavySearch(view, p, eps, o); });
      stats = search.run(Q, sink);
      uset = search.universal_set().size();
      bound = search.universal_set().bound;
      scanned = search.scanned_keys();
      estimated = search.estimated();
    }
  }
  info["universal_set_size"] = uset;
  info["bound"] = bound;
  info["scanned_keys"] = scanned;
  info["zero_queries"] = stats.zero_queries;
  info["fallback_queries"] = stats.fallback_queries;
  info["estimated"] = estimated;
  return py::make_tuple(int64_array(qi), int64_array(ki), double_array(score), info);
}

}  // namespace

void bind_scores(py::module_& m) {
  m.def("key_scores", &key_scores_binding, py::arg("k"), py::arg("p"), py::arg("approx"), py::arg("failure"),
        py::arg("seed"), py::arg("ridge"), py::arg("rcond"), py::arg("threads"), py::arg("keys_type") = "float32");
  m.def("lewis_weights", &lewis_binding, py::arg("k"), py::arg("p"), py::arg("tolerance"), py::arg("stall_tolerance"),
        py::arg("max_iterations"), py::arg("rcond"), py::arg("accelerate"), py::arg("threads"),
        py::arg("keys_type") = "float32");
  m.def("universal_set", &universal_set_binding, py::arg("k"), py::arg("eps"), py::arg("top_k"), py::arg("p"),
        py::arg("approx"), py::arg("failure"), py::arg("seed"), py::arg("rcond"), py::arg("threads"),
        py::arg("keys_type") = "float32");
  m.def("heavy_entries", &heavy_binding, py::arg("q"), py::arg("k"), py::arg("eps"), py::arg("p"), py::arg("delta"),
        py::arg("seed"), py::arg("rcond"), py::arg("threads"), py::arg("keys_type") = "float32");
  m.attr("DEFAULT_RCOND") = kDefaultRcond;
}

}  // namespace levattn::python
