// Exact attention over 16-bit (Half, BFloat16) queries, keys and values against a double-precision
// reference on the same rounded inputs: f32 arithmetic to 1e-5 (and bit for bit equal to the float
// kernels on the widened inputs), bf16 arithmetic to 1e-2 in the output and 1e-3 in the log
// normaliser (against the reference of the inputs rounded to bf16, which bf16 arithmetic computes
// with: a no-op for BFloat16 inputs), over lengths that are not multiples of any tile, causal masks, grouped heads,
// decode, merged partial results, adversarial keys and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "levattn/attention/exact.hpp"
#include "reference.hpp"

namespace levattn::test {
namespace {

// A tensor rounded to element type T, and the same values widened back to float (the reference's
// input: the test asks for attention of the rounded values).
template <class T>
struct Rounded {
  std::vector<T> data;
  Floats widened;
};

template <class T>
Rounded<T> round_all(const Floats& f) {
  Rounded<T> r{std::vector<T>(f.data.size()), Floats{f.rows, f.cols, std::vector<float>(f.data.size())}};
  for (size_t i = 0; i < f.data.size(); ++i) {
    r.data[i] = round_to<T>(f.data[i]);
    r.widened.data[i] = to_float(r.data[i]);
  }
  return r;
}

// The values bf16 arithmetic computes with: the inputs rounded to bf16 (unchanged for BFloat16).
template <class T>
Floats as_computed(const Rounded<T>& r, bool bf16) {
  Floats f = r.widened;
  if (bf16)
    for (float& x : f.data) x = to_float(to_bfloat16(x));
  return f;
}

template <class T>
HeadsView<const T> heads(const Rounded<T>& r) {
  return HeadsView<const T>(r.data.data(), 1, 1, r.widened.rows, r.widened.cols);
}
ConstHeadsF heads(const Floats& f) { return ConstHeadsF(f.data.data(), 1, 1, f.rows, f.cols); }

struct Result {
  std::vector<float> out;
  std::vector<double> lse;
};

template <class Q, class KV>
Result run(HeadsView<const Q> q, HeadsView<const KV> k, HeadsView<const KV> v, const AttentionOptions& o) {
  Result r{std::vector<float>(static_cast<size_t>(q.count() * q.rows * v.cols)),
           std::vector<double>(static_cast<size_t>(q.count() * q.rows))};
  attend_exact(q, k, v, o, HeadsF(r.out.data(), q.batch, q.heads, q.rows, v.cols), r.lse.data());
  return r;
}

struct Errors {
  double out = 0.0;  // worst relative row error ‖o − r‖ / ‖r‖
  double lse = 0.0;  // worst |L − L_ref| / max(1, |L_ref|)
};

// Errors of the sampled rows of one head (out rows at row_offset) against the reference.
Errors compare(const Result& got, const AttentionRows& ref, const std::vector<index_t>& rows, index_t dv,
               index_t row_offset = 0) {
  Errors e;
  for (size_t t = 0; t < rows.size(); ++t) {
    const index_t i = row_offset + rows[t];
    double num = 0.0, den = 0.0;
    for (index_t c = 0; c < dv; ++c) {
      const double r = ref.out(static_cast<index_t>(t), c), diff = got.out[i * dv + c] - r;
      num += diff * diff;
      den += r * r;
    }
    e.out = std::max(e.out, den > 0 ? std::sqrt(num / den) : std::sqrt(num));
    const double l = ref.lse[t];
    if (std::isinf(l))
      e.lse = std::max(e.lse, std::isinf(got.lse[i]) && got.lse[i] < 0 ? 0.0 : 1.0);
    else
      e.lse = std::max(e.lse, std::fabs(got.lse[i] - l) / std::max(1.0, std::fabs(l)));
  }
  return e;
}

// The bounds each arithmetic is held to.
void expect_within(const Errors& e, bool bf16, const std::string& what) {
  EXPECT_LE(e.out, bf16 ? 1e-2 : 1e-5) << what;
  EXPECT_LE(e.lse, bf16 ? 1e-3 : 1e-5) << what;
}

AttentionOptions options(ScoreFunction f, bool causal, Arithmetic a) {
  AttentionOptions o;
  o.f = f;
  o.causal = causal;
  o.arithmetic = a;
  return o;
}

bool slow_build() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#else
  const char* kernels = std::getenv("LEVATTN_KERNELS");
  return kernels != nullptr && std::string(kernels) == "generic";
#endif
}

// Every length class (1, tile edges, key-block edges, segment split), both masks, softmax and
// |x|^2, both arithmetics, 16-bit or float queries.
template <class T>
void check_lengths() {
  const std::vector<index_t> lengths = {1, 2, 31, 33, 257, 1000, 4097};
  for (index_t n : lengths)
    for (const ScoreFunction& f : {ScoreFunction::softmax(), ScoreFunction::power(2.0)})
      for (bool causal : {false, true})
        for (Arithmetic a : {Arithmetic::f32, Arithmetic::bf16}) {
          if (n > 1000 && slow_build() && (causal || a == Arithmetic::f32)) continue;
          const index_t d = n % 2 ? 17 : 64, dv = n % 2 ? 40 : 64;  // odd d: an unpaired last column
          const Rounded<T> Q = round_all<T>(normal_matrix(n, d, 21 + n)), K = round_all<T>(normal_matrix(n, d, 22 + n)),
                           V = round_all<T>(normal_matrix(n, dv, 23 + n));
          const AttentionOptions o = options(f, causal, a);
          const std::vector<index_t> rows = sample_rows(n, 41);
          const bool bf16 = attention_kernel(n, o).bf16_products;
          const AttentionRows ref = attention_rows_reference(as_computed(Q, bf16), as_computed(K, bf16),
                                                             as_computed(V, bf16), rows, attention_spec(o, d, n, n));
          EXPECT_EQ(bf16, a == Arithmetic::bf16 && f.kind == ScoreKind::softmax && n > 1);
          const std::string what = std::string(element_type_name(element_type_of<T>)) + " n=" + std::to_string(n) +
                                   " " + f.name() + (causal ? " causal" : "") + (bf16 ? " bf16" : " f32");
          expect_within(compare(run(heads(Q), heads(K), heads(V), o), ref, rows, dv), bf16, what);
          // Float queries over the 16-bit keys and values (a float query over a 16-bit cache).
          expect_within(compare(run(heads(Q.widened), heads(K), heads(V), o), ref, rows, dv), bf16,
                        what + " float queries");
        }
}

TEST(HalfAttention, HalfMatchesDoubleReferenceOfRoundedInputs) { check_lengths<Half>(); }
TEST(HalfAttention, BFloat16MatchesDoubleReferenceOfRoundedInputs) { check_lengths<BFloat16>(); }

// f32 arithmetic widens exactly, so it must reproduce the float kernels on the widened values.
template <class T>
void check_same_bits_as_float() {
  for (index_t n : {1, 100, 5000})
    for (const ScoreFunction& f : {ScoreFunction::softmax(), ScoreFunction::power(3.0)}) {
      const Rounded<T> Q = round_all<T>(normal_matrix(n, 48, 31 + n)), K = round_all<T>(normal_matrix(n, 48, 32 + n)),
                       V = round_all<T>(normal_matrix(n, 33, 33 + n));
      const AttentionOptions o = options(f, true, Arithmetic::f32);
      const Result half = run(heads(Q), heads(K), heads(V), o);
      const Result full = run(heads(Q.widened), heads(K.widened), heads(V.widened), o);
      EXPECT_EQ(half.out, full.out) << f.name() << " n=" << n;
      EXPECT_EQ(half.lse, full.lse) << f.name() << " n=" << n;
    }
}

TEST(HalfAttention, HalfInF32ArithmeticEqualsFloatKernelsOnWidenedInputs) { check_same_bits_as_float<Half>(); }
TEST(HalfAttention, BFloat16InF32ArithmeticEqualsFloatKernelsOnWidenedInputs) { check_same_bits_as_float<BFloat16>(); }

// Batches with grouped queries: every (batch, query head) against its own reference.
template <class T>
void check_grouped(Arithmetic a) {
  const index_t B = 2, Hq = 4, Hkv = 2, n_q = 70, n_k = 300, d = 32, dv = 24;
  const Floats q = normal_matrix(B * Hq * n_q, d, 41), k = normal_matrix(B * Hkv * n_k, d, 42),
               v = normal_matrix(B * Hkv * n_k, dv, 43);
  const Rounded<T> Q = round_all<T>(q), K = round_all<T>(k), V = round_all<T>(v);
  const AttentionOptions o = options(ScoreFunction::softmax(), true, a);
  Result r{std::vector<float>(static_cast<size_t>(B * Hq * n_q * dv)), std::vector<double>(B * Hq * n_q)};
  attend_exact(HeadsView<const T>(Q.data.data(), B, Hq, n_q, d), HeadsView<const T>(K.data.data(), B, Hkv, n_k, d),
               HeadsView<const T>(V.data.data(), B, Hkv, n_k, dv), o, HeadsF(r.out.data(), B, Hq, n_q, dv),
               r.lse.data());
  const bool bf16 = attention_kernel(n_q, o).bf16_products;
  const std::vector<index_t> rows = sample_rows(n_q, 41);
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < Hq; ++h) {
      const index_t kh = b * Hkv + h / (Hq / Hkv);
      const auto slice = [](const Floats& f, index_t head, index_t n) {
        return Floats{n, f.cols,
                      std::vector<float>(f.data.begin() + head * n * f.cols, f.data.begin() + (head + 1) * n * f.cols)};
      };
      const AttentionRows ref =
          attention_rows_reference(slice(as_computed(Q, bf16), b * Hq + h, n_q), slice(as_computed(K, bf16), kh, n_k),
                                   slice(as_computed(V, bf16), kh, n_k), rows, attention_spec(o, d, n_q, n_k));
      Result head{
          std::vector<float>(r.out.begin() + (b * Hq + h) * n_q * dv, r.out.begin() + (b * Hq + h + 1) * n_q * dv),
          std::vector<double>(r.lse.begin() + (b * Hq + h) * n_q, r.lse.begin() + (b * Hq + h + 1) * n_q)};
      expect_within(compare(head, ref, rows, dv), bf16, "batch " + std::to_string(b) + " head " + std::to_string(h));
    }
}

TEST(HalfAttention, GroupedQueryHeadsMatchReferenceInBothArithmetics) {
  for (Arithmetic a : {Arithmetic::f32, Arithmetic::bf16}) {
    check_grouped<Half>(a);
    check_grouped<BFloat16>(a);
  }
}

// Decode (one query) over a long 16-bit cache, split into key segments: float arithmetic always.
TEST(HalfAttention, DecodeOverLongCacheRunsF32ArithmeticInEveryMode) {
  const index_t n_k = 9001, d = 128;
  const Floats q = normal_matrix(1, d, 51);
  const Rounded<Half> Kh = round_all<Half>(normal_matrix(n_k, d, 52)), Vh = round_all<Half>(normal_matrix(n_k, d, 53));
  const Rounded<BFloat16> Kb = round_all<BFloat16>(normal_matrix(n_k, d, 52)),
                          Vb = round_all<BFloat16>(normal_matrix(n_k, d, 53));
  for (Arithmetic a : {Arithmetic::f32, Arithmetic::bf16}) {
    const AttentionOptions o = options(ScoreFunction::softmax(), false, a);
    EXPECT_FALSE(attention_kernel(1, o).bf16_products);
    const AttentionRows rh = attention_rows_reference(q, Kh.widened, Vh.widened, {0}, attention_spec(o, d, 1, n_k));
    expect_within(compare(run(heads(q), heads(Kh), heads(Vh), o), rh, {0}, d), false, "f16 decode");
    const AttentionRows rb = attention_rows_reference(q, Kb.widened, Vb.widened, {0}, attention_spec(o, d, 1, n_k));
    expect_within(compare(run(heads(q), heads(Kb), heads(Vb), o), rb, {0}, d), false, "bf16 decode");
  }
}

// Two halves of the keys merged with merge_attention give the attention over all of them.
TEST(HalfAttention, MergedHalvesMatchReferenceOverAllKeys) {
  const index_t n_q = 65, n_k = 1001, d = 64;
  const Rounded<BFloat16> Q = round_all<BFloat16>(normal_matrix(n_q, d, 61)),
                          K = round_all<BFloat16>(normal_matrix(n_k, d, 62)),
                          V = round_all<BFloat16>(normal_matrix(n_k, d, 63));
  for (Arithmetic a : {Arithmetic::f32, Arithmetic::bf16}) {
    const AttentionOptions o = options(ScoreFunction::softmax(), false, a);
    const index_t cut = 437;
    const ConstHeadsBF16 k1(K.data.data(), 1, 1, cut, d), v1(V.data.data(), 1, 1, cut, d);
    const ConstHeadsBF16 k2(K.data.data() + cut * d, 1, 1, n_k - cut, d),
        v2(V.data.data() + cut * d, 1, 1, n_k - cut, d);
    Result first = run(heads(Q), k1, v1, o);
    const Result second = run(heads(Q), k2, v2, o);
    merge_attention(MatrixF(first.out.data(), n_q, d), first.lse.data(), ConstMatrixF(second.out.data(), n_q, d),
                    second.lse.data());
    const std::vector<index_t> rows = sample_rows(n_q, 41);
    const AttentionRows ref =
        attention_rows_reference(Q.widened, K.widened, V.widened, rows, attention_spec(o, d, n_q, n_k));
    expect_within(compare(first, ref, rows, d), a == Arithmetic::bf16, "merged");
  }
}

// Adversarial keys (low rank, duplicated rows, heavy tails, huge and tiny magnitudes within each
// type's range) for both types and both arithmetics; prints the bf16 arithmetic's worst errors.
template <class T>
void check_adversarial(double huge, double tiny) {
  const index_t n = 700, d = 64;
  Errors worst_bf16;
  for (const std::string& kind : kinds()) {
    for (double magnitude : {1.0, huge, tiny}) {
      Floats k = make_keys(kind, n, d, 71);
      double top = 0.0;
      for (float x : k.data) top = std::max(top, std::fabs(static_cast<double>(x)));
      if (top == 0.0) continue;
      for (float& x : k.data) x = static_cast<float>(x / top * magnitude);
      // Gaussian queries, the first ten replaced by keys brought to unit scale (heavy entries).
      Floats q = normal_matrix(50, d, 72);
      for (index_t i = 0; i < 10; ++i)
        for (index_t c = 0; c < d; ++c) q.data[i * d + c] = static_cast<float>(k.data[i * d + c] / magnitude);
      const Rounded<T> K = round_all<T>(k), Q = round_all<T>(q), V = round_all<T>(normal_matrix(n, d, 73));
      double top_logit = 0.0;  // max |<q_i, k_j>| of the rounded inputs
      for (index_t i = 0; i < Q.widened.rows; ++i)
        for (index_t j = 0; j < n; ++j) {
          double s = 0.0;
          for (index_t c = 0; c < d; ++c)
            s += static_cast<double>(Q.widened.data[i * d + c]) * K.widened.data[j * d + c];
          top_logit = std::max(top_logit, std::fabs(s));
        }
      for (const ScoreFunction& f : {ScoreFunction::softmax(), ScoreFunction::power(2.0)})
        for (Arithmetic a : {Arithmetic::f32, Arithmetic::bf16}) {
          AttentionOptions o = options(f, false, a);
          // Softmax logits up to ±30 whatever the magnitude (beyond that float would overflow).
          if (f.kind == ScoreKind::softmax && top_logit > 0.0) o.scale = 30.0 / top_logit;
          const std::vector<index_t> rows = sample_rows(Q.widened.rows, 41);
          const bool bf16 = attention_kernel(Q.widened.rows, o).bf16_products;
          const AttentionRows ref =
              attention_rows_reference(as_computed(Q, bf16), as_computed(K, bf16), as_computed(V, bf16), rows,
                                       attention_spec(o, d, Q.widened.rows, n));
          const Errors e = compare(run(heads(Q), heads(K), heads(V), o), ref, rows, d);
          expect_within(e, bf16, kind + " magnitude " + std::to_string(magnitude) + " " + f.name());
          if (bf16) {
            worst_bf16.out = std::max(worst_bf16.out, e.out);
            worst_bf16.lse = std::max(worst_bf16.lse, e.lse);
          }
        }
    }
  }
  std::printf("%s inputs, bf16 arithmetic, worst over adversarial keys: output %.2e, log normaliser %.2e\n",
              element_type_name(element_type_of<T>), worst_bf16.out, worst_bf16.lse);
}

TEST(HalfAttention, HalfAdversarialKeysWithinBounds) { check_adversarial<Half>(6e4, 1e-3); }
TEST(HalfAttention, BFloat16AdversarialKeysWithinBounds) { check_adversarial<BFloat16>(1e30, 1e-30); }

TEST(HalfAttention, SoftmaxLogitsOverflowingFloatAreRefused) {
  const index_t n = 40, d = 16;
  Floats k = normal_matrix(n, d, 81);
  for (float& x : k.data) x *= 1e30f;
  const Rounded<BFloat16> K = round_all<BFloat16>(k), V = round_all<BFloat16>(normal_matrix(n, d, 82));
  for (Arithmetic a : {Arithmetic::f32, Arithmetic::bf16}) {
    Result r{std::vector<float>(n * d), std::vector<double>(n)};
    EXPECT_THROW(attend_exact(heads(K), heads(K), heads(V), options(ScoreFunction::softmax(), false, a),
                              HeadsF(r.out.data(), 1, 1, n, d), r.lse.data()),
                 Error);
  }
}

TEST(HalfAttention, NonFiniteInputNamesTensorAndRow) {
  const index_t n = 40, d = 16;
  Rounded<Half> Q = round_all<Half>(normal_matrix(n, d, 91)), K = round_all<Half>(normal_matrix(n, d, 92)),
                V = round_all<Half>(normal_matrix(n, d, 93));
  K.data[17 * d + 3] = Half{0x7e00};  // NaN
  std::vector<float> out(n * d);
  for (Arithmetic a : {Arithmetic::f32, Arithmetic::bf16}) {
    try {
      attend_exact(heads(Q), heads(K), heads(V), options(ScoreFunction::softmax(), false, a),
                   HeadsF(out.data(), 1, 1, n, d));
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("keys: batch 0, head 0, row 17"), std::string::npos) << e.what();
    }
  }
}

TEST(HalfAttention, KernelReportFollowsTypeArithmeticAndShape) {
  const AttentionOptions plain = options(ScoreFunction::softmax(), false, Arithmetic::f32);
  EXPECT_FALSE(AttentionOptions{}.arithmetic == Arithmetic::bf16);
  EXPECT_FALSE(attention_kernel(64, plain).bf16_products);
  const std::string name = attention_kernel(64, plain).name;
  EXPECT_TRUE(name == "generic" || name == "avx2" || name == "avx512" || name == "avx512_bf16") << name;
  EXPECT_TRUE(attention_kernel(64, options(ScoreFunction::softmax(), false, Arithmetic::bf16)).bf16_products);
  EXPECT_FALSE(attention_kernel(64, options(ScoreFunction::power(2.0), false, Arithmetic::bf16)).bf16_products);
  EXPECT_FALSE(attention_kernel(64, options(ScoreFunction::softmax(), false, Arithmetic::f32)).bf16_products);
}

}  // namespace
}  // namespace levattn::test
