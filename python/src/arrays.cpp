#include "arrays.hpp"

#include <algorithm>

namespace levattn::python {

namespace {
// Checks without building a message unless one is thrown (these run on every call).
template <class T>
const T* checked_data(const py::array& a, const char* role, const char* type) {
  if (!a.dtype().is(py::dtype::of<T>()))
    throw Error(ErrorKind::bad_input, std::string(role) + ": expected " + type + " data");
  if ((a.flags() & py::array::c_style) == 0 || (a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) == 0)
    throw Error(ErrorKind::bad_input, std::string(role) + ": expected an aligned C-contiguous array");
  return static_cast<const T*>(a.data());
}
}  // namespace

const float* float_data(const py::array& a, int ndim, const char* role) {
  if (a.ndim() != ndim)
    throw Error(ErrorKind::bad_input, std::string(role) + ": expected " + std::to_string(ndim) + " dimensions, got " +
                                          std::to_string(a.ndim()));
  return checked_data<float>(a, role, "float32");
}

namespace {
// The data of an `ndim`-D C-contiguous aligned array of 2-byte elements of numpy kind `kinds`.
const void* sixteen_bit_data(const py::array& a, int ndim, const char* role, const char* kinds, const char* type) {
  if (a.ndim() != ndim)
    throw Error(ErrorKind::bad_input, std::string(role) + ": expected " + std::to_string(ndim) + " dimensions, got " +
                                          std::to_string(a.ndim()));
  if (a.itemsize() != 2 || std::string(kinds).find(a.dtype().kind()) == std::string::npos)
    throw Error(ErrorKind::bad_input, std::string(role) + ": expected " + type + " data");
  if ((a.flags() & py::array::c_style) == 0 || (a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) == 0)
    throw Error(ErrorKind::bad_input, std::string(role) + ": expected an aligned C-contiguous array");
  return a.data();
}
}  // namespace

ConstHeadsF16 as_heads_f16(const py::array& a, const char* role) {
  const auto* data = static_cast<const Half*>(sixteen_bit_data(a, 4, role, "f", "float16"));
  return ConstHeadsF16(data, a.shape(0), a.shape(1), a.shape(2), a.shape(3));
}

ConstHeadsBF16 as_heads_bf16(const py::array& a, const char* role) {
  const auto* data = static_cast<const BFloat16*>(sixteen_bit_data(a, 4, role, "iu", "bfloat16 (as 16-bit integers)"));
  return ConstHeadsBF16(data, a.shape(0), a.shape(1), a.shape(2), a.shape(3));
}

TypedMatrix as_typed_matrix(const py::array& a, const std::string& type, const char* role) {
  TypedMatrix m;
  if (type == "float32") {
    m.data = float_data(a, 2, role);
  } else if (type == "float16") {
    m.type = ElementType::f16;
    m.data = sixteen_bit_data(a, 2, role, "f", "float16");
  } else if (type == "bfloat16") {
    m.type = ElementType::bf16;
    m.data = sixteen_bit_data(a, 2, role, "iu", "bfloat16 (as 16-bit integers)");
  } else {
    throw Error(ErrorKind::bad_input,
                std::string(role) + ": element type must be float32, float16 or bfloat16, got '" + type + "'");
  }
  m.rows = a.shape(0);
  m.cols = a.shape(1);
  return m;
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
  const double* data = checked_data<double>(a, role, "float64");
  if (a.size() != count)
    throw Error(ErrorKind::bad_input, std::string(role) + ": expected " + std::to_string(count) + " entries, got " +
                                          std::to_string(a.size()));
  return data;
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

}  // namespace levattn::python
