// KV-cache presses (eval/presses.hpp) and the per-query oracle (eval/query_rules.hpp) over
// batches of heads: keys (B, H_kv, n, d), context queries (B, H_q, n, d) with H_q a multiple of
// H_kv, as C-contiguous float32.
#include <pybind11/stl.h>

#include "arrays.hpp"
#include "bindings.hpp"
#include "levattn/eval/presses.hpp"
#include "levattn/eval/query_rules.hpp"

namespace levattn::python {

namespace {

std::string heads_shape(const ConstHeadsF& x) {
  return "(" + std::to_string(x.batch) + ", " + std::to_string(x.heads) + ", " + std::to_string(x.rows) + ", " +
         std::to_string(x.cols) + ")";
}

void check_groups(const ConstHeadsF& q, const ConstHeadsF& k, const char* what) {
  require(q.batch == k.batch && q.heads >= 1 && q.heads % k.heads == 0 && q.cols == k.cols,
          std::string(what) + ": q " + heads_shape(q) + " and k " + heads_shape(k) +
              " must share the batch and d, with query heads a multiple of key heads");
}

// (kept (B, H_kv, budget) int64 ascending, scores (B, H_kv, n) float64). q may be None for the
// key-only presses (and is not read by them).
py::tuple press_binding(const std::string& press, const py::object& queries, const py::array& keys, index_t budget,
                        const std::string& f, double scale, index_t window, index_t pool, index_t sinks,
                        std::uint64_t seed, double ridge_fraction, double gamma, double failure, double rcond,
                        int threads) {
  const ConstHeadsF K = as_heads(keys, "k");
  ConstHeadsF Q;
  py::array q_array;
  if (press_needs_queries(press)) {
    require(!queries.is_none(), "press '" + press + "' reads the context queries: pass q");
    q_array = queries.cast<py::array>();
    Q = as_heads(q_array, "q");
  }
  PressOptions o;
  o.attention.f = parse_score_function(f);
  o.attention.scale = scale;
  o.window = window;
  o.pool = pool;
  o.key_rules.sinks = sinks;
  o.key_rules.seed = seed;
  o.key_rules.ridge_fraction = ridge_fraction;
  o.key_rules.rcond = rcond;
  o.sketch.gamma = gamma;
  o.sketch.failure = failure;
  o.sketch.seed = seed;
  o.sketch.rcond = rcond;
  require(budget >= 1 && budget <= K.rows,
          "press: budget must lie in [1, n] = [1, " + std::to_string(K.rows) + "], got " + std::to_string(budget));
  py::array_t<std::int64_t> kept({K.batch, K.heads, budget});
  py::array_t<double> scores = new_double_array({K.batch, K.heads, K.rows});
  static_assert(sizeof(index_t) == sizeof(std::int64_t));
  index_t* kept_out = reinterpret_cast<index_t*>(kept.mutable_data());
  double* scores_out = scores.mutable_data();
  {
    py::gil_scoped_release unlocked;
    ThreadScope scope(threads);
    press_heads(press, Q, K, budget, o, kept_out, scores_out);
  }
  return py::make_tuple(kept, scores);
}

// kept (B, H_q, m, budget) int64: each query's own top-budget keys by f(c<q,k>).
py::array oracle_binding(const py::array& queries, const py::array& keys, index_t budget, const std::string& f,
                         double scale, int threads) {
  const ConstHeadsF Q = as_heads(queries, "q"), K = as_heads(keys, "k");
  check_groups(Q, K, "oracle");
  require(budget >= 1 && budget <= K.rows,
          "oracle: budget must lie in [1, n] = [1, " + std::to_string(K.rows) + "], got " + std::to_string(budget));
  AttentionOptions a;
  a.f = parse_score_function(f);
  a.scale = scale;
  const index_t m = Q.rows, per = Q.heads / K.heads;
  py::array_t<std::int64_t> kept({Q.batch, Q.heads, m, budget});
  std::int64_t* out = kept.mutable_data();
  {
    py::gil_scoped_release unlocked;
    ThreadScope scope(threads);
    const std::vector<float> unit(static_cast<size_t>(K.rows), 0.0f);  // values of width 1, unused
    for (index_t b = 0; b < Q.batch; ++b)
      for (index_t h = 0; h < Q.heads; ++h) {
        const OracleResult r =
            oracle_attention(Q.head(b, h), K.head(b, h / per), ConstMatrixF(unit.data(), K.rows, 1), a, budget);
        std::copy(r.kept.begin(), r.kept.end(), out + (b * Q.heads + h) * m * budget);
      }
  }
  return kept;
}

}  // namespace

void bind_presses(py::module_& m) {
  m.def("press", &press_binding, py::arg("press"), py::arg("q"), py::arg("k"), py::arg("budget"), py::arg("f"),
        py::arg("scale"), py::arg("window"), py::arg("pool"), py::arg("sinks"), py::arg("seed"),
        py::arg("ridge_fraction"), py::arg("gamma"), py::arg("failure"), py::arg("rcond"), py::arg("threads"));
  m.def("oracle_top_k", &oracle_binding, py::arg("q"), py::arg("k"), py::arg("budget"), py::arg("f"), py::arg("scale"),
        py::arg("threads"));
  m.def("press_needs_queries", &press_needs_queries, py::arg("press"));
  m.attr("PRESS_NAMES") = press_names();
}

}  // namespace levattn::python
