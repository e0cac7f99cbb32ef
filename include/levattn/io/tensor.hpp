// Floating-point tensors loaded from .npy / .safetensors files, and the element types those files store.
//
// load_float_tensor("K.npy"), load_float_tensor("model.safetensors:layer0.k") give a read-only
// float32 array in C (row-major) order. When the file already stores little-endian C-order float32
// the tensor points straight into a read-only memory map of the file (zero-copy); otherwise the
// values are converted once into an owned buffer. With Precision::keep_16_bit, float16 and
// bfloat16 files stay 16-bit: mapped as they are (little-endian, C order), else reordered once into
// an owned 16-bit buffer; other types still become float32. Every problem with an input file is reported as
// Error{bad_input} with a message naming the file and the problem.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "levattn/core/half.hpp"
#include "levattn/core/matrix_view.hpp"

namespace levattn::io {

// Element types the readers and writers know. Files are always little-endian unless stated.
enum class DType { f16, bf16, f32, f64, i64 };

// "float16", "bfloat16", "float32", "float64", "int64".
std::string dtype_name(DType dtype);
// Bytes per element: 2, 2, 4, 8, 8.
std::size_t dtype_size(DType dtype);

// A shape spelled as Python does (and .npy headers): "(1000, 64)", "(5,)", "()".
std::string format_shape(const std::vector<index_t>& shape);

// The number of elements of `shape` (1 for the 0-d shape "()"). Guarantees that the result times
// `itemsize` (> 0) fits in int64; otherwise, or if a dimension is negative, throws
// Error{bad_input} with a message starting "<context>: ".
index_t checked_element_count(const std::vector<index_t>& shape, std::size_t itemsize, const std::string& context);

// How elements are laid out in a file.
struct StoredLayout {
  DType dtype = DType::f32;
  std::vector<index_t> shape;
  bool fortran_order = false;  // column-major: the first index varies fastest
  bool big_endian = false;
};

// Whether 16-bit floating-point files are converted to float32 on load or kept as they are.
enum class Precision { f32, keep_16_bit };

// A read-only N-d floating-point array in C order — float32, or float16/bfloat16 when loaded with
// Precision::keep_16_bit — with shared ownership of its storage (a file map or an owned buffer), so
// copies are cheap and keep the data alive.
class FloatTensor {
 public:
  // An empty 1-D tensor of shape (0,).
  FloatTensor();

  const std::vector<index_t>& shape() const { return shape_; }
  index_t ndim() const { return static_cast<index_t>(shape_.size()); }
  // Extent of axis i; requires 0 <= i < ndim() (Error{bad_input} otherwise).
  index_t dim(int i) const;
  // Number of elements: the product of shape() (1 for a 0-d tensor, 0 if any dimension is 0).
  index_t size() const { return size_; }
  // The type of the elements in memory: f32, or the file's f16/bf16 under Precision::keep_16_bit.
  ElementType element_type() const { return element_type_; }
  // size() floats in C order. May be null only when size() == 0. Error{bad_input} naming source()
  // unless element_type() is f32.
  const float* data() const { return data_as<float>(); }
  // size() elements of type T (float, Half, BFloat16) in C order; Error{bad_input} naming source()
  // unless T is element_type().
  template <class T>
  const T* data_as() const {
    if (element_type_of<T> != element_type_) throw_read_as(element_type_of<T>);
    return static_cast<const T*>(data_);
  }
  // The element type the file stored before conversion to float32.
  DType source_dtype() const { return source_dtype_; }
  // The spec the tensor was loaded from ("K.npy", "m.safetensors:k"), for messages.
  const std::string& source() const { return source_; }
  // True when no copy was made: data() points into the file's read-only memory map.
  bool mapped() const { return mapped_; }
  // This 2-D float32 tensor as a dense rows x cols matrix view; Error{bad_input} naming source()
  // unless ndim() == 2 and element_type() is f32.
  ConstMatrixF matrix() const;

 private:
  [[noreturn]] void throw_read_as(ElementType wanted) const;
  friend FloatTensor decode_float_tensor(const std::byte*, std::size_t, std::shared_ptr<const void>,
                                         const StoredLayout&, std::string, Precision);
  std::vector<index_t> shape_;
  index_t size_ = 0;
  std::shared_ptr<const void> owner_;  // the file map or the converted buffer
  const void* data_ = nullptr;
  ElementType element_type_ = ElementType::f32;
  DType source_dtype_ = DType::f32;
  std::string source_;
  bool mapped_ = false;
};

// Converts the `nbytes` bytes at `bytes` (which `owner` keeps alive) into a float tensor named
// `source`. nbytes must equal product(layout.shape) * dtype_size(layout.dtype).
// Little-endian C-order float32 at a 4-byte-aligned address is not copied: the tensor shares
// `owner` and mapped() is true. f16/bf16 convert exactly; f64 rounds to nearest float32, and a
// finite f64 beyond float32's range is an error rather than a silent infinity. int64 is refused.
// Under Precision::keep_16_bit, f16/bf16 stay 16-bit: not copied when little-endian, C order and
// 2-byte aligned, else reordered into an owned buffer. Throws Error{bad_input} naming `source`.
FloatTensor decode_float_tensor(const std::byte* bytes, std::size_t nbytes, std::shared_ptr<const void> owner,
                                const StoredLayout& layout, std::string source, Precision precision = Precision::f32);

// Loads a float tensor from `spec`:
//   "path.npy"              a .npy file (v1/v2/v3; f2, f4, f8, either byte order, C or Fortran)
//   "path.safetensors:name" one tensor of a .safetensors file (F16, BF16, F32, F64)
//   "path.safetensors"      the only tensor of a .safetensors file that holds exactly one
// The header is validated against the real file size before anything is mapped or allocated.
// Throws Error{bad_input} naming the file and the problem (any other extension included).
FloatTensor load_float_tensor(const std::string& spec, Precision precision = Precision::f32);

}  // namespace levattn::io
