// LevAttention against independent references: with every key kept it is exact attention; its
// selection is the top-k of float64 SVD leverage scores (with sinks); its output is attention
// restricted to the kept keys (and the causal window), with the pow:2 missing mass of a brute force;
// a threshold set keeps every entry A ≥ ε of every query; 16-bit inputs give the widened run's
// bits; for pow:P (P ≠ 2) the keys are the top
// ℓP Lewis weights of a float64 fixed point and the sampled normaliser stays within its δ bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <set>

#include "levattn/attention/exact.hpp"
#include "levattn/attention/lev_attention.hpp"
#include "reference.hpp"

namespace levattn::test {
namespace {

struct LevRun {
  std::vector<float> out;
  LevAttentionReport report;
};

LevRun run_lev(const Floats& Q, const Floats& K, const Floats& V, const AttentionOptions& a,
               const LevSelectOptions& s) {
  LevRun r{std::vector<float>(static_cast<size_t>(Q.rows * V.cols)), {}};
  r.report = attend_lev(ConstHeadsF(Q.view()), ConstHeadsF(K.view()), ConstHeadsF(V.view()), a, s,
                        HeadsF(MatrixF(r.out.data(), Q.rows, V.cols)));
  return r;
}

double relative_error(const std::vector<float>& got, const MatD& ref) {
  double num = 0, den = 0;
  for (index_t i = 0; i < ref.rows(); ++i)
    for (index_t c = 0; c < ref.cols(); ++c) {
      num += std::pow(got[i * ref.cols() + c] - ref(i, c), 2);
      den += ref(i, c) * ref(i, c);
    }
  return std::sqrt(num / den);
}

std::vector<index_t> all_rows(index_t n) {
  std::vector<index_t> r(n);
  for (index_t i = 0; i < n; ++i) r[i] = i;
  return r;
}

// The reference of LevAttention under options a (causal or not) keeping the keys in `kept` (which
// must outlive the spec) and, when causal, each query's `window` latest keys; softmax normalises
// over the kept keys, |x|^p over all of them.
AttentionSpec kept_keys_spec(const AttentionOptions& a, index_t d, const std::set<index_t>& kept, index_t window) {
  AttentionSpec spec;
  spec.softmax = a.f.kind == ScoreKind::softmax;
  spec.scale = effective_scale(a, d);
  if (a.causal) spec.visible = [](index_t i, index_t j) { return j <= i; };
  spec.kept = [&kept, window](index_t i, index_t j) { return kept.count(j) > 0 || (window > 0 && j > i - window); };
  spec.normalise_over_kept = spec.softmax;
  return spec;
}

// The reference of causal |x|^p LevAttention (options a) whose n_q queries are the last of the
// keys' positions (query i sees keys j ≤ i + offset, offset = n_k − n_q), keeping the keys in
// `kept` (which must outlive the spec) and each query's `window` latest keys; normalised over
// every visible key.
AttentionSpec causal_power_spec(const AttentionOptions& a, index_t d, index_t offset, const std::set<index_t>& kept,
                                index_t window) {
  AttentionSpec spec;
  spec.softmax = false;
  spec.scale = effective_scale(a, d);
  spec.visible = [offset](index_t i, index_t j) { return j <= i + offset; };
  spec.kept = [&kept, offset, window](index_t i, index_t j) { return kept.count(j) > 0 || j > i + offset - window; };
  spec.normalise_over_kept = false;
  return spec;
}

TEST(LevAttention, KeepingEveryKeyIsExactAttention) {
  const index_t n = 700, d = 32;
  const Floats Q = normal_matrix(n, d, 1), K = normal_matrix(n, d, 2), V = normal_matrix(n, d, 3);
  for (const ScoreFunction& f : {ScoreFunction::softmax(), ScoreFunction::power(2.0)})
    for (bool causal : {false, true})
      for (index_t window : {index_t{0}, index_t{50}}) {
        if (window > 0 && !causal) continue;
        AttentionOptions a;
        a.f = f;
        a.causal = causal;
        LevSelectOptions s;
        s.top_k = n;
        s.window = window;
        s.sinks = 4;
        const LevRun lev = run_lev(Q, K, V, a, s);
        std::vector<float> exact(static_cast<size_t>(n * d));
        attend_exact(Q.view(), K.view(), V.view(), a, MatrixF(exact.data(), n, d));
        double num = 0, den = 0;
        for (size_t i = 0; i < exact.size(); ++i) {
          num += std::pow(double(lev.out[i]) - exact[i], 2);
          den += double(exact[i]) * exact[i];
        }
        EXPECT_LE(std::sqrt(num / den), 1e-5) << f.name() << (causal ? " causal" : "") << " window " << window;
        EXPECT_EQ(lev.report.kept, std::vector<index_t>{n});
        if (f.kind == ScoreKind::power) {
          for (double m : lev.report.missing_mass) EXPECT_LE(m, 1e-5);
        }
      }
}

TEST(LevAttention, SelectionIsTheTopKOfReferenceScoresPlusSinks) {
  for (const std::string kind : {"gaussian", "heavy_tailed", "badly_scaled", "cond1e3"}) {
    const Floats K = make_keys(kind, 3000, 16, 5);
    const std::vector<double> ref = leverage_reference(K, 1e-7);
    for (index_t k : {1, 16, 200}) {
      LevSelectOptions s;
      s.top_k = k;
      s.sinks = 3;
      const std::vector<index_t> kept = lev_select(K.view(), s);
      std::vector<double> sorted = ref;
      std::sort(sorted.begin(), sorted.end(), std::greater<>());
      const double kth = sorted[k - 1];
      std::set<index_t> set(kept.begin(), kept.end());
      EXPECT_TRUE(std::is_sorted(kept.begin(), kept.end()));
      for (index_t j = 0; j < 3; ++j) EXPECT_TRUE(set.count(j)) << "sink " << j;
      index_t from_scores = 0;
      for (index_t j : kept)
        if (j >= 3 || ref[j] >= kth * (1 - 1e-4)) {
          EXPECT_GE(ref[j], kth * (1 - 1e-4)) << kind << " k=" << k << " key " << j;
          ++from_scores;
        }
      EXPECT_GE(from_scores, k - 3) << kind;
      EXPECT_LE(static_cast<index_t>(kept.size()), k + 3) << kind;
    }
  }
}

TEST(LevAttention, OutputIsAttentionOverTheKeptKeysWithExactMissingMass) {
  const index_t n = 900, d = 24, dv = 20;
  const Floats Q = normal_matrix(n, d, 11), K = make_keys("heavy_tailed", n, d, 12), V = normal_matrix(n, dv, 13);
  for (const ScoreFunction& f : {ScoreFunction::softmax(), ScoreFunction::power(2.0)})
    for (bool causal : {false, true}) {
      AttentionOptions a;
      a.f = f;
      a.causal = causal;
      a.scale = f.kind == ScoreKind::softmax ? 0.01 : 0.0;
      LevSelectOptions s;
      s.top_k = 64;
      s.sinks = 2;
      s.window = causal ? 16 : 0;
      const LevRun lev = run_lev(Q, K, V, a, s);
      const std::vector<index_t> kept = lev_select(K.view(), s);
      ASSERT_EQ(lev.report.kept_keys.size(), 1u);
      EXPECT_EQ(lev.report.kept_keys[0], kept) << "the report lists the kept keys";
      const std::set<index_t> set(kept.begin(), kept.end());
      const AttentionSpec spec = kept_keys_spec(a, d, set, causal ? 16 : 0);
      const AttentionRows ref = attention_rows_reference(Q, K, V, all_rows(n), spec);
      EXPECT_LE(relative_error(lev.out, ref.out), 1e-5) << f.name() << (causal ? " causal" : "");
      if (!spec.softmax) {
        ASSERT_EQ(lev.report.missing_mass.size(), static_cast<size_t>(n));
        double largest = 0.0;
        for (index_t i = 0; i < n; ++i) {
          EXPECT_NEAR(lev.report.missing_mass[i], 1.0 - ref.kept_mass[i], 1e-5) << "row " << i;
          largest = std::max(largest, 1.0 - ref.kept_mass[i]);
        }
        EXPECT_GT(largest, 1e-3) << "the check must see keys left out";
      }
    }
}

// Causal with fewer queries than keys (the queries are the last n_q positions, query i sees keys
// j ≤ i + n_k − n_q, as in decode): output and pow:2 missing mass against a brute force, for
// float32 and bf16 keys and values (the bf16 reference on the rounded values), and for three query
// heads sharing one key head (GQA).
TEST(LevAttention, CausalMissingMassWithFewerQueriesThanKeys) {
  const index_t n_q = 37, n_k = 1500, d = 24, dv = 8, offset = n_k - n_q, window = 16;
  const Floats Q = normal_matrix(n_q, d, 41), V = normal_matrix(n_k, dv, 43);
  const Floats K = make_keys("heavy_tailed", n_k, d, 42);
  AttentionOptions a;
  a.f = ScoreFunction::power(2.0);
  a.causal = true;
  LevSelectOptions s;
  s.top_k = 48;
  s.sinks = 2;
  s.window = window;
  // One query head's output (n_q × dv) and missing mass (n_q) against the brute force.
  const auto expect_reference = [&](const LevAttentionReport& report, const Floats& queries, const float* out,
                                    const double* missing, const Floats& keys, const Floats& values,
                                    const std::string& what) {
    ASSERT_EQ(report.kept_keys.size(), 1u) << what;
    const std::set<index_t> kept(report.kept_keys[0].begin(), report.kept_keys[0].end());
    const AttentionSpec spec = causal_power_spec(a, d, offset, kept, window);
    const AttentionRows ref = attention_rows_reference(queries, keys, values, all_rows(n_q), spec);
    EXPECT_LE(relative_error(std::vector<float>(out, out + n_q * dv), ref.out), 1e-5) << what;
    double largest = 0.0;
    for (index_t i = 0; i < n_q; ++i) {
      EXPECT_NEAR(missing[i], 1.0 - ref.kept_mass[i], 1e-5) << what << " row " << i;
      largest = std::max(largest, 1.0 - ref.kept_mass[i]);
    }
    EXPECT_GT(largest, 1e-3) << what << ": the check must see keys left out";
  };
  const LevRun lev = run_lev(Q, K, V, a, s);
  EXPECT_EQ(lev.report.kept_keys[0], lev_select(K.view(), s));
  ASSERT_EQ(lev.report.missing_mass.size(), static_cast<size_t>(n_q));
  expect_reference(lev.report, Q, lev.out.data(), lev.report.missing_mass.data(), K, V, "float32");

  const RoundedRows<BFloat16> K16 = round_rows<BFloat16>(K), V16 = round_rows<BFloat16>(V);
  std::vector<float> out(static_cast<size_t>(n_q * dv));
  const LevAttentionReport report =
      attend_lev(ConstHeadsF(Q.view()), HeadsView<const BFloat16>(K16.data.data(), 1, 1, n_k, d),
                 HeadsView<const BFloat16>(V16.data.data(), 1, 1, n_k, dv), a, s, HeadsF(out.data(), 1, 1, n_q, dv));
  EXPECT_EQ(report.kept_keys[0], lev_select(K16.view(), s));
  ASSERT_EQ(report.missing_mass.size(), static_cast<size_t>(n_q));
  expect_reference(report, Q, out.data(), report.missing_mass.data(), K16.widened, V16.widened, "bf16");

  const index_t group = 3;
  const Floats Qg = normal_matrix(group * n_q, d, 44);
  std::vector<float> out_g(static_cast<size_t>(group * n_q * dv));
  const LevAttentionReport report_g = attend_lev(ConstHeadsF(Qg.data.data(), 1, group, n_q, d), ConstHeadsF(K.view()),
                                                 ConstHeadsF(V.view()), a, s, HeadsF(out_g.data(), 1, group, n_q, dv));
  ASSERT_EQ(report_g.missing_mass.size(), static_cast<size_t>(group * n_q));
  for (index_t h = 0; h < group; ++h) {
    const Floats Qh{n_q, d, std::vector<float>(Qg.data.begin() + h * n_q * d, Qg.data.begin() + (h + 1) * n_q * d)};
    expect_reference(report_g, Qh, out_g.data() + h * n_q * dv, report_g.missing_mass.data() + h * n_q, K, V,
                     "GQA query head " + std::to_string(h));
  }
}

// Causal pow:2 over two batches of two key heads, each shared by two query heads, with more
// queries than one Gram snapshot covers (n_q = 300 > 256): every query head's output and missing
// mass against the brute force over its own key head's kept keys.
TEST(LevAttention, CausalGroupedQueryHeadsAcrossBatchesAndSnapshots) {
  const index_t B = 2, Hkv = 2, group = 2, n_q = 300, n_k = 640, d = 16, dv = 8, offset = n_k - n_q;
  const Floats Q = normal_matrix(B * Hkv * group * n_q, d, 51), V = normal_matrix(B * Hkv * n_k, dv, 53);
  const Floats K = make_keys("heavy_tailed", B * Hkv * n_k, d, 52);
  AttentionOptions a;
  a.f = ScoreFunction::power(2.0);
  a.causal = true;
  LevSelectOptions s;
  s.top_k = 40;
  s.sinks = 2;
  std::vector<float> out(static_cast<size_t>(B * Hkv * group * n_q * dv));
  const LevAttentionReport report =
      attend_lev(ConstHeadsF(Q.data.data(), B, Hkv * group, n_q, d), ConstHeadsF(K.data.data(), B, Hkv, n_k, d),
                 ConstHeadsF(V.data.data(), B, Hkv, n_k, dv), a, s, HeadsF(out.data(), B, Hkv * group, n_q, dv));
  ASSERT_EQ(report.kept_keys.size(), static_cast<size_t>(B * Hkv));
  ASSERT_EQ(report.missing_mass.size(), out.size() / dv);
  const auto rows = [](const Floats& m, index_t first, index_t count) {
    return Floats{count, m.cols,
                  std::vector<float>(m.data.begin() + first * m.cols, m.data.begin() + (first + count) * m.cols)};
  };
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < Hkv * group; ++h) {
      const index_t kh = b * Hkv + h / group, qh = b * Hkv * group + h;
      const std::set<index_t> kept(report.kept_keys[kh].begin(), report.kept_keys[kh].end());
      const AttentionSpec spec = causal_power_spec(a, d, offset, kept, 0);
      const AttentionRows ref = attention_rows_reference(rows(Q, qh * n_q, n_q), rows(K, kh * n_k, n_k),
                                                         rows(V, kh * n_k, n_k), all_rows(n_q), spec);
      const std::string what = "batch " + std::to_string(b) + " query head " + std::to_string(h);
      const auto first = out.begin() + qh * n_q * dv;
      EXPECT_LE(relative_error(std::vector<float>(first, first + n_q * dv), ref.out), 1e-5) << what;
      for (index_t i = 0; i < n_q; ++i)
        EXPECT_NEAR(report.missing_mass[qh * n_q + i], 1.0 - ref.kept_mass[i], 1e-5) << what << " row " << i;
    }
}

TEST(LevAttention, ThresholdSetKeepsEveryHeavyEntryOfEveryQuery) {
  for (const std::string kind : {"gaussian", "low_rank", "duplicated", "heavy_tailed"}) {
    // n·ε ≈ 1.25·d: about half the keys clear ε, and the maximiser queries G⁺k_j reach them.
    const Floats K = make_keys(kind, 500, 8, 21), Q = make_queries(K, 200, 22), V = normal_matrix(500, 8, 23);
    const double eps = 0.02;
    AttentionOptions a;
    a.f = ScoreFunction::power(2.0);
    LevSelectOptions s;
    s.eps = eps;
    const LevRun lev = run_lev(Q, K, V, a, s);
    const std::vector<index_t> kept = lev_select(K.view(), s);
    const std::set<index_t> set(kept.begin(), kept.end());
    const MatD A = attention_reference(Q, K);
    index_t heavy = 0;
    for (index_t i = 0; i < A.rows(); ++i) {
      double mass = 0.0;
      for (index_t j = 0; j < A.cols(); ++j) {
        if (set.count(j)) mass += A(i, j);
        if (A(i, j) >= eps * (1 + 1e-4)) {
          ++heavy;
          EXPECT_TRUE(set.count(j)) << kind << ": entry (" << i << ", " << j << ") = " << A(i, j) << " lost";
        }
      }
      if (A.row(i).sum() > 0) {
        EXPECT_NEAR(lev.report.missing_mass[i], 1.0 - mass, 1e-5) << kind << " row " << i;
      }
    }
    EXPECT_GT(heavy, 0) << kind;
    EXPECT_LE(static_cast<double>(kept.size()), 8 / eps) << kind;
    EXPECT_LT(static_cast<index_t>(kept.size()), 500) << kind << ": the set must leave keys out";
  }
}

// 16-bit keys and values (queries of their type or float32) are read as they are: the selection is
// lev_select of the 16-bit keys; with f32 arithmetic the output, report and missing mass are those
// of the inputs widened to float, bit for bit; and the output is attention over the kept keys of the
// ROUNDED values (float64 reference) to 1e-5; a threshold set keeps every entry ≥ ε of the rounded
// keys' attention. pow:3 and pow:4 (Lewis weights): selection, output and missing mass are the
// widened inputs', bit for bit.
template <class T, bool kFloatQueries>
void expect_lev_half_exact() {
  const index_t n = 500, d = 16, dv = 12;
  const RoundedRows<T> K = round_rows<T>(keys_in_half_range<T>("heavy_tailed", n, d, 31));
  const RoundedRows<T> V = round_rows<T>(normal_matrix(n, dv, 32));
  // make_queries' rows (maximisers, copies of keys, a zero row, 1e±20 scalings) scaled by powers
  // of two into [0.5, 1) so that f16 holds them.
  const Floats raw = rows_scaled_to_unit(make_queries(K.widened, n, 33));
  const RoundedRows<T> Q16 = round_rows<T>(raw);
  const Floats& Q = kFloatQueries ? raw : Q16.widened;
  const std::string label = std::string(half_type_label<T>()) + (kFloatQueries ? " f32 queries" : "");
  const auto heads = [](const RoundedRows<T>& r) { return HeadsView<const T>(r.data.data(), 1, 1, r.rows, r.cols); };
  for (const ScoreFunction& f : {ScoreFunction::softmax(), ScoreFunction::power(2.0)})
    for (const bool causal : {false, true})
      for (const bool threshold : {false, true}) {
        if (causal && threshold) continue;
        AttentionOptions a;
        a.f = f;
        a.causal = causal;
        a.scale = f.kind == ScoreKind::softmax ? 0.01 : 0.0;
        LevSelectOptions s;
        if (threshold)
          s.eps = 0.02;
        else
          s.top_k = 64;
        s.sinks = 2;
        s.window = causal ? 16 : 0;
        const std::string what = label + " " + f.name() + (causal ? " causal" : "") + (threshold ? " eps" : " top-k");
        std::vector<float> out(static_cast<size_t>(n * dv));
        const HeadsF out_view(out.data(), 1, 1, n, dv);
        const LevAttentionReport report = kFloatQueries
                                              ? attend_lev(ConstHeadsF(Q.view()), heads(K), heads(V), a, s, out_view)
                                              : attend_lev(heads(Q16), heads(K), heads(V), a, s, out_view);
        const LevRun widened = run_lev(Q, K.widened, V.widened, a, s);
        EXPECT_EQ(report.kept_keys, widened.report.kept_keys) << what;
        EXPECT_EQ(report.kept_keys[0], lev_select(K.view(), s)) << what;
        EXPECT_EQ(0, std::memcmp(out.data(), widened.out.data(), out.size() * sizeof(float))) << what;
        EXPECT_EQ(report.missing_mass, widened.report.missing_mass) << what;

        const std::set<index_t> set(report.kept_keys[0].begin(), report.kept_keys[0].end());
        const AttentionSpec spec = kept_keys_spec(a, d, set, causal ? 16 : 0);
        const AttentionRows ref = attention_rows_reference(Q, K.widened, V.widened, all_rows(n), spec);
        EXPECT_LE(relative_error(out, ref.out), 1e-5) << what;
        if (threshold && !spec.softmax) {
          const MatD A = attention_reference(Q, K.widened);
          index_t heavy = 0;
          for (index_t i = 0; i < A.rows(); ++i)
            for (index_t j = 0; j < A.cols(); ++j)
              if (A(i, j) >= s.eps * (1 + 1e-4)) {
                ++heavy;
                EXPECT_TRUE(set.count(j)) << what << ": entry (" << i << ", " << j << ") lost";
              }
          EXPECT_GT(heavy, 0) << what;
        }
      }
  // pow:3 (sampled normaliser) and pow:4 (exact fourth moments), ranked by Lewis weights of the
  // 16-bit keys: selection, output and missing mass are the widened inputs', bit for bit.
  for (const double p : {3.0, 4.0})
    for (const bool threshold : {false, true}) {
      AttentionOptions a;
      a.f = ScoreFunction::power(p);
      LevSelectOptions s;
      if (threshold)
        s.eps = 0.02;
      else
        s.top_k = 64;
      s.power.delta = 0.3;
      const std::string what = label + " " + a.f.name() + (threshold ? " eps" : " top-k");
      std::vector<float> out(static_cast<size_t>(n * dv));
      const HeadsF out_view(out.data(), 1, 1, n, dv);
      const LevAttentionReport report = kFloatQueries
                                            ? attend_lev(ConstHeadsF(Q.view()), heads(K), heads(V), a, s, out_view)
                                            : attend_lev(heads(Q16), heads(K), heads(V), a, s, out_view);
      const LevRun widened = run_lev(Q, K.widened, V.widened, a, s);
      EXPECT_EQ(report.normaliser_estimated, p == 3.0) << what;
      EXPECT_EQ(report.normaliser_estimated, widened.report.normaliser_estimated) << what;
      EXPECT_GT(report.kept_keys[0].size(), 0u) << what;
      EXPECT_LT(report.kept_keys[0].size(), size_t(n)) << what;
      EXPECT_EQ(report.kept_keys, widened.report.kept_keys) << what;
      EXPECT_EQ(0, std::memcmp(out.data(), widened.out.data(), out.size() * sizeof(float))) << what;
      EXPECT_EQ(report.missing_mass, widened.report.missing_mass) << what;
    }
}

TEST(LevAttention, SixteenBitInputsAreReadAsTheyAre) {
  expect_lev_half_exact<Half, false>();
  expect_lev_half_exact<Half, true>();
  expect_lev_half_exact<BFloat16, false>();
  expect_lev_half_exact<BFloat16, true>();
}

// pow:P, P ≠ 2: the kept keys are the top-k of float64 Lewis weights (P < 4); the output and the
// missing mass are the truncation of true attention, exactly when the normaliser is exact (P = 4,
// small d; or every key kept) and within the sampled normaliser's δ otherwise.
TEST(LevAttention, PowerPKeepsTopLewisKeysAndHonoursItsNormaliser) {
  const index_t n = 20000, d = 8, dv = 6, k = 40;
  const Floats K = make_keys("heavy_tailed", n, d, 41), V = normal_matrix(n, dv, 42);
  Floats Q = normal_matrix(200, d, 43);
  for (float& x : Q.data) x *= 0.5f;
  for (double p : {1.0, 3.0, 4.0}) {
    AttentionOptions a;
    a.f = ScoreFunction::power(p);
    LevSelectOptions s;
    s.top_k = k;
    s.power.delta = 0.5;  // a genuine sample: 5-15% of the keys
    const LevRun lev = run_lev(Q, K, V, a, s);
    const std::string what = "p " + std::to_string(p);
    ASSERT_EQ(lev.report.kept, std::vector<index_t>{k}) << what;
    // The reference keeps the top-k of float64 Lewis weights (P < 4); a different set would show
    // in the output check below.
    if (p < 4) {
      const std::vector<double> ref = lewis_reference(K, p);
      std::vector<index_t> order(n);
      std::iota(order.begin(), order.end(), index_t{0});
      std::stable_sort(order.begin(), order.end(), [&](index_t x, index_t y) { return ref[x] > ref[y]; });
      const std::set<index_t> set(order.begin(), order.begin() + k);
      AttentionSpec spec;
      spec.softmax = false;
      spec.p = p;
      spec.kept = [&](index_t, index_t j) { return set.count(j) > 0; };
      spec.normalise_over_kept = false;
      const AttentionRows truth = attention_rows_reference(Q, K, V, all_rows(Q.rows), spec);
      // ô_i = o_i·N(q_i)/Ñ(q_i): parallel to the true truncation (this checks the kept set), with
      // a factor within the normaliser's bound, and the missing mass estimated with that factor.
      const double bound = s.power.delta / (1 - s.power.delta);
      EXPECT_TRUE(lev.report.normaliser_estimated) << what;
      double largest_deviation = 0.0;
      for (index_t i = 0; i < Q.rows; ++i) {
        double dot = 0, norm2 = 0;
        for (index_t c = 0; c < dv; ++c) {
          dot += lev.out[i * dv + c] * truth.out(i, c);
          norm2 += truth.out(i, c) * truth.out(i, c);
        }
        const double factor = dot / norm2;
        double residual = 0;
        for (index_t c = 0; c < dv; ++c) residual += std::pow(lev.out[i * dv + c] - factor * truth.out(i, c), 2);
        EXPECT_LE(std::sqrt(residual), 1e-5 * std::sqrt(norm2)) << what << " row " << i;
        EXPECT_LE(std::abs(factor - 1), bound) << what << " row " << i;
        const double kept = truth.kept_mass[i], estimated = 1 - lev.report.missing_mass[i];
        if (estimated < 1) {
          EXPECT_NEAR(estimated, factor * kept, 1e-5 * kept + 1e-9) << what << " row " << i;
        }
        largest_deviation = std::max(largest_deviation, std::abs(factor - 1));
      }
      EXPECT_GT(largest_deviation, 1e-4) << what << ": the normaliser must really be sampled here";
    } else {
      EXPECT_FALSE(lev.report.normaliser_estimated) << "p = 4 at d = 8 has the exact moment normaliser";
      s.top_k = n;  // every key: exact attention
      const LevRun every = run_lev(Q, K, V, a, s);
      AttentionSpec spec;
      spec.softmax = false;
      spec.p = p;
      const AttentionRows truth = attention_rows_reference(Q, K, V, all_rows(Q.rows), spec);
      EXPECT_LE(relative_error(every.out, truth.out), 1e-5);
      for (double m : every.report.missing_mass) EXPECT_LE(m, 1e-5);
    }
  }
}

TEST(LevAttention, BadParametersAreRefused) {
  const Floats Q = normal_matrix(10, 8, 31), K = normal_matrix(20, 8, 32), V = normal_matrix(20, 8, 33);
  const auto bad = [&](const AttentionOptions& a, const LevSelectOptions& s, const std::string& fragment) {
    try {
      run_lev(Q, K, V, a, s);
      ADD_FAILURE() << "accepted: " << fragment;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::bad_input);
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  LevSelectOptions s;
  bad(AttentionOptions{}, s, "exactly one");
  s.top_k = 3;
  s.eps = 0.1;
  bad(AttentionOptions{}, s, "exactly one");
  s.eps = 0.0;
  s.top_k = 21;
  bad(AttentionOptions{}, s, "exceeds");
  s.top_k = 3;
  s.window = 4;
  bad(AttentionOptions{}, s, "causal");
  s.window = 0;
  AttentionOptions a;
  a.f = ScoreFunction::power(3.0);
  a.causal = true;
  bad(a, s, "cannot be causal");
  a.causal = false;
  s.leverage.ridge = 1.0;
  bad(a, s, "ridge");
  s.leverage.ridge = 0.0;
  s.top_k = 0;
  s.eps = 1.5;
  bad(AttentionOptions{}, s, "eps");
}

}  // namespace
}  // namespace levattn::test
