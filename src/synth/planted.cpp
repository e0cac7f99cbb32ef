#include "levattn/synth/planted.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace levattn {

namespace {

constexpr index_t kRowsPerStream = 4096;  // rows drawn from one seeded stream

// An independent, reproducible stream for (seed, purpose, block).
std::mt19937_64 stream(std::uint64_t seed, std::uint64_t purpose, std::uint64_t block) {
  std::seed_seq seq{seed, purpose, block};
  return std::mt19937_64(seq);
}

// rows×d standard normals scaled by `scale`, drawn in seeded blocks (parallel, deterministic).
void fill_gaussian(std::vector<float>& out, index_t rows, index_t d, double scale,
                   std::uint64_t seed, std::uint64_t purpose) {
  out.resize(static_cast<size_t>(rows * d));
  const index_t blocks = (rows + kRowsPerStream - 1) / kRowsPerStream;
#pragma omp parallel for schedule(static)
  for (index_t b = 0; b < blocks; ++b) {
    auto rng = stream(seed, purpose, static_cast<std::uint64_t>(b));
    std::normal_distribution<double> normal;
    const index_t end = std::min(rows, (b + 1) * kRowsPerStream) * d;
    for (index_t i = b * kRowsPerStream * d; i < end; ++i)
      out[i] = static_cast<float>(scale * normal(rng));
  }
}

}  // namespace

PlantedData make_planted(const PlantedOptions& o) {
  require(o.d >= 1 && o.m >= 0 && o.directions >= 1 && o.copies >= 1,
          "planted model: need d ≥ 1, m ≥ 0, directions ≥ 1, copies ≥ 1");
  require(o.n >= o.directions * o.copies,
          "planted model: n must be at least directions × copies");
  require(std::isfinite(o.strength) && o.strength > 0 && std::isfinite(o.query_noise) &&
              o.query_noise >= 0,
          "planted model: strength must be > 0 and query noise ≥ 0");
  PlantedData data;
  data.n = o.n, data.m = o.m, data.d = o.d;
  const double inv_sqrt_d = 1.0 / std::sqrt(static_cast<double>(o.d));

  auto rng = stream(o.seed, 0, 0);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform;
  std::vector<double> u(static_cast<size_t>(o.directions * o.d));  // unit directions
  std::vector<double> strength(static_cast<size_t>(o.directions));
  for (index_t t = 0; t < o.directions; ++t) {
    double sq = 0.0;
    for (index_t c = 0; c < o.d; ++c) sq += (u[t * o.d + c] = normal(rng)) * u[t * o.d + c];
    for (index_t c = 0; c < o.d; ++c) u[t * o.d + c] /= std::sqrt(sq);
    strength[t] = o.strength * std::sqrt(double(o.n) / double(o.d)) * (0.5 + uniform(rng));
  }
  // Positions of the relevant keys: a uniform sample of directions·copies rows.
  std::vector<index_t> rows(static_cast<size_t>(o.n));
  std::iota(rows.begin(), rows.end(), index_t{0});
  const index_t planted = o.directions * o.copies;
  for (index_t i = 0; i < planted; ++i)
    std::swap(rows[i], rows[std::uniform_int_distribution<index_t>(i, o.n - 1)(rng)]);

  fill_gaussian(data.keys, o.n, o.d, inv_sqrt_d, o.seed, 1);
  for (index_t i = 0; i < planted; ++i) {
    const index_t t = i / o.copies, row = rows[i];
    for (index_t c = 0; c < o.d; ++c)
      data.keys[row * o.d + c] += static_cast<float>(strength[t] * u[t * o.d + c]);
    data.relevant_keys.push_back(row);
  }
  std::sort(data.relevant_keys.begin(), data.relevant_keys.end());

  fill_gaussian(data.queries, o.m, o.d, o.query_noise * inv_sqrt_d, o.seed, 2);
  data.query_direction.resize(static_cast<size_t>(o.m));
  for (index_t i = 0; i < o.m; ++i) {
    const index_t t = std::uniform_int_distribution<index_t>(0, o.directions - 1)(rng);
    data.query_direction[i] = t;
    for (index_t c = 0; c < o.d; ++c) data.queries[i * o.d + c] += static_cast<float>(u[t * o.d + c]);
  }
  return data;
}

}  // namespace levattn
