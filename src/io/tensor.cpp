#include "levattn/io/tensor.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string_view>

#include "levattn/core/half.hpp"
#include "levattn/io/npy.hpp"
#include "levattn/io/safetensors.hpp"

static_assert(std::endian::native == std::endian::little, "the io layer assumes a little-endian host");

namespace levattn::io {
namespace {

// The element stored at p (unaligned), in host order.
template <class Bits>
Bits load_bits(const std::byte* p, bool swap) {
  Bits v;
  std::memcpy(&v, p, sizeof v);
  if (!swap) return v;
  if constexpr (sizeof(Bits) == 2) return static_cast<Bits>(__builtin_bswap16(v));
  if constexpr (sizeof(Bits) == 4) return static_cast<Bits>(__builtin_bswap32(v));
  if constexpr (sizeof(Bits) == 8) return static_cast<Bits>(__builtin_bswap64(v));
}

// Writes the `count` elements at `in` to `out` in C order, converting each with `convert(pointer)`.
// In Fortran order element (i0, ..., ik) is stored at offset sum_a i_a * stride_a with stride_0 = 1
// and stride_a = stride_{a-1} * shape_{a-1}; we walk the output in C order with an odometer and
// keep the input offset in step.
template <class Out, class Convert>
void gather(Out* out, const std::byte* in, index_t count, const StoredLayout& layout, Convert convert) {
  const auto itemsize = static_cast<index_t>(dtype_size(layout.dtype));
  const std::size_t ndim = layout.shape.size();
  if (!layout.fortran_order || ndim < 2 || count == 0) {
    for (index_t i = 0; i < count; ++i) out[i] = convert(in + i * itemsize);
    return;
  }
  std::vector<index_t> stride(ndim, 1), index(ndim, 0);
  for (std::size_t a = 1; a < ndim; ++a) stride[a] = stride[a - 1] * layout.shape[a - 1];
  index_t offset = 0;
  for (index_t i = 0; i < count; ++i) {
    out[i] = convert(in + offset * itemsize);
    for (std::size_t a = ndim; a-- > 0;) {
      if (++index[a] < layout.shape[a]) {
        offset += stride[a];
        break;
      }
      offset -= stride[a] * (layout.shape[a] - 1);
      index[a] = 0;
    }
  }
}

// Converts into `out`, throwing for a finite float64 that float32 cannot hold.
void convert_into(float* out, const std::byte* in, index_t count, const StoredLayout& layout,
                  const std::string& source) {
  const bool swap = layout.big_endian;
  switch (layout.dtype) {
    case DType::f16:
      gather(out, in, count, layout,
             [&](const std::byte* p) { return half_to_float(load_bits<std::uint16_t>(p, swap)); });
      return;
    case DType::bf16:
      gather(out, in, count, layout,
             [&](const std::byte* p) { return bf16_to_float(load_bits<std::uint16_t>(p, swap)); });
      return;
    case DType::f32:
      gather(out, in, count, layout,
             [&](const std::byte* p) { return std::bit_cast<float>(load_bits<std::uint32_t>(p, swap)); });
      return;
    case DType::f64: {
      bool out_of_range = false;
      double bad_value = 0;
      gather(out, in, count, layout, [&](const std::byte* p) {
        const double x = std::bit_cast<double>(load_bits<std::uint64_t>(p, swap));
        const auto f = static_cast<float>(x);
        if (std::isinf(f) && std::isfinite(x) && !out_of_range) {
          out_of_range = true;
          bad_value = x;
        }
        return f;
      });
      if (out_of_range) {
        char value[32];
        std::snprintf(value, sizeof value, "%.17g", bad_value);
        throw Error(ErrorKind::bad_input,
                    source + ": float64 value " + value + " is outside the float32 range (|x| <= 3.4028235e38)");
      }
      return;
    }
    case DType::i64:
      break;
  }
  throw Error(ErrorKind::bad_input, source + ": int64 data cannot be loaded as a float tensor");
}

}  // namespace

std::string dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f16:
      return "float16";
    case DType::bf16:
      return "bfloat16";
    case DType::f32:
      return "float32";
    case DType::f64:
      return "float64";
    case DType::i64:
      return "int64";
  }
  return "unknown";
}

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f16:
    case DType::bf16:
      return 2;
    case DType::f32:
      return 4;
    case DType::f64:
    case DType::i64:
      return 8;
  }
  return 0;
}

std::string format_shape(const std::vector<index_t>& shape) {
  std::string s = "(";
  for (std::size_t a = 0; a < shape.size(); ++a) s += (a ? ", " : "") + std::to_string(shape[a]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

index_t checked_element_count(const std::vector<index_t>& shape, std::size_t itemsize, const std::string& context) {
  const auto max_bytes = std::numeric_limits<index_t>::max();
  const auto item = static_cast<index_t>(itemsize);
  for (const index_t d : shape) {
    if (d < 0) throw Error(ErrorKind::bad_input, context + ": negative dimension in shape " + format_shape(shape));
  }
  index_t count = 1;
  for (const index_t d : shape) {
    if (d == 0) return 0;  // an empty dimension: no overflow whatever the others are
    if (count > max_bytes / item / d) {
      throw Error(ErrorKind::bad_input, context + ": shape " + format_shape(shape) + " with " +
                                            std::to_string(itemsize) +
                                            "-byte elements is too large (byte count overflows)");
    }
    count *= d;
  }
  return count;
}

FloatTensor::FloatTensor() : shape_{0} {}

index_t FloatTensor::dim(int i) const {
  require(i >= 0 && i < ndim(),
          source_ + ": axis " + std::to_string(i) + " out of range for shape " + format_shape(shape_));
  return shape_[static_cast<std::size_t>(i)];
}

void FloatTensor::throw_read_as(ElementType wanted) const {
  throw Error(ErrorKind::bad_input, source_ + ": holds " + element_type_name(element_type_) + " elements, read as " +
                                        element_type_name(wanted));
}

ConstMatrixF FloatTensor::matrix() const {
  require(ndim() == 2, source_ + ": expected a 2-D array, got shape " + format_shape(shape_));
  return ConstMatrixF(data(), shape_[0], shape_[1]);
}

FloatTensor decode_float_tensor(const std::byte* bytes, std::size_t nbytes, std::shared_ptr<const void> owner,
                                const StoredLayout& layout, std::string source, Precision precision) {
  const index_t count = checked_element_count(layout.shape, dtype_size(layout.dtype), source);
  require(static_cast<std::uint64_t>(count) * dtype_size(layout.dtype) == nbytes,
          source + ": " + std::to_string(nbytes) + " bytes do not hold shape " + format_shape(layout.shape) + " of " +
              dtype_name(layout.dtype));
  FloatTensor t;
  t.shape_ = layout.shape;
  t.size_ = count;
  t.source_dtype_ = layout.dtype;
  const bool c_order = !layout.fortran_order || layout.shape.size() < 2;
  const bool sixteen = layout.dtype == DType::f16 || layout.dtype == DType::bf16;
  if (sixteen && precision == Precision::keep_16_bit) {
    t.element_type_ = layout.dtype == DType::f16 ? ElementType::f16 : ElementType::bf16;
    const bool aligned = reinterpret_cast<std::uintptr_t>(bytes) % alignof(std::uint16_t) == 0;
    if (!layout.big_endian && c_order && aligned) {
      t.data_ = bytes;
      t.owner_ = std::move(owner);
      t.mapped_ = true;
    } else {
      std::shared_ptr<std::uint16_t[]> buffer =
          std::make_shared_for_overwrite<std::uint16_t[]>(static_cast<std::size_t>(count));
      gather(buffer.get(), bytes, count, layout,
             [swap = layout.big_endian](const std::byte* p) { return load_bits<std::uint16_t>(p, swap); });
      t.data_ = buffer.get();
      t.owner_ = std::move(buffer);
    }
    t.source_ = std::move(source);
    return t;
  }
  const bool aligned = reinterpret_cast<std::uintptr_t>(bytes) % alignof(float) == 0;
  if (layout.dtype == DType::f32 && !layout.big_endian && c_order && aligned) {
    t.data_ = reinterpret_cast<const float*>(bytes);
    t.owner_ = std::move(owner);
    t.mapped_ = true;
  } else {
    std::shared_ptr<float[]> buffer = std::make_shared_for_overwrite<float[]>(static_cast<std::size_t>(count));
    convert_into(buffer.get(), bytes, count, layout, source);
    t.data_ = buffer.get();
    t.owner_ = std::move(buffer);
  }
  t.source_ = std::move(source);
  return t;
}

FloatTensor load_float_tensor(const std::string& spec, Precision precision) {
  constexpr std::string_view safetensors = ".safetensors";
  const std::string_view s(spec);
  if (const auto colon = s.find(".safetensors:"); colon != std::string_view::npos) {
    const std::size_t name_start = colon + safetensors.size() + 1;
    require(name_start < s.size(), spec + ": empty tensor name after ':'");
    return load_safetensors(spec.substr(0, name_start - 1), spec.substr(name_start), precision);
  }
  if (s.ends_with(safetensors)) return load_safetensors(spec, "", precision);
  if (s.ends_with(".npy")) return load_npy(spec, precision);
  throw Error(ErrorKind::bad_input, spec +
                                        ": unsupported tensor file (expected path.npy, "
                                        "path.safetensors or path.safetensors:tensor_name)");
}

}  // namespace levattn::io
