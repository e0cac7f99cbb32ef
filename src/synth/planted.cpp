#include "levattn/synth/planted.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include <Eigen/Dense>

namespace levattn {

namespace {

constexpr index_t kRowsPerStream = 4096;  // rows drawn from one seeded stream

// An independent, reproducible stream for (seed, purpose, block).
std::mt19937_64 stream(std::uint64_t seed, std::uint64_t purpose, std::uint64_t block) {
  std::seed_seq seq{seed, purpose, block};
  return std::mt19937_64(seq);
}

// rows×d standard normals scaled by `scale`, drawn in seeded blocks (parallel, deterministic).
void fill_gaussian(std::vector<float>& out, index_t rows, index_t d, double scale, std::uint64_t seed,
                   std::uint64_t purpose) {
  out.resize(static_cast<size_t>(rows * d));
  const index_t blocks = (rows + kRowsPerStream - 1) / kRowsPerStream;
#pragma omp parallel for schedule(static)
  for (index_t b = 0; b < blocks; ++b) {
    auto rng = stream(seed, purpose, static_cast<std::uint64_t>(b));
    std::normal_distribution<double> normal;
    const index_t end = std::min(rows, (b + 1) * kRowsPerStream) * d;
    for (index_t i = b * kRowsPerStream * d; i < end; ++i) out[i] = static_cast<float>(scale * normal(rng));
  }
}

// A random orthonormal d×s basis (column-major in an Eigen matrix), from its own stream.
Eigen::MatrixXd noise_basis(index_t d, index_t s, std::uint64_t seed) {
  auto rng = stream(seed, 3, 0);
  std::normal_distribution<double> normal;
  Eigen::MatrixXd g(d, s);
  for (index_t c = 0; c < s; ++c)
    for (index_t r = 0; r < d; ++r) g(r, c) = normal(rng);
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
  return qr.householderQ() * Eigen::MatrixXd::Identity(d, s);
}

}  // namespace

PlantedData make_planted(const PlantedOptions& o) {
  require(o.d >= 1 && o.m >= 0 && o.directions >= 1 && o.copies >= 1,
          "planted model: need d ≥ 1, m ≥ 0, directions ≥ 1, copies ≥ 1");
  require(o.n >= o.directions * o.copies, "planted model: n must be at least directions × copies");
  require(std::isfinite(o.strength) && o.strength > 0 && std::isfinite(o.query_noise) && o.query_noise >= 0 &&
              std::isfinite(o.key_noise) && o.key_noise >= 0 && std::isfinite(o.noise_strength) &&
              o.noise_strength >= 0,
          "planted model: strength must be > 0, query noise, key noise and noise strength ≥ 0");
  require(o.noise_rank >= 0 && o.noise_rank <= o.d - o.directions,
          "planted model: need 0 ≤ noise rank ≤ d − directions");
  require(o.value_dim >= 0, "planted model: value dimension must be ≥ 0");
  PlantedData data;
  data.n = o.n, data.m = o.m, data.d = o.d, data.value_dim = o.value_dim;
  const index_t s = o.noise_rank;
  const Eigen::MatrixXd basis = noise_basis(o.d, s, o.seed);
  const double inv_sqrt_d = 1.0 / std::sqrt(static_cast<double>(o.d));

  auto rng = stream(o.seed, 0, 0);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform;
  std::vector<double> u(static_cast<size_t>(o.directions * o.d));  // unit directions
  std::vector<double> strength(static_cast<size_t>(o.directions));
  for (index_t t = 0; t < o.directions; ++t) {
    double sq = 0.0;
    for (index_t c = 0; c < o.d; ++c) sq += (u[t * o.d + c] = normal(rng)) * u[t * o.d + c];
    if (s > 0) {  // project out the noise subspace
      Eigen::Map<Eigen::VectorXd> ut(u.data() + t * o.d, o.d);
      ut -= basis * (basis.transpose() * ut);
      sq = ut.squaredNorm();
    }
    for (index_t c = 0; c < o.d; ++c) u[t * o.d + c] /= std::sqrt(sq);
    strength[t] = o.strength * std::sqrt(double(o.n) / double(o.d)) * (0.5 + uniform(rng));
  }
  // Positions of the relevant keys: a uniform sample of directions·copies rows.
  std::vector<index_t> rows(static_cast<size_t>(o.n));
  std::iota(rows.begin(), rows.end(), index_t{0});
  const index_t planted = o.directions * o.copies;
  for (index_t i = 0; i < planted; ++i)
    std::swap(rows[i], rows[std::uniform_int_distribution<index_t>(i, o.n - 1)(rng)]);

  fill_gaussian(data.keys, o.n, o.d, o.key_noise * inv_sqrt_d, o.seed, 1);
  if (s > 0 && o.noise_strength > 0) {  // noise keys near the subspace: + a·√(n/d)·B z / √s
    std::vector<float> z;
    fill_gaussian(z, o.n, s, o.noise_strength * std::sqrt(double(o.n) / double(o.d) / double(s)), o.seed, 4);
    std::vector<char> relevant(static_cast<size_t>(o.n), 0);
    for (index_t i = 0; i < o.directions * o.copies; ++i) relevant[rows[i]] = 1;
#pragma omp parallel for schedule(static)
    for (index_t row = 0; row < o.n; ++row) {
      if (relevant[row]) continue;
      for (index_t c = 0; c < o.d; ++c) {
        double x = 0.0;
        for (index_t k = 0; k < s; ++k) x += basis(c, k) * z[row * s + k];
        data.keys[row * o.d + c] += static_cast<float>(x);
      }
    }
  }
  for (index_t i = 0; i < planted; ++i) {
    const index_t t = i / o.copies, row = rows[i];
    for (index_t c = 0; c < o.d; ++c) data.keys[row * o.d + c] += static_cast<float>(strength[t] * u[t * o.d + c]);
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
  if (o.value_dim > 0) fill_gaussian(data.values, o.n, o.value_dim, 1.0, o.seed, 5);
  return data;
}

PlantedPrediction predict_planted(const PlantedOptions& o) {
  const double weak = 0.25 * o.strength * o.strength;  // (strength/2)²
  const double n = static_cast<double>(o.n), d = static_cast<double>(o.d), ln = std::log(n);
  PlantedPrediction p;
  p.relevant_min = weak / (static_cast<double>(o.copies) * weak + o.key_noise * o.key_noise);
  p.noise_max = (d + 2.0 * std::sqrt(d * ln) + 2.0 * ln) / n;
  p.recovers = p.relevant_min > p.noise_max;
  return p;
}

}  // namespace levattn
