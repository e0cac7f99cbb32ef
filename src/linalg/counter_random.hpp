// Counter-based random numbers: every value is a pure function of (seed, stream, i, j), so a
// sketch entry or a sampling decision never depends on the order of evaluation, the block
// boundaries of the input or the thread count.
#pragma once

#include <cmath>
#include <cstdint>

namespace levattn::detail {

// SplitMix64 finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
inline std::uint64_t mix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// 64 random bits for coordinates (i, j) of stream `stream` under `seed`.
inline std::uint64_t counter_bits(std::uint64_t seed, std::uint64_t stream, std::uint64_t i, std::uint64_t j) {
  return mix64(mix64(mix64(mix64(seed) ^ stream) ^ i) ^ j);
}

// Uniform in [0, 1) with 53 random bits.
inline double counter_uniform(std::uint64_t seed, std::uint64_t stream, std::uint64_t i, std::uint64_t j) {
  return static_cast<double>(counter_bits(seed, stream, i, j) >> 11) * 0x1.0p-53;
}

// Standard normal by Box–Muller from two independent uniforms of (i, j).
inline double counter_normal(std::uint64_t seed, std::uint64_t stream, std::uint64_t i, std::uint64_t j) {
  const std::uint64_t a = counter_bits(seed, stream, i, 2 * j);
  const std::uint64_t b = counter_bits(seed, stream, i, 2 * j + 1);
  const double u1 = (static_cast<double>(a >> 11) + 0.5) * 0x1.0p-53;  // (0, 1): log is finite
  const double u2 = static_cast<double>(b >> 11) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace levattn::detail
