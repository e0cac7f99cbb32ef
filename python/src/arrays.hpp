// Views over the numpy arrays the Python layer (levattn/_arrays.py) hands to the extension, and the
// per-call thread count. The Python layer converts inputs to C-contiguous float32 (zero copy when
// they already are); these checks make the extension safe to call directly too.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <type_traits>
#include <vector>

#include "levattn/core/half.hpp"
#include "levattn/core/heads_view.hpp"
#include "levattn/core/matrix_view.hpp"
#include "levattn/core/threads.hpp"

namespace levattn::python {

namespace py = pybind11;

// `a` as a float32 view of `ndim` dimensions; throws Error{bad_input} naming `role` if it is not
// C-contiguous float32 of that rank. The view lives as long as the caller keeps `a`.
const float* float_data(const py::array& a, int ndim, const char* role);
ConstMatrixF as_matrix(const py::array& a, const char* role);  // (rows, cols)
ConstHeadsF as_heads(const py::array& a, const char* role);    // (batch, heads, rows, cols)
// `a` as (batch, heads, rows, cols) 16-bit elements: Half from numpy float16, BFloat16 from the
// 16-bit integers a torch.bfloat16 tensor is viewed as (numpy has no bfloat16). C-contiguous and
// aligned, or Error{bad_input} naming `role`.
ConstHeadsF16 as_heads_f16(const py::array& a, const char* role);
ConstHeadsBF16 as_heads_bf16(const py::array& a, const char* role);
// A (rows, cols) array of float32, float16 or bfloat16 elements (bfloat16 as the 16-bit integers
// a torch.bfloat16 tensor is viewed as), for the calls that read 16-bit keys as they are.
struct TypedMatrix {
  ElementType type = ElementType::f32;
  const void* data = nullptr;
  index_t rows = 0, cols = 0;
  template <class T>
  MatrixView<const T> view() const {
    return MatrixView<const T>(static_cast<const T*>(data), rows, cols);
  }
};
// `a` (2-D, C-contiguous, aligned) as the element type `type` names ("float32", "float16",
// "bfloat16"); Error{bad_input} naming `role` otherwise.
TypedMatrix as_typed_matrix(const py::array& a, const std::string& type, const char* role);
// work(MatrixView<const T>) with T the element type of m.
template <class Work>
auto with_typed(const TypedMatrix& m, Work work) {
  return visit_element_type(m.type, [&]<class T>(std::type_identity<T>) { return work(m.view<T>()); });
}
// A C-contiguous float64 vector of `count` entries (a row shape flattened).
const double* double_data(const py::array& a, index_t count, const char* role);

// New arrays owned by Python.
py::array_t<float> new_float_array(const std::vector<index_t>& shape);
py::array_t<double> new_double_array(const std::vector<index_t>& shape);
py::array_t<std::int64_t> int64_array(const std::vector<index_t>& values);
py::array_t<double> double_array(const std::vector<double>& values);

// threads=None from Python is 0: every core (levattn/core/threads.hpp).
using levattn::ThreadScope;

}  // namespace levattn::python
