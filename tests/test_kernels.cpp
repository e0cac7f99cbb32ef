// The AVX-512, AVX2 and portable kernels against a plain double loop, on awkward shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "linalg/kernels.hpp"

namespace levattn::kernels {
namespace {

std::vector<const KernelSet*> available() {
  std::vector<const KernelSet*> sets{&generic_kernels()};
  if (use_avx2()) sets.push_back(&avx2_kernels());
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    sets.push_back(&avx512_kernels());
  return sets;
}

std::vector<float> random_rows(index_t rows, index_t stride, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<size_t>(rows * stride));
  for (auto& v : x) v = normal(rng);
  return x;
}

TEST(Kernels, GramMatchesPlainLoop) {
  for (const KernelSet* k : available())
    for (index_t d : {1, 7, 16, 17, 40, 64, 100})
      for (index_t rows : {1, 5, 8, 255, 256}) {
        const index_t stride = d + 3, dpad = padded_dim(d);
        const auto x = random_rows(rows, stride, 10 * d + rows);
        std::vector<double> G(static_cast<size_t>(dpad * dpad), 0.5);  // += onto existing values
        ASSERT_TRUE(k->gram(x.data(), rows, d, stride, G.data()));
        for (index_t a = 0; a < d; ++a)
          for (index_t b = a; b < d; ++b) {
            double want = 0.5;
            for (index_t r = 0; r < rows; ++r) want += double(x[r * stride + a]) * x[r * stride + b];
            EXPECT_NEAR(G[a * dpad + b], want, 1e-12 * (1 + std::abs(want))) << k->name << " d " << d;
          }
      }
}

TEST(Kernels, TrapezoidSumSqMatchesPlainLoop) {
  for (const KernelSet* k : available())
    for (index_t d : {1, 7, 16, 33, 64})
      for (index_t t_rows : {index_t{1}, d / 2 + 1, d})
        for (index_t rows : {1, 9, 256}) {
          const index_t stride = d + 1, dpad = padded_dim(d), tpad = padded_dim(t_rows);
          const auto x = random_rows(rows, stride, d + t_rows + rows);
          std::mt19937_64 rng(d * 7 + t_rows);
          std::normal_distribution<double> normal;
          std::vector<double> T(static_cast<size_t>(t_rows * d), 0.0), Tt(static_cast<size_t>(dpad * tpad), 0.0);
          for (index_t i = 0; i < t_rows; ++i)
            for (index_t c = i; c < d; ++c) Tt[c * tpad + i] = T[i * d + c] = normal(rng);
          std::vector<double> out(static_cast<size_t>(rows));
          ASSERT_TRUE(k->trapezoid_sumsq(x.data(), rows, d, stride, Tt.data(), t_rows, out.data()));
          for (index_t r = 0; r < rows; ++r) {
            double want = 0.0;
            for (index_t i = 0; i < t_rows; ++i) {
              double y = 0.0;
              for (index_t c = i; c < d; ++c) y += T[i * d + c] * x[r * stride + c];
              want += y * y;
            }
            EXPECT_NEAR(out[r], want, 1e-12 * want) << k->name << " d " << d << " t " << t_rows;
          }
        }
}

// The float variant: y = T x in float, so each |y_i| is off by at most about d·2⁻²⁴·a_i with
// a_i = Σ_c |T_ic x_c|, and the sum of squares by at most 3·d·2⁻²⁴·Σ_i a_i² (asserted with 4).
TEST(Kernels, TrapezoidSumSqFloatIsWithinFloatRoundingOfPlainLoop) {
  for (const KernelSet* k : available())
    for (index_t d : {1, 7, 16, 33, 64})
      for (index_t t_rows : {index_t{1}, d / 2 + 1, d})
        for (index_t rows : {1, 9, 256}) {
          const index_t stride = d + 1, dpad = padded_dim(d), tpad = padded_dim_float(t_rows);
          const auto x = random_rows(rows, stride, d + t_rows + rows + 1);
          std::mt19937_64 rng(d * 5 + t_rows);
          std::normal_distribution<float> normal;
          std::vector<float> Ttf(static_cast<size_t>(dpad * tpad), 0.0f);
          for (index_t i = 0; i < t_rows; ++i)
            for (index_t c = i; c < d; ++c) Ttf[c * tpad + i] = normal(rng);
          std::vector<double> out(static_cast<size_t>(rows));
          k->trapezoid_sumsq_float(x.data(), rows, d, stride, Ttf.data(), t_rows, out.data());
          for (index_t r = 0; r < rows; ++r) {
            double want = 0.0, scale = 0.0;
            for (index_t i = 0; i < t_rows; ++i) {
              double y = 0.0, a = 0.0;
              for (index_t c = i; c < d; ++c) {
                y += double(Ttf[c * tpad + i]) * x[r * stride + c];
                a += std::abs(double(Ttf[c * tpad + i]) * x[r * stride + c]);
              }
              want += y * y;
              scale += a * a;
            }
            EXPECT_NEAR(out[r], want, 4.0 * double(d) * 0x1p-24 * scale) << k->name << " d " << d << " t " << t_rows;
          }
        }
}

TEST(Kernels, NonFiniteInputIsReportedWhereverItIs) {
  for (const KernelSet* k : available())
    for (index_t pos : {0, 5, 16, 17 * 3 + 16})
      for (float bad : {std::nanf(""), INFINITY, -INFINITY}) {
        const index_t d = 17, rows = 4;
        auto x = random_rows(rows, d, 3);
        x[pos] = bad;
        std::vector<double> G(static_cast<size_t>(padded_dim(d) * padded_dim(d)), 0.0), out(rows);
        std::vector<double> Tt(static_cast<size_t>(padded_dim(d) * padded_dim(d)), 1.0);
        EXPECT_FALSE(k->gram(x.data(), rows, d, d, G.data())) << k->name << " pos " << pos;
        EXPECT_FALSE(k->trapezoid_sumsq(x.data(), rows, d, d, Tt.data(), d, out.data())) << k->name;
      }
}

}  // namespace
}  // namespace levattn::kernels
