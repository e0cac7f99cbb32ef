// A vectorisable e^x for x ≤ 0, for the attention kernels that are compiled twice (baseline and
// AVX-512). The includer defines FLASH_NAMESPACE, so each build keeps its own copy and the two
// never mix at link time.
#pragma once

#include <bit>
#include <cstdint>

namespace levattn::detail::FLASH_NAMESPACE {

// e^x for x ≤ 0: x = n·ln2 + r with |r| ≤ ln2/2 and e^r by its degree-6 Taylor polynomial (relative
// error below 2e-7), times 2^n built in the exponent bits; below 2^-126 the result is flushed to 0.
// Branch-free so it vectorises; a NaN argument gives NaN.
inline float exp_nonpositive(float x) {
  x = x < -100.0f ? -100.0f : x;  // NaN fails the test and is kept
  const float t = x * 1.44269504f;
  const float n = (t + 12582912.0f) - 12582912.0f;  // round to nearest (|t| < 2^22)
  const float r = (x - n * 0.693145752f) - n * 1.42860677e-6f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t e = n >= -126.0f ? static_cast<std::int32_t>(n) + 127 : 0;  // NaN → 0
  return p * std::bit_cast<float>(static_cast<std::uint32_t>(e) << 23);
}

}  // namespace levattn::detail::FLASH_NAMESPACE
