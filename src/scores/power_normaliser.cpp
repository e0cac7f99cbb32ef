#include "levattn/scores/power_normaliser.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <variant>
#include <vector>

#include "core/first_error.hpp"
#include "levattn/core/finite_rows.hpp"
#include "levattn/scores/lewis.hpp"
#include "linalg/blas.hpp"
#include "linalg/counter_random.hpp"
#include "linalg/scaled_rows.hpp"
#include "linalg/widen_rows.hpp"

namespace levattn {

namespace {

constexpr std::uint64_t kStreamSample = 21;
constexpr index_t kQueryTile = 64;
constexpr index_t kMaxFeatures = 4096;
constexpr double kLn2 = 0.6931471805599453;

// x^p for x ≥ 0, with exact products for small integer p.
double power(double x, double p, int integer_p) {
  switch (integer_p) {
    case 1:
      return x;
    case 2:
      return x * x;
    case 3:
      return x * x * x;
    case 4: {
      const double y = x * x;
      return y * y;
    }
    case 6: {
      const double y = x * x * x;
      return y * y;
    }
    case 8: {
      const double y = x * x;
      const double z = y * y;
      return z * z;
    }
    default:
      return std::pow(x, p);
  }
}

int integer_power(double p) {
  for (int k : {1, 2, 3, 4, 6, 8})
    if (p == k) return k;
  return 0;
}

// The degree-2 features of x·2^shift: x_a x_b (a ≤ b), off-diagonal ones times √2 (x: d float,
// Half or BFloat16 elements, widened exactly).
template <class T>
void features(const T* x, index_t d, int shift, double* out) {
  const double s = std::ldexp(1.0, shift);
  index_t f = 0;
  for (index_t a = 0; a < d; ++a) {
    const double xa = to_float(x[a]) * s;
    out[f++] = xa * xa;
    for (index_t b = a + 1; b < d; ++b) out[f++] = std::sqrt(2.0) * xa * (to_float(x[b]) * s);
  }
}

// ln Σ_l |<q,k_l>|^p over every row of keys, the products in double (16-bit rows widened exactly,
// a block at a time); −∞ when every product is 0.
template <class T>
double log_power_sum(const float* q, MatrixView<const T> keys, double p) {
  constexpr index_t kBlock = 64;
  const index_t n = keys.rows, d = keys.cols;
  std::vector<float> block(static_cast<size_t>(std::min(kBlock, n) * d));
  std::vector<double> products(static_cast<size_t>(n));
  for (index_t begin = 0; begin < n; begin += kBlock) {
    const index_t rows = std::min(kBlock, n - begin);
    widen_rows(keys, begin, rows, block.data());
    for (index_t r = 0; r < rows; ++r) products[begin + r] = linalg::dot_double(q, block.data() + r * d, d);
  }
  double top = 0.0;
  for (const double x : products) top = std::max(top, std::fabs(x));
  if (top == 0.0) return -INFINITY;
  const int ip = integer_power(p);
  double total = 0.0;
  for (const double x : products) total += power(std::fabs(x) / top, p, ip);
  return std::log(total) + p * std::log(top);
}

}  // namespace

const char* normaliser_kind_name(NormaliserKind kind) {
  switch (kind) {
    case NormaliserKind::exact_gram:
      return "exact_gram";
    case NormaliserKind::exact_moments:
      return "exact_moments";
    case NormaliserKind::sampled:
      return "sampled";
  }
  return "?";
}

PowerNormaliser::PowerNormaliser(ConstMatrixF keys, double p, const std::vector<double>& sensitivities,
                                 const PowerNormaliserOptions& options)
    : keys_(keys), dim_(keys.cols), p_(p), options_(options), gram_(std::max<index_t>(keys.cols, 1)) {
  build(keys, sensitivities);
}

PowerNormaliser::PowerNormaliser(MatrixView<const Half> keys, double p, const std::vector<double>& sensitivities,
                                 const PowerNormaliserOptions& options)
    : keys_(keys), dim_(keys.cols), p_(p), options_(options), gram_(std::max<index_t>(keys.cols, 1)) {
  build(keys, sensitivities);
}

PowerNormaliser::PowerNormaliser(MatrixView<const BFloat16> keys, double p, const std::vector<double>& sensitivities,
                                 const PowerNormaliserOptions& options)
    : keys_(keys), dim_(keys.cols), p_(p), options_(options), gram_(std::max<index_t>(keys.cols, 1)) {
  build(keys, sensitivities);
}

template <class T>
void PowerNormaliser::build(MatrixView<const T> keys, const std::vector<double>& sensitivities) {
  check_power_exponent(p_);
  require(keys.rows >= 1 && keys.cols >= 1,
          "keys: need at least one key of dimension ≥ 1, got " + shape_string(keys.rows, keys.cols));
  require(options_.delta > 0.0 && options_.delta < 1.0, "normaliser: delta must lie in (0, 1)");
  require(options_.failure > 0.0 && options_.failure < 1.0, "normaliser: failure probability must lie in (0, 1)");
  require_finite_rows(keys, "keys");
  const index_t d = keys.cols;
  const index_t D = d * (d + 1) / 2;
  key_shift_ = linalg::pow2_shift(keys);

  if (options_.policy == NormaliserPolicy::exact)
    require(p_ == 2.0 || (p_ == 4.0 && D <= kMaxFeatures),
            "normaliser: an exact normaliser exists for p = 2, and for p = 4 when d ≤ 90");
  const bool moments_fit = p_ == 4.0 && D <= kMaxFeatures &&
                           (options_.policy == NormaliserPolicy::exact ||
                            double(keys.rows) * double(D) * double(D) <= options_.moment_budget);
  if (p_ == 2.0 && options_.policy != NormaliserPolicy::sampled) {
    kind_ = NormaliserKind::exact_gram;
    gram_.fit(keys);
  } else if (moments_fit && options_.policy != NormaliserPolicy::sampled) {
    kind_ = NormaliserKind::exact_moments;
    features_ = D;
    build_moments(keys);
  } else {
    kind_ = NormaliserKind::sampled;
    require(static_cast<index_t>(sensitivities.size()) == keys.rows,
            "normaliser: sampling needs one sensitivity per key");
    build_sample(keys, sensitivities);
  }
}

template <class T>
void PowerNormaliser::build_moments(MatrixView<const T> keys) {
  const index_t n = keys.rows, d = keys.cols, D = features_;
  moments_.assign(static_cast<size_t>(D * D), 0.0);
  constexpr index_t kBlock = 512;
  std::vector<double> phi(static_cast<size_t>(kBlock * D));
  for (index_t begin = 0; begin < n; begin += kBlock) {
    const index_t rows = std::min(kBlock, n - begin);
#pragma omp parallel for schedule(static)
    for (index_t r = 0; r < rows; ++r) features(keys.row(begin + r), d, key_shift_, phi.data() + r * D);
    linalg::dsyrk_upper(true, 1.0, ConstMatrixD(phi.data(), rows, D), 1.0, MatrixD(moments_.data(), D, D));
  }
  for (index_t a = 0; a < D; ++a)
    for (index_t b = 0; b < a; ++b) moments_[a * D + b] = moments_[b * D + a];
  moment_scale_.resize(static_cast<size_t>(D));
  for (index_t a = 0; a < D; ++a) moment_scale_[a] = std::sqrt(moments_[a * D + a]);
  const double cu = double(n + 2 * D + 16) * std::ldexp(1.0, -53);
  moment_rounding_ = 1.01 * cu / (1.0 - cu);
}

template <class T>
void PowerNormaliser::build_sample(MatrixView<const T> keys, const std::vector<double>& s) {
  const double delta = options_.delta;
  beta_ = 2.0 * (1.0 + delta / 3.0) * std::log(2.0 / options_.failure) / (delta * delta);
  const index_t d = keys.cols;
  expected_size_ = 0.0;
  for (index_t j = 0; j < keys.rows; ++j) {
    if (!(s[j] >= 0.0 && std::isfinite(s[j])))
      throw Error(ErrorKind::bad_input, "normaliser: sensitivity " + std::to_string(j) + " must be finite and ≥ 0");
    const double pi = std::min(1.0, beta_ * s[j]);
    expected_size_ += pi;
    if (pi > 0.0 &&
        (pi >= 1.0 || detail::counter_uniform(options_.seed, kStreamSample, static_cast<std::uint64_t>(j), 0) < pi)) {
      sample_.push_back(j);
      inverse_pi_.push_back(1.0 / pi);
    }
  }
  const double scale = std::ldexp(1.0, key_shift_);
  sample_keys_.resize(sample_.size() * static_cast<size_t>(d));
  for (size_t i = 0; i < sample_.size(); ++i)
    for (index_t c = 0; c < d; ++c) sample_keys_[i * d + c] = to_float(keys(sample_[i], c)) * scale;
}

template <class T>
void PowerNormaliser::log_normalisers_of(MatrixView<const T> queries, double* out) const {
  const index_t d = dim_;
  require(queries.cols == d,
          "queries have " + std::to_string(queries.cols) + " columns but keys have " + std::to_string(d));
  require_finite_rows(queries, "queries");
  if (kind_ == NormaliserKind::exact_gram) {
    gram_.normalisers(queries, out);
    for (index_t i = 0; i < queries.rows; ++i) out[i] = out[i] > 0.0 ? std::log(out[i]) : -INFINITY;
    return;
  }
  const index_t m = queries.rows, tiles = (m + kQueryTile - 1) / kQueryTile;
  const int ip = integer_power(p_);
  FirstError error;  // a GEMM's dimension check, or scratch that does not fit
#pragma omp parallel
  {
    std::vector<double> qd, prod;
    std::vector<float> wide;  // 16-bit queries: the tile widened
    std::vector<int> shift(static_cast<size_t>(kQueryTile));
#pragma omp for schedule(static)
    for (index_t t = 0; t < tiles; ++t) {
      if (error.failed()) continue;
      try {
        const index_t begin = t * kQueryTile, rows = std::min(kQueryTile, m - begin);
        ConstMatrixF tile;
        if constexpr (std::is_same_v<T, float>) {
          tile = queries.rows_range(begin, begin + rows);
        } else {
          wide.resize(static_cast<size_t>(rows * d));
          widen_rows(queries, begin, rows, wide.data());
          tile = ConstMatrixF(wide.data(), rows, d);
        }
        for (index_t i = 0; i < rows; ++i) shift[i] = linalg::pow2_shift(tile.row(i), d);
        if (kind_ == NormaliserKind::exact_moments) {
          const index_t D = features_;
          qd.resize(static_cast<size_t>(rows * D));
          prod.resize(static_cast<size_t>(rows * D));
          for (index_t i = 0; i < rows; ++i) features(tile.row(i), d, shift[i], qd.data() + i * D);
          linalg::dgemm(false, false, 1.0, ConstMatrixD(qd.data(), rows, D), ConstMatrixD(moments_.data(), D, D), 0.0,
                        MatrixD(prod.data(), rows, D));
          for (index_t i = 0; i < rows; ++i) {
            double total = 0.0, weighted = 0.0;  // φ(q)ᵀMφ(q) and Σ_a |φ_a(q)|·√M_aa, both scaled
            for (index_t f = 0; f < D; ++f) {
              total += prod[i * D + f] * qd[i * D + f];
              weighted += std::fabs(qd[i * D + f]) * moment_scale_[f];
            }
            if (weighted == 0.0)  // φ(q) vanishes wherever M does not: N(q) = 0 exactly
              out[begin + i] = -INFINITY;
            else if (moment_rounding_ * weighted * weighted <= kMomentTrust * total)
              out[begin + i] = std::log(total) - 4.0 * (shift[i] + key_shift_) * kLn2;
            else  // the rounding bound does not vouch for φ(q)ᵀMφ(q)
              out[begin + i] = log_normaliser_over_keys(tile.row(i));
          }
          continue;
        }
        const index_t S = sample_size();
        if (S == 0) {
          for (index_t i = 0; i < rows; ++i) out[begin + i] = -INFINITY;
          continue;
        }
        qd.resize(static_cast<size_t>(rows * d));
        prod.resize(static_cast<size_t>(rows * S));
        for (index_t i = 0; i < rows; ++i) {
          const double s = std::ldexp(1.0, shift[i]);
          for (index_t c = 0; c < d; ++c) qd[i * d + c] = tile(i, c) * s;
        }
        linalg::dgemm(false, true, 1.0, ConstMatrixD(qd.data(), rows, d), ConstMatrixD(sample_keys_.data(), S, d), 0.0,
                      MatrixD(prod.data(), rows, S));
        for (index_t i = 0; i < rows; ++i) {
          const double* x = prod.data() + i * S;
          double top = 0.0;
          for (index_t l = 0; l < S; ++l) top = std::max(top, std::fabs(x[l]));
          if (top == 0.0) {
            out[begin + i] = -INFINITY;
            continue;
          }
          double total = 0.0;
          for (index_t l = 0; l < S; ++l) total += power(std::fabs(x[l]) / top, p_, ip) * inverse_pi_[l];
          out[begin + i] = std::log(total) + p_ * (std::log(top) - (shift[i] + key_shift_) * kLn2);
        }
      } catch (...) {
        error.capture();
      }
    }
  }
  error.rethrow_if_any();
}

double PowerNormaliser::log_normaliser_over_keys(const float* q) const {
  return std::visit([&](auto keys) { return log_power_sum(q, keys, p_); }, keys_);
}

void PowerNormaliser::log_normalisers(ConstMatrixF queries, double* out) const { log_normalisers_of(queries, out); }
void PowerNormaliser::log_normalisers(MatrixView<const Half> queries, double* out) const {
  log_normalisers_of(queries, out);
}
void PowerNormaliser::log_normalisers(MatrixView<const BFloat16> queries, double* out) const {
  log_normalisers_of(queries, out);
}

}  // namespace levattn
