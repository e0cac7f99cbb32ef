// Exact attention, LevAttention and merging, over (batch, heads, rows, cols) float32 arrays.
#include <pybind11/stl.h>

#include "arrays.hpp"
#include "bindings.hpp"
#include "levattn/attention/backward.hpp"
#include "levattn/attention/exact.hpp"
#include "levattn/attention/lev_attention.hpp"

namespace levattn::python {

namespace {

AttentionOptions attention_options(const std::string& f, double scale, bool causal,
                                   const std::string& arithmetic = "f32") {
  AttentionOptions o;
  o.f = parse_score_function(f);
  o.scale = scale;  // checked by the library (0: the default)
  o.causal = causal;
  if (arithmetic != "f32" && arithmetic != "bf16")
    throw Error(ErrorKind::bad_input, "arithmetic must be 'f32' or 'bf16', got '" + arithmetic + "'");
  o.arithmetic = arithmetic == "bf16" ? Arithmetic::bf16 : Arithmetic::f32;
  return o;
}

// out (B, H_q, n_q, d_v) float32 and lse (B, H_q, n_q) float64 (or None) for queries of shape Q.
template <class QView, class VView, class Attend>
py::tuple run_exact(const QView& Q, const VView& V, bool want_lse, int threads, const Attend& attend) {
  py::array_t<float> out = new_float_array({Q.batch, Q.heads, Q.rows, V.cols});
  py::object lse = py::none();
  double* lse_data = nullptr;
  if (want_lse) {
    py::array_t<double> l = new_double_array({Q.batch, Q.heads, Q.rows});
    lse_data = l.mutable_data();
    lse = std::move(l);
  }
  const HeadsF O(out.mutable_data(), Q.batch, Q.heads, Q.rows, V.cols);
  {
    py::gil_scoped_release unlocked;
    ThreadScope scope(threads);
    attend(O, lse_data);
  }
  return py::make_tuple(out, lse);
}

// The same over 16-bit keys and values of kv_type ("float16" or "bfloat16"), read as they are;
// q is float32 or of kv_type.
template <class T>
py::tuple attend_exact_16(const py::array& q, HeadsView<const T> K, HeadsView<const T> V,
                          const AttentionOptions& options, bool want_lse, int threads,
                          HeadsView<const T> (*as_16)(const py::array&, const char*)) {
  if (q.itemsize() == 4) {
    const ConstHeadsF Q = as_heads(q, "q");
    return run_exact(Q, V, want_lse, threads, [&](HeadsF O, double* lse) { attend_exact(Q, K, V, options, O, lse); });
  }
  const HeadsView<const T> Q = as_16(q, "q");
  return run_exact(Q, V, want_lse, threads, [&](HeadsF O, double* lse) { attend_exact(Q, K, V, options, O, lse); });
}

py::tuple attend_exact_16_binding(const py::array& q, const py::array& k, const py::array& v,
                                  const std::string& kv_type, const std::string& f, double scale, bool causal,
                                  bool want_lse, const std::string& arithmetic, int threads) {
  const AttentionOptions options = attention_options(f, scale, causal, arithmetic);
  if (kv_type == "float16")
    return attend_exact_16(q, as_heads_f16(k, "k"), as_heads_f16(v, "v"), options, want_lse, threads, &as_heads_f16);
  if (kv_type == "bfloat16")
    return attend_exact_16(q, as_heads_bf16(k, "k"), as_heads_bf16(v, "v"), options, want_lse, threads, &as_heads_bf16);
  throw Error(ErrorKind::bad_input, "kv_type must be 'float16' or 'bfloat16', got '" + kv_type + "'");
}

// (out, lse or None); q, k, v are (B, H, n, d) with H_q a multiple of H_kv.
py::tuple attend_exact_binding(const py::array& q, const py::array& k, const py::array& v, const std::string& f,
                               double scale, bool causal, bool want_lse, int threads, const std::string& arithmetic) {
  const ConstHeadsF Q = as_heads(q, "q"), K = as_heads(k, "k"), V = as_heads(v, "v");
  const AttentionOptions options = attention_options(f, scale, causal, arithmetic);
  return run_exact(Q, V, want_lse, threads, [&](HeadsF O, double* lse) { attend_exact(Q, K, V, options, O, lse); });
}

// New arrays for dQ, dK, dV shaped like Q, K, V.
struct Gradients {
  py::array_t<float> dq, dk, dv;
  Gradients(ConstHeadsF Q, ConstHeadsF K, ConstHeadsF V)
      : dq(new_float_array({Q.batch, Q.heads, Q.rows, Q.cols})),
        dk(new_float_array({K.batch, K.heads, K.rows, K.cols})),
        dv(new_float_array({V.batch, V.heads, V.rows, V.cols})) {}
  static HeadsF view(py::array_t<float>& a) {
    return HeadsF(a.mutable_data(), a.shape(0), a.shape(1), a.shape(2), a.shape(3));
  }
};

// (dq, dk, dv) of exact attention from the forward's out and log normaliser (B, H_q, n_q) and dO.
py::tuple attend_exact_backward_binding(const py::array& q, const py::array& k, const py::array& v,
                                        const py::array& out, const py::array& lse, const py::array& dout,
                                        const std::string& f, double scale, bool causal, int threads) {
  const ConstHeadsF Q = as_heads(q, "q"), K = as_heads(k, "k"), V = as_heads(v, "v"), O = as_heads(out, "out"),
                    dO = as_heads(dout, "grad_out");
  const double* L = double_data(lse, Q.count() * Q.rows, "lse");
  const AttentionOptions options = attention_options(f, scale, causal);
  Gradients g(Q, K, V);
  const HeadsF dQ = g.view(g.dq), dK = g.view(g.dk), dV = g.view(g.dv);
  {
    py::gil_scoped_release unlocked;
    ThreadScope scope(threads);
    attend_exact_backward(Q, K, V, O, L, dO, options, dQ, dK, dV);
  }
  return py::make_tuple(g.dq, g.dk, g.dv);
}

// (dq, dk, dv) of LevAttention with its selection `kept` (one int64 array per (batch, key head),
// as attend_lev returned it) and its causal window held fixed.
py::tuple attend_lev_backward_binding(const py::array& q, const py::array& k, const py::array& v, const py::array& out,
                                      const py::array& dout, const std::string& f, double scale, bool causal,
                                      index_t window,
                                      const std::vector<py::array_t<std::int64_t, py::array::c_style>>& kept,
                                      int threads) {
  const ConstHeadsF Q = as_heads(q, "q"), K = as_heads(k, "k"), V = as_heads(v, "v"), O = as_heads(out, "out"),
                    dO = as_heads(dout, "grad_out");
  const AttentionOptions options = attention_options(f, scale, causal);
  LevAttentionReport report;
  report.window = window;
  for (const auto& a : kept) report.kept_keys.emplace_back(a.data(), a.data() + a.size());
  Gradients g(Q, K, V);
  const HeadsF dQ = g.view(g.dq), dK = g.view(g.dk), dV = g.view(g.dv);
  {
    py::gil_scoped_release unlocked;
    ThreadScope scope(threads);
    attend_lev_backward(Q, K, V, O, dO, options, report, dQ, dK, dV);
  }
  return py::make_tuple(g.dq, g.dk, g.dv);
}

// (out, kept, missing_mass or None, info) of attend_lev over heads views of any element types it
// takes: kept lists the kept keys of each (batch, key head).
template <class TQ, class TKV>
py::tuple run_lev(HeadsView<const TQ> Q, HeadsView<const TKV> K, HeadsView<const TKV> V,
                  const AttentionOptions& options, const LevSelectOptions& select, int threads) {
  py::array_t<float> out = new_float_array({Q.batch, Q.heads, Q.rows, V.cols});
  const HeadsF O(out.mutable_data(), Q.batch, Q.heads, Q.rows, V.cols);
  LevAttentionReport report;
  {
    py::gil_scoped_release unlocked;
    ThreadScope scope(threads);
    report = attend_lev(Q, K, V, options, select, O);
  }
  py::list kept;
  for (const std::vector<index_t>& keys : report.kept_keys) kept.append(int64_array(keys));
  py::object missing = py::none();
  if (!report.missing_mass.empty()) {
    py::array_t<double> m = new_double_array({Q.batch, Q.heads, Q.rows});
    std::copy(report.missing_mass.begin(), report.missing_mass.end(), m.mutable_data());
    missing = std::move(m);
  }
  py::dict info;
  info["kept_per_head"] = report.kept;
  info["normaliser_estimated"] = report.normaliser_estimated;
  info["normaliser_delta"] = report.normaliser_delta;
  info["normaliser_failure"] = report.normaliser_failure;
  info["select_seconds"] = report.select_seconds;
  info["attend_seconds"] = report.attend_seconds;
  return py::make_tuple(out, kept, missing, info);
}

// LevAttention; kv_type "float32", or "float16"/"bfloat16" for 16-bit keys and values read as they
// are (q float32 or of kv_type).
py::tuple attend_lev_binding(const py::array& q, const py::array& k, const py::array& v, const std::string& f,
                             double scale, bool causal, index_t top_k, double eps, index_t sinks, index_t window,
                             double ridge, double rcond, double delta, std::uint64_t seed, int threads,
                             const std::string& kv_type) {
  const AttentionOptions options = attention_options(f, scale, causal);
  LevSelectOptions select;
  select.top_k = top_k;
  select.eps = eps;
  select.sinks = sinks;
  select.window = window;
  select.leverage = {ridge, rcond};
  select.power.delta = delta;  // checked by the normaliser where pow:P uses it
  select.power.seed = seed;
  if (kv_type == "float32")
    return run_lev(as_heads(q, "q"), as_heads(k, "k"), as_heads(v, "v"), options, select, threads);
  const auto sixteen = [&](auto as_16) {
    const auto K = as_16(k, "k"), V = as_16(v, "v");
    if (q.itemsize() == 4) return run_lev(as_heads(q, "q"), K, V, options, select, threads);
    return run_lev(as_16(q, "q"), K, V, options, select, threads);
  };
  if (kv_type == "float16") return sixteen(&as_heads_f16);
  if (kv_type == "bfloat16") return sixteen(&as_heads_bf16);
  throw Error(ErrorKind::bad_input, "kv_type must be 'float32', 'float16' or 'bfloat16', got '" + kv_type + "'");
}

// (out, lse) merged from two results over disjoint key sets: o (rows, d_v) float32, lse (rows,)
// float64.
py::tuple merge_binding(const py::array& o1, const py::array& lse1, const py::array& o2, const py::array& lse2) {
  const ConstMatrixF A = as_matrix(o1, "o1"), B = as_matrix(o2, "o2");
  require(A.rows == B.rows && A.cols == B.cols, "merge_attention: o1 and o2 must have the same shape");
  const double* la = double_data(lse1, A.rows, "lse1");
  const double* lb = double_data(lse2, B.rows, "lse2");
  py::array_t<float> out = new_float_array({A.rows, A.cols});
  py::array_t<double> lse = new_double_array({A.rows});
  std::copy(A.data, A.data + A.rows * A.cols, out.mutable_data());
  std::copy(la, la + A.rows, lse.mutable_data());
  merge_attention(MatrixF(out.mutable_data(), A.rows, A.cols), lse.mutable_data(), B, lb);
  return py::make_tuple(out, lse);
}

// (kind "softmax" or "pow", p, scale c used for head width d) of a score function's spelling.
py::tuple score_function_binding(const std::string& f, double scale, index_t d) {
  AttentionOptions o;
  o.f = parse_score_function(f);
  o.scale = scale;
  return py::make_tuple(o.f.kind == ScoreKind::softmax ? "softmax" : "pow", o.f.p, effective_scale(o, d));
}

}  // namespace

void bind_attention(py::module_& m) {
  m.def("attend_exact", &attend_exact_binding, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("f"), py::arg("scale"),
        py::arg("causal"), py::arg("want_lse"), py::arg("threads"), py::arg("arithmetic") = "f32");
  m.def("attend_exact_16", &attend_exact_16_binding, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("kv_type"),
        py::arg("f"), py::arg("scale"), py::arg("causal"), py::arg("want_lse"), py::arg("arithmetic"),
        py::arg("threads"));
  m.def("attend_exact_backward", &attend_exact_backward_binding, py::arg("q"), py::arg("k"), py::arg("v"),
        py::arg("out"), py::arg("lse"), py::arg("grad_out"), py::arg("f"), py::arg("scale"), py::arg("causal"),
        py::arg("threads"));
  m.def("attend_lev_backward", &attend_lev_backward_binding, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"),
        py::arg("grad_out"), py::arg("f"), py::arg("scale"), py::arg("causal"), py::arg("window"), py::arg("kept"),
        py::arg("threads"));
  m.def("attend_lev", &attend_lev_binding, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("f"), py::arg("scale"),
        py::arg("causal"), py::arg("top_k"), py::arg("eps"), py::arg("sinks"), py::arg("window"), py::arg("ridge"),
        py::arg("rcond"), py::arg("delta"), py::arg("seed"), py::arg("threads"), py::arg("kv_type") = "float32");
  m.def("score_function", &score_function_binding, py::arg("f"), py::arg("scale"), py::arg("d"));
  m.def("merge_attention", &merge_binding, py::arg("o1"), py::arg("lse1"), py::arg("o2"), py::arg("lse2"));
}

}  // namespace levattn::python
