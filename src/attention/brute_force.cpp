#include "levattn/attention/brute_force.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "attention/ordered_tiles.hpp"
#include "levattn/core/finite_rows.hpp"
#include "linalg/blas.hpp"
#include "linalg/scaled_rows.hpp"
#include "linalg/widen_rows.hpp"

namespace levattn {

namespace {
// Keys whose largest magnitude lies in [2⁻³⁰, 2³⁰) are used in place; others are scaled first.
bool keys_in_safe_range(int shift) { return shift > -30 && shift <= 30; }
// Keys per GEMM: a tile's products against one block take 512 KiB at most (64 × 1,024 doubles).
constexpr index_t kKeyBlock = 1024;
// Queries per tile, at most: each block of keys is widened and packed by the GEMM once per tile.
constexpr index_t kQueryTile = 64;
// Candidates a thread may hold for a tile (fewer queries per tile when ε is small).
constexpr double kCandidateBytes = double(index_t{1} << 25);

// One pass over the keys, block by block. Row sums of squares only grow, so an entry with
// sq ≥ ε·(final sum) also has sq ≥ ε·(sum so far, this block included) when its block is seen:
// such candidates are kept, pruned against the sum so far whenever they outnumber 2/ε + a block
// (at most 1/ε survive a prune, since they sum to no more than the sum so far), and tested against
// the final sum at the end. A query holds at most min(n, 2/ε + 2 blocks) candidates, never a row
// of products against all keys. A zero product (A = 0 < ε) is never a candidate.
struct Candidates {
  std::vector<HeavyEntry> entries;  // score = the entry's square, not yet normalised
  double total_sq = 0.0;            // Σ_l <q,k_l>² over the blocks seen so far

  void reset() {
    entries.clear();  // keeps the capacity for the next tile
    total_sq = 0.0;
  }
  void prune(double eps) {
    const double cut = eps * total_sq;
    std::erase_if(entries, [cut](const HeavyEntry& e) { return e.score < cut; });
  }
};

// The brute force with products of type P: float GEMM of power-of-two scaled rows, or double GEMM
// of the widened rows (no scaling: products of floats and their squares stay within double's range).
template <class P, class T>
HeavyStats brute_force(ConstMatrixF queries, MatrixView<const T> keys, double eps, const HeavySink& sink) {
  constexpr bool kDouble = std::is_same_v<P, double>;
  check_eps(eps);
  const index_t d = keys.cols, n = keys.rows, m = queries.rows;
  require(n >= 1 && d >= 1, "keys: need at least one key of dimension ≥ 1");
  require(queries.cols == d,
          "queries have " + std::to_string(queries.cols) + " columns but keys have " + std::to_string(d));
  if (m == 0) return HeavyStats{};

  require_finite_rows(keys, "keys");
  require_finite_rows(queries, "queries");

  // Power-of-two scaling changes no A[i,j] (they are ratios) but keeps the float GEMM in range:
  // keys outside [2⁻³⁰, 2³⁰) are scaled (exact but for subnormal results). Float keys in range are
  // read in place by the float GEMM; other keys are widened (and scaled) a block at a time into
  // per-thread scratch, so no copy of all keys is made.
  const int key_shift = kDouble ? 0 : linalg::pow2_shift(keys);
  const bool in_place = !kDouble && std::is_same_v<T, float> && keys_in_safe_range(key_shift);
  const int applied_shift = keys_in_safe_range(key_shift) ? 0 : key_shift;  // keys in range keep their values
  const index_t key_block = std::min(kKeyBlock, n);
  const double prune_at = 2.0 / eps + static_cast<double>(key_block);
  const double per_query = std::min(double(n), prune_at + double(key_block)) * double(sizeof(HeavyEntry));
  const index_t tq = std::min(m, std::clamp<index_t>(static_cast<index_t>(kCandidateBytes / per_query), 1, kQueryTile));

  struct Scratch {
    std::vector<P> scaled, products, keys;
    std::vector<float> widened;  // a block of 16-bit keys widened to float (double products)
    std::vector<Candidates> candidates;
  };
  const auto make_scratch = [&] {
    const bool widen_16 = kDouble && !std::is_same_v<T, float>;
    return Scratch{std::vector<P>(static_cast<size_t>(tq * d)), std::vector<P>(static_cast<size_t>(tq * key_block)),
                   std::vector<P>(in_place ? 0 : static_cast<size_t>(key_block * d)),
                   std::vector<float>(widen_16 ? static_cast<size_t>(key_block * d) : 0),
                   std::vector<Candidates>(static_cast<size_t>(tq))};
  };
  // Keys [first, first + count) as the GEMM reads them: in place, or widened (and scaled) into s.keys.
  const auto key_rows = [&](Scratch& s, index_t first, index_t count) -> MatrixView<const P> {
    if constexpr (kDouble) {
      ConstMatrixF rows;  // the keys as float: in place, or 16-bit keys widened into s.widened
      if constexpr (std::is_same_v<T, float>) {
        rows = keys.rows_range(first, first + count);
      } else {
        widen_rows(keys, first, count, s.widened.data());
        rows = ConstMatrixF(s.widened.data(), count, d);
      }
      for (index_t j = 0; j < count; ++j) std::copy_n(rows.row(j), d, &s.keys[j * d]);  // exact in double
      return ConstMatrixD(s.keys.data(), count, d);
    } else {
      if constexpr (std::is_same_v<T, float>)
        if (in_place) return keys.rows_range(first, first + count);
      widen_rows(keys, first, count, s.keys.data());
      if (applied_shift != 0)
        for (index_t j = 0; j < count; ++j) linalg::scale_copy(&s.keys[j * d], d, applied_shift, &s.keys[j * d]);
      return ConstMatrixF(s.keys.data(), count, d);
    }
  };
  // Adds the block [first, first + count) of query i's products (row) to its candidates.
  const auto add_block = [&](Candidates& c, index_t query, const P* row, index_t first, index_t count) {
    c.total_sq += linalg::dot_double(row, row, count);
    if (c.total_sq == 0.0) return;  // every product so far is zero
    const double cut = eps * c.total_sq;
    // A pre-filter a little below the cut in the products' type, then the exact test in double.
    const P near = static_cast<P>(std::sqrt(cut) * (1.0 - 1e-5));
    for (index_t j = 0; j < count; ++j) {
      if (std::fabs(row[j]) < near) continue;
      const double sq = static_cast<double>(row[j]) * row[j];
      if (sq >= cut && sq > 0.0) c.entries.push_back({query, first + j, sq});  // sq > 0: ε·Σ may underflow
    }
    if (static_cast<double>(c.entries.size()) > prune_at) c.prune(eps);
  };
  const auto search_tile = [&](Scratch& s, index_t t, std::vector<HeavyEntry>& found, HeavyStats& stats) {
    const index_t begin = t * tq, rows = std::min(tq, m - begin);
    for (index_t i = 0; i < rows; ++i) {
      if constexpr (kDouble) {
        std::copy_n(queries.row(begin + i), d, &s.scaled[i * d]);
      } else {
        const int shift = linalg::pow2_shift(queries.row(begin + i), d);
        linalg::scale_copy(queries.row(begin + i), d, shift, &s.scaled[i * d]);
      }
      s.candidates[i].reset();
    }
    const MatrixView<const P> tile(s.scaled.data(), rows, d);
    for (index_t first = 0; first < n; first += key_block) {
      const index_t count = std::min(key_block, n - first);
      const MatrixView<P> out(s.products.data(), rows, count, key_block);
      if constexpr (kDouble)
        linalg::dgemm(false, true, 1.0, tile, key_rows(s, first, count), 0.0, out);
      else
        linalg::sgemm(false, true, 1.0f, tile, key_rows(s, first, count), 0.0f, out);
      for (index_t i = 0; i < rows; ++i) add_block(s.candidates[i], begin + i, out.row(i), first, count);
    }
    for (index_t i = 0; i < rows; ++i) {
      Candidates& c = s.candidates[i];
      if (c.total_sq == 0.0) {
        ++stats.zero_queries;
        continue;
      }
      c.prune(eps);
      for (HeavyEntry& e : c.entries) e.score /= c.total_sq;
      found.insert(found.end(), c.entries.begin(), c.entries.end());
    }
  };
  HeavyStats total = detail::search_tiles_in_order((m + tq - 1) / tq, make_scratch, search_tile, sink, [](index_t) {});
  total.queries = m;
  return total;
}

template <class T>
HeavyStats brute_force_with(BruteForceProducts products, ConstMatrixF queries, MatrixView<const T> keys, double eps,
                            const HeavySink& sink) {
  return products == BruteForceProducts::f64 ? brute_force<double>(queries, keys, eps, sink)
                                             : brute_force<float>(queries, keys, eps, sink);
}
}  // namespace

HeavyStats brute_force_heavy(ConstMatrixF queries, ConstMatrixF keys, double eps, const HeavySink& sink,
                             BruteForceProducts products) {
  return brute_force_with(products, queries, keys, eps, sink);
}
HeavyStats brute_force_heavy(ConstMatrixF queries, MatrixView<const Half> keys, double eps, const HeavySink& sink,
                             BruteForceProducts products) {
  return brute_force_with(products, queries, keys, eps, sink);
}
HeavyStats brute_force_heavy(ConstMatrixF queries, MatrixView<const BFloat16> keys, double eps, const HeavySink& sink,
                             BruteForceProducts products) {
  return brute_force_with(products, queries, keys, eps, sink);
}

}  // namespace levattn
