// 16-bit element types — IEEE 754 binary16 (Half, "f16") and bfloat16 (BFloat16, "bf16") — and
// their conversions to and from float32. Views over caller buffers of these types
// (MatrixView<const Half>, HeadsView<const BFloat16>) are how 16-bit keys and values reach the
// library without a float32 copy.
//
// Widening (f16/bf16 -> float) is exact for every bit pattern: zeros keep their sign, subnormals
// become the exact float, infinities stay infinite and NaNs stay NaN with their payload's top bits.
// Narrowing (float -> f16/bf16) rounds to nearest, ties to even, overflowing to infinity as IEEE
// does; NaN stays a (quiet) NaN.
#pragma once

#include <bit>
#include <cstdint>
#include <type_traits>

namespace levattn {

// The float32 equal to the binary16 value with bits `h`.
constexpr float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  const std::uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float
    const float magnitude = float(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // inf / NaN
  return std::bit_cast<float>(sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13));
}

// The float32 equal to the bfloat16 value with bits `b` (bf16 is the top half of a float32).
constexpr float bf16_to_float(std::uint16_t b) { return std::bit_cast<float>(std::uint32_t(b) << 16); }

// The binary16 nearest to `f` (ties to even); |f| >= 65520 gives infinity.
constexpr std::uint16_t float_to_half(float f) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(f);
  const auto sign = std::uint16_t((bits >> 16) & 0x8000u);
  const std::uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return std::uint16_t(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));  // NaN
  if (magnitude >= 0x477ff000u) return std::uint16_t(sign | 0x7c00u);  // >= 65520 (max + half ulp): inf
  if (magnitude < 0x38800000u) {
    // Below the smallest normal half (2^-14): the result is a multiple of 2^-24. Adding 0.5f, whose
    // ulp is exactly 2^-24, lets the FPU round to nearest-even; the low bits are then the answer
    // (0x400 means it rounded up to the smallest normal, whose bit pattern is also 0x400).
    const float shifted = std::bit_cast<float>(magnitude) + 0.5f;
    return std::uint16_t(sign | (std::bit_cast<std::uint32_t>(shifted) - 0x3f000000u));
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits to nearest-even;
  // a carry out of the mantissa correctly bumps the exponent.
  const std::uint32_t odd = (magnitude >> 13) & 1u;
  const std::uint32_t rounded = magnitude - ((127u - 15u) << 23) + 0xfffu + odd;
  return std::uint16_t(sign | (rounded >> 13));
}

// The bfloat16 nearest to `f` (ties to even); overflow gives infinity.
constexpr std::uint16_t float_to_bf16(float f) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((bits >> 16) | 0x40u);  // quiet NaN
  const std::uint32_t odd = (bits >> 16) & 1u;
  return std::uint16_t((bits + 0x7fffu + odd) >> 16);
}

// The element type of a tensor the attention and scoring layers read.
enum class ElementType { f32, f16, bf16 };

// "float32", "float16", "bfloat16".
constexpr const char* element_type_name(ElementType type) {
  return type == ElementType::f32 ? "float32" : type == ElementType::f16 ? "float16" : "bfloat16";
}

// An IEEE binary16 number, stored as its bits (2 bytes, the layout of numpy float16 / torch.half).
struct Half {
  std::uint16_t bits = 0;
};
// A bfloat16 number, stored as its bits (the top half of a float32; torch.bfloat16's layout).
struct BFloat16 {
  std::uint16_t bits = 0;
};
static_assert(sizeof(Half) == 2 && sizeof(BFloat16) == 2);

// The element type of a C++ element: element_type_of<float> is ElementType::f32, and so on.
// (One expression, not explicit specialisations: GCC cannot emit an explicitly specialised
// inline variable in the SIMD files, which are built with -fno-weak; see src/CMakeLists.txt.)
template <class T>
inline constexpr ElementType element_type_of = std::is_same_v<T, Half>       ? ElementType::f16
                                               : std::is_same_v<T, BFloat16> ? ElementType::bf16
                                                                             : ElementType::f32;

// work(std::type_identity<T>{}) with T the C++ element `type` names (float, Half or BFloat16), for
// callers that learn the element type at run time and call a template over T, e.g.
// visit_element_type(t, [&]<class T>(std::type_identity<T>) { return f(tensor.data_as<T>()); }).
template <class Work>
decltype(auto) visit_element_type(ElementType type, Work&& work) {
  switch (type) {
    case ElementType::f16:
      return work(std::type_identity<Half>{});
    case ElementType::bf16:
      return work(std::type_identity<BFloat16>{});
    case ElementType::f32:
      break;
  }
  return work(std::type_identity<float>{});
}

// Exact widening to float32, for any element type.
constexpr float to_float(float x) { return x; }
constexpr float to_float(Half x) { return half_to_float(x.bits); }
constexpr float to_float(BFloat16 x) { return bf16_to_float(x.bits); }

// Rounding to nearest (ties to even) from float32.
constexpr Half to_half(float x) { return Half{float_to_half(x)}; }
constexpr BFloat16 to_bfloat16(float x) { return BFloat16{float_to_bf16(x)}; }

}  // namespace levattn
