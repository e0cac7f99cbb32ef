// The stateful objects: StreamSelector (one pass over key blocks) and KVCache (decoding). Each
// wrapper holds a mutex, so calls from several Python threads on one object (the GIL is released
// while they compute) run one at a time instead of racing; every wait for that mutex happens
// with the GIL released, so a long call on one object never stalls other Python threads.
#include <pybind11/stl.h>

#include <mutex>
#include <type_traits>

#include "arrays.hpp"
#include "bindings.hpp"
#include "levattn/attention/kv_cache.hpp"
#include "levattn/attention/stream_heavy.hpp"
#include "levattn/select/stream_selector.hpp"

namespace levattn::python {

namespace {

class PyStreamSelector {
 public:
  PyStreamSelector(index_t d, double eps, index_t budget, double rcond, index_t first_row, index_t value_dim,
                   index_t pending_rows, int threads)
      : selector_(d, StreamOptions{eps, budget, rcond, first_row, value_dim, pending_rows}),
        threads_(thread_count(threads)) {}

  // Keys (and values, when given) of the element type `type` names: 16-bit blocks are read as
  // they are (StreamSelector::push widens pending_rows at a time).
  void push(const py::array& keys, const py::object& values, const std::string& type) {
    const TypedMatrix K = as_typed_matrix(keys, type, "keys");
    TypedMatrix V{K.type, nullptr, 0, 0};
    if (!values.is_none()) V = as_typed_matrix(values.cast<py::array>(), type, "values");
    py::gil_scoped_release unlocked;
    const std::lock_guard<std::mutex> lock(mutex_);
    const ThreadScope scope(threads_);
    with_typed(K, [&](auto view) {
      using T = std::remove_const_t<std::remove_pointer_t<decltype(view.data)>>;
      selector_.push(view, V.data ? V.view<T>() : MatrixView<const T>());
    });
  }

  void merge(PyStreamSelector& other) {
    require(&other != this, "StreamSelector.merge: a selector cannot merge itself");
    py::gil_scoped_release unlocked;
    const std::scoped_lock lock(mutex_, other.mutex_);
    const ThreadScope scope(threads_);
    selector_.merge(other.selector_);
  }

  // (indices, scores, bound, within_bound, rank, count, keys (|U|, d), values (|U|, d_v) or None)
  py::tuple result() {
    StreamResult r;
    {
      py::gil_scoped_release unlocked;
      const std::lock_guard<std::mutex> lock(mutex_);
      const ThreadScope scope(threads_);
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
    return py::make_tuple(int64_array(r.set.indices), double_array(r.set.scores), r.set.bound, r.set.within_bound,
                          r.rank, r.count, keys, values);
  }

  // (query, key, score, uncertain, zero_queries)
  py::tuple heavy(const py::array& queries, double eps) {
    const ConstMatrixF Q = as_matrix(queries, "queries");
    StreamHeavyAnswer a;
    {
      py::gil_scoped_release unlocked;
      const std::lock_guard<std::mutex> lock(mutex_);
      const ThreadScope scope(threads_);
      a = stream_heavy(selector_, Q, eps);
    }
    std::vector<index_t> qi, ki;
    std::vector<double> score;
    for (const HeavyEntry& e : a.entries) {
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
  int threads_;  // every call's thread count (levattn/core/threads.hpp)
  std::mutex mutex_;
};

CachePolicy parse_policy(const std::string& name) {
  if (name == "leverage") return CachePolicy::leverage;
  if (name == "window") return CachePolicy::window;
  if (name == "accumulated") return CachePolicy::accumulated;
  if (name == "key_norm") return CachePolicy::key_norm;
  throw Error(ErrorKind::bad_input,
              "KVCache: policy must be leverage, window, accumulated or key_norm, got '" + name + "'");
}

ElementType parse_storage(const std::string& name) {
  if (name == "float32") return ElementType::f32;
  if (name == "float16") return ElementType::f16;
  if (name == "bfloat16") return ElementType::bf16;
  throw Error(ErrorKind::bad_input, "KVCache: storage must be float32, float16 or bfloat16, got '" + name + "'");
}

KVCacheOptions cache_options(const std::string& policy, index_t budget, double eps, index_t sinks, index_t refresh,
                             const std::string& f, double scale, const std::string& storage) {
  KVCacheOptions o;  // checked by the KVCache constructor
  o.policy = parse_policy(policy);
  o.budget = budget;
  o.eps = eps;
  o.sinks = sinks;
  o.refresh = refresh;
  o.attention.f = parse_score_function(f);
  o.attention.scale = scale;
  o.storage = parse_storage(storage);
  return o;
}

class PyKVCache {
 public:
  PyKVCache(index_t d, index_t d_v, const std::string& policy, index_t budget, double eps, index_t sinks,
            index_t refresh, const std::string& f, double scale, const std::string& storage, int threads)
      : cache_(d, d_v, cache_options(policy, budget, eps, sinks, refresh, f, scale, storage)),
        dv_(d_v),
        threads_(thread_count(threads)) {}

  // Appends rows of keys (rows, d) and values (rows, d_v) in order, all or nothing.
  void append(const py::array& keys, const py::array& values) {
    const ConstMatrixF K = as_matrix(keys, "keys"), V = as_matrix(values, "values");
    py::gil_scoped_release unlocked;
    const std::lock_guard<std::mutex> lock(mutex_);
    const ThreadScope scope(threads_);
    cache_.append(K, V);
  }

  // Attends each row of queries (m, d) in order: out (m, d_v), and the missing mass after each
  // (pow:2; zeros otherwise).
  py::tuple attend(const py::array& queries) {
    const ConstMatrixF Q = as_matrix(queries, "queries");
    py::array_t<float> out = new_float_array({Q.rows, dv_});
    py::array_t<double> missing = new_double_array({Q.rows});
    const MatrixF O(out.mutable_data(), Q.rows, dv_);
    double* mm = missing.mutable_data();
    {
      py::gil_scoped_release unlocked;
      const std::lock_guard<std::mutex> lock(mutex_);
      const ThreadScope scope(threads_);
      cache_.attend(Q, O, mm);
    }
    return py::make_tuple(out, missing);
  }

  py::array_t<std::int64_t> positions() {
    std::vector<index_t> p;
    {
      py::gil_scoped_release unlocked;
      const std::lock_guard<std::mutex> lock(mutex_);
      p = cache_.positions();
    }
    return int64_array(p);
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
  index_t stored_bytes() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return cache_.stored_bytes();
  }

 private:
  KVCache cache_;
  index_t dv_;
  int threads_;  // every call's thread count (levattn/core/threads.hpp)
  std::mutex mutex_;
};

}  // namespace

void bind_stream(py::module_& m) {
  py::class_<PyStreamSelector>(m, "StreamSelector")
      .def(py::init<index_t, double, index_t, double, index_t, index_t, index_t, int>(), py::arg("d"), py::arg("eps"),
           py::arg("budget"), py::arg("rcond"), py::arg("first_row"), py::arg("value_dim"), py::arg("pending_rows"),
           py::arg("threads"))
      .def("push", &PyStreamSelector::push, py::arg("keys"), py::arg("values"), py::arg("type") = "float32")
      .def("merge", &PyStreamSelector::merge, py::arg("other"))
      .def("result", &PyStreamSelector::result)
      .def("heavy", &PyStreamSelector::heavy, py::arg("queries"), py::arg("eps"))
      .def_property_readonly("dim", &PyStreamSelector::dim)
      .def_property_readonly("count",
                             py::cpp_function(&PyStreamSelector::count, py::call_guard<py::gil_scoped_release>()))
      .def_property_readonly("next_index",
                             py::cpp_function(&PyStreamSelector::next_index, py::call_guard<py::gil_scoped_release>()))
      .def_property_readonly("retained",
                             py::cpp_function(&PyStreamSelector::retained, py::call_guard<py::gil_scoped_release>()))
      .def_property_readonly("peak_retained", py::cpp_function(&PyStreamSelector::peak_retained,
                                                               py::call_guard<py::gil_scoped_release>()));
  py::class_<PyKVCache>(m, "KVCache")
      .def(py::init<index_t, index_t, const std::string&, index_t, double, index_t, index_t, const std::string&, double,
                    const std::string&, int>(),
           py::arg("d"), py::arg("d_v"), py::arg("policy"), py::arg("budget"), py::arg("eps"), py::arg("sinks"),
           py::arg("refresh"), py::arg("f"), py::arg("scale"), py::arg("storage"), py::arg("threads"))
      .def("append", &PyKVCache::append, py::arg("keys"), py::arg("values"))
      .def("attend", &PyKVCache::attend, py::arg("queries"))
      .def("positions", &PyKVCache::positions)
      .def_property_readonly("size", py::cpp_function(&PyKVCache::size, py::call_guard<py::gil_scoped_release>()))
      .def_property_readonly("appended",
                             py::cpp_function(&PyKVCache::appended, py::call_guard<py::gil_scoped_release>()))
      .def_property_readonly("missing_mass",
                             py::cpp_function(&PyKVCache::missing_mass, py::call_guard<py::gil_scoped_release>()))
      .def_property_readonly("stored_bytes",
                             py::cpp_function(&PyKVCache::stored_bytes, py::call_guard<py::gil_scoped_release>()));
}

}  // namespace levattn::python
