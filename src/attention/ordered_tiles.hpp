// The parallel skeleton both heavy-entry searches share: tiles of queries are searched in
// parallel, each thread with its own scratch, and their entries reach the sink in tile order, so
// the output never depends on the thread count. The first exception (from a tile or the sink)
// stops the work and is rethrown on the calling thread.
#pragma once

#include <optional>
#include <vector>

#include "core/first_error.hpp"
#include "levattn/attention/heavy.hpp"

namespace levattn::detail {

// make_scratch() → S, once per thread; search_tile(S&, t, found, stats) fills tile t's entries
// (in (query, key) order) and counts; after_tile(t) runs in order once tile t has been emitted.
template <class MakeScratch, class SearchTile, class AfterTile>
HeavyStats search_tiles_in_order(index_t tiles, MakeScratch make_scratch, SearchTile search_tile, const HeavySink& sink,
                                 AfterTile after_tile) {
  HeavyStats total;
  FirstError error;
#pragma omp parallel
  {
    std::optional<decltype(make_scratch())> scratch;  // made inside the try: it may not fit
    std::vector<HeavyEntry> found;
    HeavyStats stats;
#pragma omp for ordered schedule(static, 1)
    for (index_t t = 0; t < tiles; ++t) {
      found.clear();
      stats = HeavyStats{};
      if (!error.failed()) {
        try {
          if (!scratch) scratch.emplace(make_scratch());
          search_tile(*scratch, t, found, stats);
        } catch (...) {
          error.capture();
        }
      }
#pragma omp ordered
      if (!error.failed()) {
        try {
          if (!found.empty()) sink(found.data(), static_cast<index_t>(found.size()));
          stats.heavy_count = static_cast<index_t>(found.size());
          total += stats;
          after_tile(t);
        } catch (...) {
          error.capture();
        }
      }
    }
  }
  error.rethrow_if_any();
  return total;
}

}  // namespace levattn::detail
