#include "bench_data.hpp"

#include <map>
#include <tuple>

namespace levattn::bench {

const PlantedData& planted(index_t n, index_t m, index_t d) {
  static std::map<std::tuple<index_t, index_t, index_t>, PlantedData> cache;
  auto it = cache.find({n, m, d});
  if (it == cache.end()) {
    PlantedOptions o;
    o.n = n, o.m = m, o.d = d;
    it = cache.emplace(std::tuple{n, m, d}, make_planted(o)).first;
  }
  return it->second;
}

std::vector<float> hashed_floats(index_t count, std::uint64_t seed) {
  std::vector<float> x(static_cast<size_t>(count));
  for (index_t i = 0; i < count; ++i) {
    const std::uint64_t h = (static_cast<std::uint64_t>(i) * 2654435761ull + seed * 40503ull) % (1ull << 32);
    x[i] = static_cast<float>(2.0 * (static_cast<double>(h) / 4294967296.0) - 1.0);
  }
  return x;
}

}  // namespace levattn::bench
