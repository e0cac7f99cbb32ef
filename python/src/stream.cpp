// The stateful objects: StreamSelector (one pass over key blocks) and KVCache (decoding). Each
// wrapper holds a mutex, so calls from several Python threads on one object (the GIL is released
// while they compute) run one at a time instead of racing.
#include <pybind11/stl.h>

#include <mutex>

#include "arrays.hpp"
#include "bindings.hpp"
#include "levattn/attention/kv_cache.hpp"
#include "levattn/select/stream_selector.hpp"

namespace levattn::python {

namespace {

class PyStreamSelector {
 public:
  PyStreamSelector(index_t d, double eps, index_t budget, double rcond, index_t first_row, index_t value_dim,
                   index_t pending_rows)
      : selector_(d, StreamOptions{eps, budget, rcond, first_row, value_dim, pending_rows}) {}

  void push(const py::array& keys, const py::object& values) {
    const ConstMatrixF K = as_matrix(keys, "keys");
    ConstMatrixF V;
    if (!values.is_none()) V = as_matrix(values.cast<py::array>(), "values");
    py::gil_scoped_release unlocked;
    const std::lock_guard<std::mutex> lock(mutex_);
    selector_.push(K, V);
  }

  void merge(PyStreamSelector& other) {
    require(&other != this, "StreamSelector.merge: a selector cannot merge itself");
    py::gil_scoped_release unlocked;
    const std::scoped_lock lock(mutex_, other.mutex_);
    selector_.merge(other.selector_);
  }

  // (indices, scores, bound, within_bound, rank, count, keys (|U|, d), values (|U|, d_v) or None)
  py::tuple result() {
    StreamResult r;
    {
      py::gil_scoped_release unlocked;
      const std::lock_guard<std::mutex> lock(mutex_);
      r = selector_.result();
    }
    const index_t d = selector_.dim(), dv = selector_.options().value_dim, size = r.set.size();
    py::array_t<float> keys = new_float_array({size, d});
    std::copy(r.keys.begin(), r.keys.end(), keys.mutable_data());
    py::object values = py::none();
    if (dv > 0) {
      py::array_t<float> v = new_float_array({size, dv});
      std::copy(r.values.begin(), r.values.end(), v.mutable_data());
      values = std::move(v);
    }
    return py::make_tuple(int64_array(r.set.indices), double_array(r.set.scores), r.set.bound,
                          r.set.within_bound, r.rank, r.count, keys, values);
  }

  // (query, key, score, uncertain, zero_queries)
  py::tuple heavy(const py::array& queries, double eps) {
    const ConstMatrixF Q = as_matrix(queries, "queries");
    StreamHeavyAnswer a;
    {
      py::gil_scoped_release unlocked;
      const std::lock_guard<std::mutex> lock(mutex_);
      a = selector_.heavy(Q, eps);
    }
    std::vector<index_t> qi, ki;
    std::vector<double> score;
    for (const StreamHeavyEntry& e : a.entries) {
      qi.push_back(e.query);
      ki.push_back(e.key);
      score.push_back(e.score);
    }
    return py::make_tuple(int64_array(qi), int64_array(ki), double_array(score), int64_array(a.uncertain),
                          a.zero_queries);
  }

  index_t dim() const { return selector_.dim(); }
  index_t count() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return selector_.count();
  }
  index_t next_index() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return selector_.next_index();
  }
  index_t retained() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return selector_.retained();
  }
  index_t peak_retained() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return selector_.peak_retained();
  }

 private:
  StreamSelector selector_;
  std::mutex mutex_;
};

CachePolicy parse_policy(const std::string& name) {
  if (name == "leverage") return CachePolicy::leverage;
  if (name == "window") return CachePolicy::window;
  if (name == "accumulated") return CachePolicy::accumulated;
  throw Error(ErrorKind::bad_input, "KVCache: policy must be leverage, window or accumulated, got '" + name + "'");
}

KVCacheOptions cache_options(const std::string& policy, index_t budget, double eps, index_t sinks, index_t refresh,
                             const std::string& f, double scale) {
  KVCacheOptions o;
  o.policy = parse_policy(policy);
  o.budget = budget;
  o.eps = eps;
  o.sinks = sinks;
  require(refresh >= 0, "KVCache: refresh must be ≥ 0");
  o.refresh = refresh;
  o.attention.f = parse_score_function(f);
  require(scale >= 0.0, "KVCache: scale must be > 0 (or None for the default)");
  o.attention.scale = scale;
  return o;
}

class PyKVCache {
 public:
  PyKVCache(index_t d, index_t d_v, const std::string& policy, index_t budget, double eps, index_t sinks,
            index_t refresh, const std::string& f, double scale)
      : cache_(d, d_v, cache_options(policy, budget, eps, sinks, refresh, f, scale)), d_(d), dv_(d_v) {}

  // Appends rows of keys (rows, d) and values (rows, d_v) in order.
  void append(const py::array& keys, const py::array& values) {
    const ConstMatrixF K = as_matrix(keys, "keys"), V = as_matrix(values, "values");
    require(K.cols == d_ && V.cols == dv_ && K.rows == V.rows,
            "KVCache.append: expected keys (rows, " + std::to_string(d_) + ") and values (rows, " +
                std::to_string(dv_) + "), got " + shape_string(K.rows, K.cols) + " and " +
                shape_string(V.rows, V.cols));
    py::gil_scoped_release unlocked;
    const std::lock_guard<std::mutex> lock(mutex_);
    for (index_t i = 0; i < K.rows; ++i) cache_.append(K.row(i), V.row(i));
  }

  // Attends each row of queries (m, d) in order: out (m, d_v), and the missing mass after each
  // (pow:2; zeros otherwise).
  py::tuple attend(const py::array& queries) {
    const ConstMatrixF Q = as_matrix(queries, "queries");
    require(Q.cols == d_, "KVCache.attend: expected queries (m, " + std::to_string(d_) + "), got " +
                              shape_string(Q.rows, Q.cols));
    py::array_t<float> out = new_float_array({Q.rows, dv_});
    py::array_t<double> missing = new_double_array({Q.rows});
    float* o = out.mutable_data();
    double* mm = missing.mutable_data();
    {
      py::gil_scoped_release unlocked;
      const std::lock_guard<std::mutex> lock(mutex_);
      for (index_t i = 0; i < Q.rows; ++i) {
        cache_.attend(Q.row(i), o + i * dv_);
        mm[i] = cache_.missing_mass();
      }
    }
    return py::make_tuple(out, missing);
  }

  py::array_t<std::int64_t> positions() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return int64_array(cache_.positions());
  }
  index_t size() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return cache_.size();
  }
  index_t appended() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return cache_.appended();
  }
  double missing_mass() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return cache_.missing_mass();
  }

 private:
  KVCache cache_;
  index_t d_, dv_;
  std::mutex mutex_;
};

}  // namespace

void bind_stream(py::module_& m) {
  py::class_<PyStreamSelector>(m, "StreamSelector")
      .def(py::init<index_t, double, index_t, double, index_t, index_t, index_t>(), py::arg("d"), py::arg("eps"),
           py::arg("budget"), py::arg("rcond"), py::arg("first_row"), py::arg("value_dim"),
           py::arg("pending_rows"))
      .def("push", &PyStreamSelector::push, py::arg("keys"), py::arg("values"))
      .def("merge", &PyStreamSelector::merge, py::arg("other"))
      .def("result", &PyStreamSelector::result)
      .def("heavy", &PyStreamSelector::heavy, py::arg("queries"), py::arg("eps"))
      .def_property_readonly("dim", &PyStreamSelector::dim)
      .def_property_readonly("count", &PyStreamSelector::count)
      .def_property_readonly("next_index", &PyStreamSelector::next_index)
      .def_property_readonly("retained", &PyStreamSelector::retained)
      .def_property_readonly("peak_retained", &PyStreamSelector::peak_retained);
  py::class_<PyKVCache>(m, "KVCache")
      .def(py::init<index_t, index_t, const std::string&, index_t, double, index_t, index_t, const std::string&,
                    double>(),
           py::arg("d"), py::arg("d_v"), py::arg("policy"), py::arg("budget"), py::arg("eps"), py::arg("sinks"),
           py::arg("refresh"), py::arg("f"), py::arg("scale"))
      .def("append", &PyKVCache::append, py::arg("keys"), py::arg("values"))
      .def("attend", &PyKVCache::attend, py::arg("queries"))
      .def("positions", &PyKVCache::positions)
      .def_property_readonly("size", &PyKVCache::size)
      .def_property_readonly("appended", &PyKVCache::appended)
      .def_property_readonly("missing_mass", &PyKVCache::missing_mass);
}

}  // namespace levattn::python
