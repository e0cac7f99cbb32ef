#include "arrays.hpp"

#include <omp.h>

#include <algorithm>

namespace levattn::python {

const float* float_data(const py::array& a, int ndim, const char* role) {
  require(a.ndim() == ndim, std::string(role) + ": expected " + std::to_string(ndim) + " dimensions, got " +
                                std::to_string(a.ndim()));
  require(a.dtype().is(py::dtype::of<float>()), std::string(role) + ": expected float32 data");
  require((a.flags() & py::array::c_style) != 0, std::string(role) + ": expected a C-contiguous array");
  return static_cast<const float*>(a.data());
}

ConstMatrixF as_matrix(const py::array& a, const char* role) {
  const float* data = float_data(a, 2, role);
  return ConstMatrixF(data, a.shape(0), a.shape(1));
}

ConstHeadsF as_heads(const py::array& a, const char* role) {
  const float* data = float_data(a, 4, role);
  return ConstHeadsF(data, a.shape(0), a.shape(1), a.shape(2), a.shape(3));
}

const double* double_data(const py::array& a, index_t count, const char* role) {
  require(a.dtype().is(py::dtype::of<double>()), std::string(role) + ": expected float64 data");
  require((a.flags() & py::array::c_style) != 0, std::string(role) + ": expected a C-contiguous array");
  require(a.size() == count, std::string(role) + ": expected " + std::to_string(count) + " entries, got " +
                                 std::to_string(a.size()));
  return static_cast<const double*>(a.data());
}

namespace {
template <class T>
py::array_t<T> new_array(const std::vector<index_t>& shape) {
  std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  return py::array_t<T>(dims);
}
}  // namespace

py::array_t<float> new_float_array(const std::vector<index_t>& shape) { return new_array<float>(shape); }
py::array_t<double> new_double_array(const std::vector<index_t>& shape) { return new_array<double>(shape); }

py::array_t<std::int64_t> int64_array(const std::vector<index_t>& values) {
  py::array_t<std::int64_t> out(static_cast<py::ssize_t>(values.size()));
  std::copy(values.begin(), values.end(), out.mutable_data());
  return out;
}

py::array_t<double> double_array(const std::vector<double>& values) {
  py::array_t<double> out(static_cast<py::ssize_t>(values.size()));
  std::copy(values.begin(), values.end(), out.mutable_data());
  return out;
}

ThreadScope::ThreadScope(int threads) : previous_(omp_get_max_threads()), changed_(threads > 0) {
  require(threads >= 0, "threads must be ≥ 1 (or None for every core), got " + std::to_string(threads));
  if (changed_) omp_set_num_threads(threads);
}

ThreadScope::~ThreadScope() {
  if (changed_) omp_set_num_threads(previous_);
}

}  // namespace levattn::python
