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

}  // namespace levattn::bench
