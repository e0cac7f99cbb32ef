// Heavy entries and one-pass universal sets on 16-bit keys (f16, bf16), read as they are: recall and
// precision 1 against a double-precision brute force over the ROUNDED keys, on Gaussian, low-rank,
// duplicated, heavy-tailed, badly scaled, huge, tiny, ill-conditioned (10³, 10⁶) and zero-column
// keys; bit for bit what the same search or stream gives on the keys widened to float; the brute
// force and verify_heavy on 16-bit keys; NaN/Inf rows named.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "heavy_checks.hpp"
#include "levattn/attention/brute_force.hpp"
#include "levattn/attention/heavy.hpp"
#include "levattn/attention/stream_heavy.hpp"
#include "levattn/attention/verify.hpp"
#include "levattn/scores/leverage.hpp"
#include "levattn/select/stream_selector.hpp"
#include "reference.hpp"

namespace levattn::test {
namespace {

const std::vector<std::string>& half_kinds() {
  static const std::vector<std::string> all{"gaussian", "low_rank", "duplicated", "heavy_tailed", "badly_scaled",
                                            "huge",     "tiny",     "cond1e3",    "cond1e6",      "zero_column"};
  return all;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// The search on 16-bit keys: every entry ≥ ε of the rounded keys' attention found and none below
// (the double reference), every heavy key in U, and the same bits as the search on the widened keys.
template <class T>
void expect_heavy_exact(const std::string& kind, std::uint64_t seed, double eps) {
  const index_t n = eps < 0.1 ? 1200 : 100, d = 16;
  const RoundedRows<T> K = round_rows<T>(keys_in_half_range<T>(kind, n, d, seed), seed == 1 ? 0 : 3);
  const Floats Q = make_queries(K.widened, 60, seed + 100);
  const MatD A = attention_reference(Q, K.widened);
  const std::string what =
      std::string(half_type_label<T>()) + " " + kind + " seed " + std::to_string(seed) + " eps " + std::to_string(eps);
  const HeavySearch search(K.view(), eps);
  HeavyStats stats;
  const std::vector<HeavyEntry> got = collect(search, Q.view(), &stats);
  EXPECT_GT(expect_matches(got, A, eps, what), 0) << what;
  EXPECT_EQ(stats.zero_queries, 1) << what;  // make_queries plants one zero row

  const UniversalSet& u = search.universal_set();
  EXPECT_TRUE(u.within_bound) << what;
  EXPECT_LE(u.size(), index_t(d / eps)) << what;
  for (index_t j = 0; j < n; ++j)
    if (A.col(j).maxCoeff() >= eps * (1 + 1e-4)) {
      EXPECT_TRUE(std::binary_search(u.indices.begin(), u.indices.end(), j)) << what << ": key " << j << " not in U";
    }

  const HeavySearch widened(K.widened.view(), eps);
  EXPECT_EQ(search.scanned_keys(), widened.scanned_keys()) << what;
  EXPECT_EQ(u.indices, widened.universal_set().indices) << what;
  EXPECT_TRUE(same_bits(u.scores, widened.universal_set().scores)) << what;
  HeavyStats widened_stats;
  expect_identical(got, collect(widened, Q.view(), &widened_stats), what);
  EXPECT_EQ(stats.fallback_queries, widened_stats.fallback_queries) << what;
}

class HeavyHalfOnKind : public ::testing::TestWithParam<std::string> {};

TEST_P(HeavyHalfOnKind, RecallAndPrecisionAreOneOnTheRoundedKeys) {
  for (std::uint64_t seed = 1; seed <= 2; ++seed)
    for (double eps : {0.001, 0.01, 0.1}) {
      expect_heavy_exact<BFloat16>(GetParam(), seed, eps);
      expect_heavy_exact<Half>(GetParam(), seed, eps);
    }
}

INSTANTIATE_TEST_SUITE_P(Kinds, HeavyHalfOnKind, ::testing::ValuesIn(half_kinds()),
                         [](const auto& info) { return info.param; });

// The pieces levattn-mpi assembles a search from — scan sets of row ranges and fallback products —
// are those of the widened keys, bit for bit, on a strided view.
template <class T>
void expect_pieces_match(const std::string& kind) {
  const RoundedRows<T> K = round_rows<T>(keys_in_half_range<T>(kind, 900, 12, 5), 5);
  const std::string what = std::string(half_type_label<T>()) + " " + kind;
  LeverageScorer scorer(12);
  scorer.fit(K.view());
  for (const auto& [begin, end] : {std::pair<index_t, index_t>{0, 900}, {1, 450}, {450, 900}}) {
    const HeavyScanSet a = heavy_scan_set(scorer, K.view().rows_range(begin, end), begin, 0.02);
    const HeavyScanSet b = heavy_scan_set(scorer, K.widened.view().rows_range(begin, end), begin, 0.02);
    EXPECT_FALSE(a.index.empty()) << what;
    EXPECT_EQ(a.index, b.index) << what;
    EXPECT_TRUE(same_bits(a.tau, b.tau)) << what;
    EXPECT_TRUE(same_bits(a.rows, b.rows)) << what;
  }
  const Floats Q = make_queries(K.widened, 8, 6);
  std::vector<double> p16(900), p32(900);
  for (index_t i = 0; i < Q.rows; ++i) {
    heavy_products(Q.view().row(i), K.view(), p16.data());
    heavy_products(Q.view().row(i), K.widened.view(), p32.data());
    EXPECT_TRUE(same_bits(p16, p32)) << what << " query " << i;
  }
}

TEST(HeavyHalf, ScanSetsAndProductsAreThoseOfTheWidenedKeys) {
  for (const std::string kind : {"gaussian", "heavy_tailed", "huge", "tiny"}) {
    expect_pieces_match<BFloat16>(kind);
    expect_pieces_match<Half>(kind);
  }
}

// Keys with a direction below the rank cut-off (column 5 = column 4, except one key with 0 and
// 2^-20 there — exact in both types, f16 as a subnormal) and queries along it (e5 − e4): those
// rows fall back to every key, read in 16 bits, and still match the reference and the widened
// search bit for bit.
template <class T>
void expect_fallback_exact() {
  const RoundedRows<T> K = round_rows<T>(keys_with_a_cut_direction());
  const Floats Q = queries_along_the_cut(K.widened);
  const std::string what = std::string(half_type_label<T>()) + " cut direction";
  const HeavySearch search(K.view(), 0.01);
  HeavyStats stats;
  const std::vector<HeavyEntry> got = collect(search, Q.view(), &stats);
  EXPECT_GE(stats.fallback_queries, 20) << what;
  expect_matches(got, attention_reference(Q, K.widened), 0.01, what);
  expect_identical(got, collect(HeavySearch(K.widened.view(), 0.01), Q.view()), what);
}

TEST(HeavyHalf, FallbackRowsReadThe16BitKeys) {
  expect_fallback_exact<BFloat16>();
  expect_fallback_exact<Half>();
}

template <class T>
void expect_nonfinite_named(std::uint16_t bad_bits) {
  for (index_t bad_row : {0, 255, 256, 611}) {
    RoundedRows<T> K = round_rows<T>(normal_matrix(612, 5, 4), 2);
    K.data[bad_row * K.stride + 3].bits = bad_bits;
    const std::string what = std::string(half_type_label<T>()) + " row " + std::to_string(bad_row);
    try {
      const HeavySearch search(K.view(), 0.05);
      ADD_FAILURE() << what << ": no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::bad_input) << what;
      const std::string want = "keys: row " + std::to_string(bad_row) + " holds a NaN or an infinity";
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << what << ": " << e.what();
    }
  }
}

// The brute force and verify_heavy on 16-bit keys, read in blocks of 1,024 (n = 2,500: two whole
// blocks and a partial one; strided rows; bf16 "huge" and "tiny" keys take the float brute force's
// scaled path, and verify_heavy's double products):
// recall and precision 1 against the double reference on the rounded keys, scores within 1e-4.
TEST(HeavyHalf, BruteForceAndVerifyReadThe16BitKeys) {
  const index_t n = 2500, d = 16;
  const double eps = 0.004;  // below d/n, so that the maximiser queries find entries on Gaussian keys
  const auto check = [&](const auto& K, const std::string& what) {
    const Floats Q = make_queries(K.widened, 50, 77);
    const MatD A = attention_reference(Q, K.widened);
    std::vector<HeavyEntry> got;
    brute_force_heavy(Q.view(), K.view(), eps,
                      [&](const HeavyEntry* e, index_t count) { got.insert(got.end(), e, e + count); });
    EXPECT_GT(expect_matches(got, A, eps, what), 0) << what;
    const VerifyReport r = verify_heavy(HeavySearch(K.view(), eps), K.view(), Q.view());
    EXPECT_GT(r.reference, 0) << what;
    EXPECT_EQ(r.recall(), 1.0) << what;
    EXPECT_EQ(r.precision(), 1.0) << what;
  };
  for (const std::string kind : {"gaussian", "heavy_tailed", "huge", "tiny"}) {
    check(round_rows<Half>(keys_in_half_range<Half>(kind, n, d, 5), 3), "f16 " + kind);
    check(round_rows<BFloat16>(keys_in_half_range<BFloat16>(kind, n, d, 5), 3), "bf16 " + kind);
  }
}

TEST(HeavyHalf, NonFiniteKeysAreRefusedByRow) {
  expect_nonfinite_named<BFloat16>(0xff80);  // −inf
  expect_nonfinite_named<BFloat16>(0x7fc3);  // a NaN
  expect_nonfinite_named<Half>(0x7c00);      // +inf
  expect_nonfinite_named<Half>(0xfe11);      // a NaN
  const RoundedRows<Half> K = round_rows<Half>(normal_matrix(10, 4, 1));
  EXPECT_THROW(HeavySearch(K.view(), 0.0), Error);
  EXPECT_THROW(HeavySearch(K.view().rows_range(0, 0), 0.1), Error);
}

// The one-pass set of 16-bit blocks: the widened keys' stream bit for bit (indices, τ, rows,
// values), for blocks shorter and longer than the selector's pending buffer (pushed in pieces);
// the offline set of the 16-bit keys; and, away from ε, the double SVD of the rounded keys.
template <class T>
void expect_stream_exact(const std::string& kind, double eps) {
  const index_t n = 1500, d = 12, dv = 3;
  const RoundedRows<T> K = round_rows<T>(keys_in_half_range<T>(kind, n, d, 9), 1);
  const RoundedRows<T> V = round_rows<T>(normal_matrix(n, dv, 10, 1e3));
  const std::string what = std::string(half_type_label<T>()) + " " + kind + " eps " + std::to_string(eps);
  LeverageScorer scorer(d);
  scorer.fit(K.view());
  const std::vector<double> tau = scorer.scores(K.view());
  const UniversalSet offline = select_by_threshold(tau.data(), n, eps, double(scorer.rank()));
  const std::vector<double> ref = leverage_reference(K.widened, kDefaultRcond);
  for (index_t j = 0; j < n; ++j) {
    const bool in = std::binary_search(offline.indices.begin(), offline.indices.end(), j);
    if (ref[j] >= eps * 1.02) {
      EXPECT_TRUE(in) << what << " key " << j;
    }
    if (ref[j] <= eps * 0.98) {
      EXPECT_FALSE(in) << what << " key " << j;
    }
  }
  for (index_t block : {index_t{7}, index_t{1000}, n}) {
    const StreamOptions options{.eps = eps, .value_dim = dv, .pending_rows = 64};
    StreamSelector s16(d, options), s32(d, options);
    for (index_t r = 0; r < n; r += block) {
      const index_t e = std::min(n, r + block);
      s16.push(K.view().rows_range(r, e), V.view().rows_range(r, e));
      s32.push(K.widened.view().rows_range(r, e), V.widened.view().rows_range(r, e));
    }
    const StreamResult a = s16.result(), b = s32.result();
    const std::string at = what + " block " + std::to_string(block);
    EXPECT_EQ(a.set.indices, offline.indices) << at;
    EXPECT_TRUE(same_bits(a.set.scores, offline.scores)) << at;
    EXPECT_EQ(a.set.indices, b.set.indices) << at;
    EXPECT_TRUE(same_bits(a.set.scores, b.set.scores)) << at;
    EXPECT_TRUE(same_bits(a.keys, b.keys)) << at;
    EXPECT_TRUE(same_bits(a.values, b.values)) << at;
    EXPECT_EQ(a.count, n) << at;
    for (index_t i = 0; i < a.set.size(); ++i) ASSERT_EQ(a.values[i * dv], V.widened.data[a.set.indices[i] * dv]) << at;
    // Heavy entries over the held keys: those of the widened stream.
    const Floats Q = make_queries(K.widened, 12, 11);
    const StreamHeavyAnswer h16 = stream_heavy(s16, Q.view(), eps), h32 = stream_heavy(s32, Q.view(), eps);
    expect_identical(h16.entries, h32.entries, at);
    EXPECT_EQ(h16.uncertain, h32.uncertain) << at;
  }
}

class StreamHalfOnKind : public ::testing::TestWithParam<std::string> {};

TEST_P(StreamHalfOnKind, SixteenBitBlocksGiveTheSetOfTheRoundedKeys) {
  for (double eps : {0.03, 0.3}) {
    expect_stream_exact<BFloat16>(GetParam(), eps);
    expect_stream_exact<Half>(GetParam(), eps);
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, StreamHalfOnKind, ::testing::ValuesIn(half_kinds()),
                         [](const auto& info) { return info.param; });

// A NaN/Inf anywhere in a 16-bit block — beyond the first piece the block is widened in, too — is
// named by its global row, and the selector is left as it was.
template <class T>
void expect_stream_refuses(std::uint16_t bad_bits) {
  const index_t d = 4;
  for (const bool in_values : {false, true})
    for (index_t bad_row : {103, 250, 299}) {
      RoundedRows<T> K = round_rows<T>(normal_matrix(300, d, 1));
      RoundedRows<T> V = round_rows<T>(normal_matrix(300, 2, 2));
      (in_values ? V.data[bad_row * 2 + 1] : K.data[bad_row * d + 2]).bits = bad_bits;
      StreamSelector s(d, {.eps = 0.1, .value_dim = 2, .pending_rows = 32});
      s.push(K.view().rows_range(0, 100), V.view().rows_range(0, 100));
      const StreamResult before = s.result();
      const std::string what =
          std::string(half_type_label<T>()) + (in_values ? " values" : " keys") + " row " + std::to_string(bad_row);
      try {
        s.push(K.view().rows_range(100, 300), V.view().rows_range(100, 300));
        ADD_FAILURE() << what << ": no error";
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::bad_input) << what;
        EXPECT_EQ(std::string(e.what()), std::string(in_values ? "values" : "keys") + ": row " +
                                             std::to_string(bad_row) + " holds a NaN or an infinity")
            << what;
      }
      EXPECT_EQ(s.count(), 100) << what;
      EXPECT_EQ(s.result().set.indices, before.set.indices) << what;
      EXPECT_TRUE(same_bits(s.result().keys, before.keys)) << what;
    }
  StreamSelector s(d, {.eps = 0.1});
  const RoundedRows<T> wide = round_rows<T>(normal_matrix(10, d + 1, 3));
  EXPECT_THROW(s.push(wide.view()), Error);
  const RoundedRows<T> values = round_rows<T>(normal_matrix(10, 2, 3));
  EXPECT_THROW(s.push(round_rows<T>(normal_matrix(10, d, 3)).view(), values.view()), Error);  // value_dim = 0
}

TEST(StreamHalf, NonFiniteRowsAreRefusedWhole) {
  expect_stream_refuses<BFloat16>(0x7f80);
  expect_stream_refuses<BFloat16>(0xffc5);
  expect_stream_refuses<Half>(0xfc00);
  expect_stream_refuses<Half>(0x7e01);
}

}  // namespace
}  // namespace levattn::test
