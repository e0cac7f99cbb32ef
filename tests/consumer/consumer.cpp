// Uses levattn through its umbrella header only: the leverage scores and the universal set of a
// small key matrix, checked against scores solved in double here (normal equations by Gaussian
// elimination), and the version header against the version the build asked for. Exit 0 on success.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include <levattn/levattn.hpp>

namespace {

constexpr int kN = 40, kD = 3;

// τ_j = k_jᵀ G⁻¹ k_j with G = KᵀK, by elimination on [G | k_j] in double.
double reference_score(const std::vector<float>& keys, int j) {
  double a[kD][kD + 1] = {};
  for (int r = 0; r < kN; ++r)
    for (int p = 0; p < kD; ++p)
      for (int q = 0; q < kD; ++q) a[p][q] += double(keys[r * kD + p]) * keys[r * kD + q];
  for (int p = 0; p < kD; ++p) a[p][kD] = keys[j * kD + p];
  for (int c = 0; c < kD; ++c) {
    int pivot = c;
    for (int r = c + 1; r < kD; ++r)
      if (std::fabs(a[r][c]) > std::fabs(a[pivot][c])) pivot = r;
    for (int k = 0; k <= kD; ++k) std::swap(a[c][k], a[pivot][k]);
    for (int r = 0; r < kD; ++r) {
      if (r == c) continue;
      const double f = a[r][c] / a[c][c];
      for (int k = c; k <= kD; ++k) a[r][k] -= f * a[c][k];
    }
  }
  double tau = 0.0;
  for (int p = 0; p < kD; ++p) tau += double(keys[j * kD + p]) * (a[p][kD] / a[p][p]);
  return tau;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], levattn::version_string()) != 0) {
    std::fprintf(stderr, "version header says %s, expected %s\n", levattn::version_string(), argv[1]);
    return 1;
  }
  // Keys spread over the first two axes, and one key alone along the third: only that key can be
  // given attention 1, so it alone has τ = 1.
  std::vector<float> keys(kN * kD, 0.0f);
  for (int j = 0; j < kN - 1; ++j) {
    keys[j * kD + 0] = std::cos(0.37f * float(j));
    keys[j * kD + 1] = std::sin(0.37f * float(j)) + 0.01f * float(j);
  }
  keys[(kN - 1) * kD + 2] = 5.0f;

  const levattn::ConstMatrixF view(keys.data(), kN, kD);
  levattn::LeverageScorer scorer(kD);
  scorer.fit(view);
  const std::vector<double> tau = scorer.scores(view);
  for (int j = 0; j < kN; ++j) {
    const double want = reference_score(keys, j);
    if (std::fabs(tau[j] - want) > 1e-5 * std::max(1.0, want)) {
      std::fprintf(stderr, "tau[%d] = %.9g, reference %.9g\n", j, tau[j], want);
      return 1;
    }
  }
  const double eps = 0.5;
  const levattn::UniversalSet u = levattn::select_by_threshold(tau.data(), kN, eps, double(scorer.rank()));
  if (u.size() != 1 || u.indices[0] != kN - 1 || !u.within_bound) {
    std::fprintf(stderr, "universal set at eps %.2f: %d keys, expected only key %d\n", eps, int(u.size()), kN - 1);
    return 1;
  }
  std::printf("levattn %s: universal set {%d} at eps %.2f, %d scores match the reference\n", levattn::version_string(),
              int(u.indices[0]), eps, kN);
  return 0;
}
