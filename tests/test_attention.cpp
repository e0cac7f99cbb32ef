// Exact attention against a double-precision reference: softmax and |x|^p, causal or not, every
// length from 1 to 8,192 (tile and segment boundaries included), batches with grouped queries,
// merged partial results, adversarial magnitudes, bad input.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "levattn/attention/exact.hpp"
#include "reference.hpp"

namespace levattn::test {
namespace {

struct Result {
  std::vector<float> out;
  std::vector<double> lse;
};

Result run(const Floats& Q, const Floats& K, const Floats& V, const AttentionOptions& o) {
  Result r{std::vector<float>(static_cast<size_t>(Q.rows * V.cols)), std::vector<double>(Q.rows)};
  attend_exact(Q.view(), K.view(), V.view(), o, MatrixF(r.out.data(), Q.rows, V.cols), r.lse.data());
  return r;
}

// ‖O − R‖_F / ‖R‖_F over the sampled rows, and the log normalisers to 1e-5.
double check_rows(const Result& got, const AttentionRows& ref, const std::vector<index_t>& rows, index_t dv,
                  const std::string& what) {
  double num = 0.0, den = 0.0;
  for (size_t t = 0; t < rows.size(); ++t) {
    for (index_t c = 0; c < dv; ++c) {
      const double diff = got.out[rows[t] * dv + c] - ref.out(static_cast<index_t>(t), c);
      num += diff * diff;
      den += ref.out(static_cast<index_t>(t), c) * ref.out(static_cast<index_t>(t), c);
    }
    const double l = ref.lse[t];
    if (std::isinf(l)) {
      EXPECT_TRUE(std::isinf(got.lse[rows[t]]) && got.lse[rows[t]] < 0) << what << " row " << rows[t];
    } else {
      EXPECT_NEAR(got.lse[rows[t]], l, 1e-5 * std::max(1.0, std::fabs(l))) << what << " row " << rows[t];
    }
  }
  const double rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  EXPECT_LE(rel, 1e-5) << what;
  return rel;
}

// The portable kernels and the sanitizer build run 10–100× slower: there the longest lengths
// (4,097 and 8,192, whose tile and segment boundaries the shorter ones already cross) are checked
// for softmax without the mask only; the release suite on AVX-512 checks every combination.
bool slow_build() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#else
  const char* kernels = std::getenv("LEVATTN_KERNELS");
  return kernels != nullptr && std::string(kernels) == "generic";
#endif
}

TEST(ExactAttention, MatchesDoubleReferenceOverLengthsFunctionsAndMasks) {
  const std::vector<index_t> lengths = {1, 2, 31, 32, 33, 100, 255, 257, 1000, 4097, 8192};
  const std::vector<ScoreFunction> functions = {ScoreFunction::softmax(), ScoreFunction::power(2.0),
                                                ScoreFunction::power(3.0)};
  for (index_t n : lengths)
    for (const ScoreFunction& f : functions)
      for (bool causal : {false, true}) {
        if (n > 1000 && slow_build() && (causal || f.kind != ScoreKind::softmax || n > 4097)) continue;
        const index_t d = n % 2 ? 24 : 64;  // widths that are and are not multiples of 16
        const Floats Q = normal_matrix(n, d, 11 + n), K = normal_matrix(n, d, 12 + n), V = normal_matrix(n, d, 13 + n);
        AttentionOptions o;
        o.f = f;
        o.causal = causal;
        const Result got = run(Q, K, V, o);
        const std::vector<index_t> rows = sample_rows(n);
        const AttentionRows ref = attention_rows_reference(Q, K, V, rows, attention_spec(o, d, n, n));
        check_rows(got, ref, rows, d, "n=" + std::to_string(n) + " " + f.name() + (causal ? " causal" : ""));
      }
}

TEST(ExactAttention, DecodeAndShortQueriesOverLongKeysUseSegmentsCorrectly) {
  // n_q ≪ n_k: keys are split into segments and merged; bottom-right causal alignment.
  for (index_t n_q : {1, 3, 40})
    for (index_t n_k : {4095, 4097, 12345})
      for (bool causal : {false, true}) {
        const index_t d = 128, dv = 40;
        const Floats Q = normal_matrix(n_q, d, 21), K = normal_matrix(n_k, d, 22), V = normal_matrix(n_k, dv, 23);
        AttentionOptions o;
        o.causal = causal;
        const Result got = run(Q, K, V, o);
        std::vector<index_t> rows;
        for (index_t i = 0; i < n_q; ++i) rows.push_back(i);
        const AttentionRows ref = attention_rows_reference(Q, K, V, rows, attention_spec(o, d, n_q, n_k));
        check_rows(got, ref, rows, dv, "n_q=" + std::to_string(n_q) + " n_k=" + std::to_string(n_k));
      }
}

TEST(ExactAttention, CausalWithMoreQueriesThanKeysLeavesEarlyRowsEmpty) {
  const Floats Q = normal_matrix(50, 16, 1), K = normal_matrix(20, 16, 2), V = normal_matrix(20, 8, 3);
  AttentionOptions o;
  o.causal = true;  // query i sees keys j ≤ i − 30
  const Result got = run(Q, K, V, o);
  std::vector<index_t> rows(50);
  for (index_t i = 0; i < 50; ++i) rows[i] = i;
  const AttentionRows ref = attention_rows_reference(Q, K, V, rows, attention_spec(o, 16, 50, 20));
  check_rows(got, ref, rows, 8, "n_q > n_k causal");
  for (index_t i = 0; i < 30; ++i) EXPECT_EQ(got.out[i * 8], 0.0f);
}

TEST(ExactAttention, MergedPartialsEqualTheOneShotResult) {
  const index_t n_q = 300, n_k = 5000, d = 64;
  const Floats Q = normal_matrix(n_q, d, 31), K = normal_matrix(n_k, d, 32), V = normal_matrix(n_k, d, 33);
  for (const ScoreFunction& f : {ScoreFunction::softmax(), ScoreFunction::power(2.0)}) {
    AttentionOptions o;
    o.f = f;
    const Result whole = run(Q, K, V, o);
    // Keys [0, 1234) and [1234, n_k) as two separate calls.
    const index_t a = 1234;
    Floats K1{a, d, {K.data.begin(), K.data.begin() + a * d}}, K2{n_k - a, d, {K.data.begin() + a * d, K.data.end()}};
    Floats V1{a, d, {V.data.begin(), V.data.begin() + a * d}}, V2{n_k - a, d, {V.data.begin() + a * d, V.data.end()}};
    Result p1 = run(Q, K1, V1, o);
    const Result p2 = run(Q, K2, V2, o);
    merge_attention(MatrixF(p1.out.data(), n_q, d), p1.lse.data(), ConstMatrixF(p2.out.data(), n_q, d), p2.lse.data());
    double worst = 0.0;
    for (size_t i = 0; i < whole.out.size(); ++i) worst = std::max(worst, double(std::fabs(p1.out[i] - whole.out[i])));
    EXPECT_LE(worst, 2e-6) << f.name();
    for (index_t i = 0; i < n_q; ++i)
      EXPECT_NEAR(p1.lse[i], whole.lse[i], 1e-6 * std::fabs(whole.lse[i]));  // float sums, other order
  }
}

TEST(ExactAttention, BatchedGroupedQueriesEqualPerHeadCalls) {
  const index_t B = 2, Hq = 6, Hkv = 2, n_q = 70, n_k = 90, d = 32, dv = 16;
  const Floats Q = normal_matrix(B * Hq * n_q, d, 41), K = normal_matrix(B * Hkv * n_k, d, 42),
               V = normal_matrix(B * Hkv * n_k, dv, 43);
  for (bool causal : {false, true}) {
    AttentionOptions o;
    o.causal = causal;
    std::vector<float> out(static_cast<size_t>(B * Hq * n_q * dv));
    std::vector<double> lse(static_cast<size_t>(B * Hq * n_q));
    attend_exact(ConstHeadsF(Q.data.data(), B, Hq, n_q, d), ConstHeadsF(K.data.data(), B, Hkv, n_k, d),
                 ConstHeadsF(V.data.data(), B, Hkv, n_k, dv), o, HeadsF(out.data(), B, Hq, n_q, dv), lse.data());
    for (index_t b = 0; b < B; ++b)
      for (index_t h = 0; h < Hq; ++h) {
        const index_t kh = h / (Hq / Hkv);
        const Floats q{n_q, d, {Q.data.begin() + (b * Hq + h) * n_q * d, Q.data.begin() + (b * Hq + h + 1) * n_q * d}};
        const Floats k{
            n_k, d, {K.data.begin() + (b * Hkv + kh) * n_k * d, K.data.begin() + (b * Hkv + kh + 1) * n_k * d}};
        const Floats v{
            n_k, dv, {V.data.begin() + (b * Hkv + kh) * n_k * dv, V.data.begin() + (b * Hkv + kh + 1) * n_k * dv}};
        std::vector<index_t> rows(n_q);
        for (index_t i = 0; i < n_q; ++i) rows[i] = i;
        const AttentionRows ref = attention_rows_reference(q, k, v, rows, attention_spec(o, d, n_q, n_k));
        const Result got{{out.begin() + (b * Hq + h) * n_q * dv, out.begin() + (b * Hq + h + 1) * n_q * dv},
                         {lse.begin() + (b * Hq + h) * n_q, lse.begin() + (b * Hq + h + 1) * n_q}};
        check_rows(got, ref, rows, dv, "batch " + std::to_string(b) + " head " + std::to_string(h));
      }
  }
}

TEST(ExactAttention, ResultDoesNotDependOnTheThreadCount) {
  const Floats Q = normal_matrix(3, 64, 51), K = normal_matrix(20000, 64, 52), V = normal_matrix(20000, 64, 53);
  const Floats Q2 = normal_matrix(500, 64, 54);
  for (const Floats* q : {&Q, &Q2}) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(1);
    const Result one = run(*q, K, V, AttentionOptions{});
    omp_set_num_threads(2);
    const Result two = run(*q, K, V, AttentionOptions{});
    omp_set_num_threads(before);
    EXPECT_EQ(one.out, two.out);
    EXPECT_EQ(one.lse, two.lse);
  }
}

TEST(ExactAttention, AdversarialMagnitudesAndStructures) {
  const index_t n = 300, d = 32;
  std::vector<std::pair<std::string, float>> magnitudes = {{"huge", 1e30f}, {"tiny", 1e-30f}};
  for (const auto& [name, m] : magnitudes) {  // |x|² is scale-free: any magnitude works
    Floats Q = normal_matrix(n, d, 61), K = normal_matrix(n, d, 62);
    for (float& x : Q.data) x *= m;
    for (float& x : K.data) x *= m;
    const Floats V = normal_matrix(n, d, 63);
    AttentionOptions o;
    o.f = ScoreFunction::power(2.0);
    const Result got = run(Q, K, V, o);
    const std::vector<index_t> rows = sample_rows(n);
    check_rows(got, attention_rows_reference(Q, K, V, rows, attention_spec(o, d, n, n)), rows, d, "pow:2 " + name);
  }
  {  // softmax with tiny inputs: uniform attention
    Floats Q = normal_matrix(n, d, 64), K = normal_matrix(n, d, 65);
    for (float& x : Q.data) x *= 1e-30f;
    const Floats V = normal_matrix(n, d, 66);
    const Result got = run(Q, K, V, AttentionOptions{});
    const std::vector<index_t> rows = sample_rows(n);
    check_rows(got, attention_rows_reference(Q, K, V, rows, attention_spec(AttentionOptions{}, d, n, n)), rows, d,
               "softmax tiny");
  }
  for (const std::string kind : {"low_rank", "duplicated", "heavy_tailed"}) {  // keys of every kind
    const Floats K = make_keys(kind, 2000, 24, 7), Q = normal_matrix(100, 24, 67), V = normal_matrix(2000, 24, 68);
    for (const ScoreFunction& f : {ScoreFunction::softmax(), ScoreFunction::power(2.0)}) {
      AttentionOptions o;
      o.f = f;
      o.scale = kind == "heavy_tailed" && f.kind == ScoreKind::softmax ? 1e-3 : 0.0;  // keep e^x finite
      const Result got = run(Q, K, V, o);
      const std::vector<index_t> rows = sample_rows(100);
      check_rows(got, attention_rows_reference(Q, K, V, rows, attention_spec(o, 24, 100, 2000)), rows, 24,
                 kind + " " + f.name());
    }
  }
  {  // logits of ±100: one-hot softmax rows, still exact
    const Floats Q = normal_matrix(64, 16, 69, 10.0), K = normal_matrix(64, 16, 70, 10.0),
                 V = normal_matrix(64, 16, 71);
    const Result got = run(Q, K, V, AttentionOptions{});
    const std::vector<index_t> rows = sample_rows(64);
    check_rows(got, attention_rows_reference(Q, K, V, rows, attention_spec(AttentionOptions{}, 16, 64, 64)), rows, 16,
               "sharp softmax");
  }
}

TEST(ExactAttention, ZeroQueryUnderPowerHasNoAttention) {
  Floats Q = normal_matrix(4, 16, 81);
  std::fill(Q.data.begin() + 16, Q.data.begin() + 32, 0.0f);  // row 1 = 0
  const Floats K = normal_matrix(50, 16, 82), V = normal_matrix(50, 16, 83);
  AttentionOptions o;
  o.f = ScoreFunction::power(2.0);
  const Result got = run(Q, K, V, o);
  EXPECT_TRUE(std::isinf(got.lse[1]) && got.lse[1] < 0);
  for (index_t c = 0; c < 16; ++c) EXPECT_EQ(got.out[16 + c], 0.0f);
  EXPECT_TRUE(std::isfinite(got.lse[0]));
}

TEST(ExactAttention, BadInputIsRefusedWithAClearError) {
  const Floats Q = normal_matrix(40, 16, 91), K = normal_matrix(60, 16, 92), V = normal_matrix(60, 8, 93);
  const auto expect_bad = [&](const Floats& q, const Floats& k, const Floats& v, const AttentionOptions& o,
                              const std::string& fragment) {
    std::vector<float> out(static_cast<size_t>(q.rows * v.cols));
    try {
      attend_exact(q.view(), k.view(), v.view(), o, MatrixF(out.data(), q.rows, v.cols));
      ADD_FAILURE() << "no error for " << fragment;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::bad_input);
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << fragment << " vs " << e.what();
    }
  };
  for (const ScoreFunction& f : {ScoreFunction::softmax(), ScoreFunction::power(2.0)}) {
    AttentionOptions o;
    o.f = f;
    Floats bad = Q;
    bad.data[5 * 16 + 3] = std::nanf("");
    expect_bad(bad, K, V, o, "queries: batch 0, head 0, row 5");
    bad = K;
    bad.data[59 * 16] = INFINITY;
    expect_bad(Q, bad, V, o, "keys: batch 0, head 0, row 59");
    bad = V;
    bad.data[7 * 8 + 1] = std::nanf("");
    expect_bad(Q, K, bad, o, "values: batch 0, head 0, row 7");
  }
  Floats huge_q = Q, huge_k = K;
  for (float& x : huge_q.data) x *= 1e30f;
  for (float& x : huge_k.data) x *= 1e30f;
  expect_bad(huge_q, huge_k, V, AttentionOptions{}, "overflow");  // softmax of 1e60 logits
  expect_bad(Q, normal_matrix(60, 15, 1), V, AttentionOptions{}, "same width");
  expect_bad(Q, K, normal_matrix(59, 8, 1), AttentionOptions{}, "one row per key");
  AttentionOptions o;
  o.f = ScoreFunction::power(-1.0);
  expect_bad(Q, K, V, o, "0 < P");
  o = AttentionOptions{};
  o.scale = -1.0;
  expect_bad(Q, K, V, o, "scale");
  {  // merge_attention refuses NaN/+inf log normalisers and non-finite outputs, changing nothing
    std::vector<float> a(8, 1.0f), b(8, 2.0f);
    std::vector<double> la{0.0, 1.0}, lb{0.5, std::nan("")};
    EXPECT_THROW(merge_attention(MatrixF(a.data(), 2, 4), la.data(), ConstMatrixF(b.data(), 2, 4), lb.data()), Error);
    lb[1] = INFINITY;
    EXPECT_THROW(merge_attention(MatrixF(a.data(), 2, 4), la.data(), ConstMatrixF(b.data(), 2, 4), lb.data()), Error);
    lb[1] = -INFINITY;
    b[6] = std::nanf("");
    EXPECT_THROW(merge_attention(MatrixF(a.data(), 2, 4), la.data(), ConstMatrixF(b.data(), 2, 4), lb.data()), Error);
    EXPECT_EQ(a, std::vector<float>(8, 1.0f));
    EXPECT_EQ(la, (std::vector<double>{0.0, 1.0}));
  }
  EXPECT_THROW(parse_score_function("pow:abc"), Error);
  EXPECT_THROW(parse_score_function("relu"), Error);
  EXPECT_EQ(parse_score_function("pow:2.5").p, 2.5);
  EXPECT_EQ(parse_score_function("pow:2").name(), "pow:2");
  std::vector<float> out(static_cast<size_t>(6 * 40 * 8));
  EXPECT_THROW(
      attend_exact(ConstHeadsF(Q.data.data(), 1, 3, 40, 16), ConstHeadsF(K.data.data(), 1, 2, 30, 16),
                   ConstHeadsF(V.data.data(), 1, 2, 30, 8), AttentionOptions{}, HeadsF(out.data(), 1, 3, 40, 8)),
      Error);  // 3 query heads over 2 key heads
}

}  // namespace
}  // namespace levattn::test
