// Heavy entries of |x|^p attention (p ≠ 2) on 16-bit keys (f16, bf16), read as they are: recall 1
// against a double-precision brute force over the ROUNDED keys (low-rank keys included, which
// rounding makes nearly low rank: hard for the fourth-moment normaliser); bit for bit what the search, its normaliser,
// the brute force and verify give on the keys widened to float (sampled and exact normalisers, fallback rows, 16-bit
// queries of the normaliser); NaN/Inf key rows named.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "heavy_checks.hpp"
#include "levattn/attention/power_heavy.hpp"
#include "reference.hpp"

namespace levattn::test {
namespace {

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

struct Instance {
  index_t scanned = 0;  // keys the search scanned
  index_t heavy = 0;    // reference entries A ≥ ε(1 + 1e-9)
};

// The search on 16-bit keys (a padded, strided view): every entry A ≥ ε(1 + 1e-9) of the rounded
// keys is reported, and the Lewis weights, universal set, normaliser, entries and counts are those
// of the search on the widened keys, bit for bit; so are the brute force's entries and verify's
// counts.
template <class T>
Instance expect_search_matches(const std::string& kind, double p, NormaliserPolicy policy, std::uint64_t seed) {
  const index_t n = 1500, d = 6;
  const double eps = 0.01;
  const RoundedRows<T> K = round_rows<T>(keys_in_half_range<T>(kind, n, d, seed), 3);
  const Floats Q = make_queries(K.widened, 70, seed + 100);  // > one query tile of 64
  PowerHeavyOptions o;
  o.normaliser.delta = 0.3;
  o.normaliser.policy = policy;
  const std::string what =
      std::string(half_type_label<T>()) + " " + kind + " p " + std::to_string(p) + " seed " + std::to_string(seed);
  const PowerHeavySearch search(K.view(), p, eps, o);
  const PowerHeavySearch widened(K.widened.view(), p, eps, o);
  EXPECT_EQ(search.normaliser().kind(), widened.normaliser().kind()) << what;
  EXPECT_EQ(search.normaliser().sample_size(), widened.normaliser().sample_size()) << what;
  EXPECT_TRUE(same_bits(search.sensitivities(), widened.sensitivities())) << what;
  EXPECT_EQ(search.universal_set().indices, widened.universal_set().indices) << what;
  EXPECT_EQ(search.scanned_keys(), widened.scanned_keys()) << what;

  HeavyStats stats, widened_stats;
  const std::vector<HeavyEntry> got = collect(search, Q.view(), &stats);
  EXPECT_TRUE(std::is_sorted(got.begin(), got.end(), [](const HeavyEntry& a, const HeavyEntry& b) {
    return std::pair(a.query, a.key) < std::pair(b.query, b.key);
  })) << what;
  expect_identical(got, collect(widened, Q.view(), &widened_stats), what);
  EXPECT_EQ(stats.zero_queries, widened_stats.zero_queries) << what;
  EXPECT_EQ(stats.rechecked, widened_stats.rechecked) << what;
  EXPECT_EQ(stats.zero_queries, 1) << what;  // make_queries plants one zero row

  const MatD A = power_attention_reference(Q, K.widened, p);
  index_t heavy = 0;
  std::vector<std::vector<bool>> reported(static_cast<size_t>(Q.rows), std::vector<bool>(static_cast<size_t>(n)));
  for (const HeavyEntry& e : got) reported[e.query][e.key] = true;
  for (index_t i = 0; i < A.rows(); ++i)
    for (index_t j = 0; j < A.cols(); ++j)
      if (A(i, j) >= eps * (1 + 1e-9)) {
        ++heavy;
        EXPECT_TRUE(reported[i][j]) << what << ": missed (" << i << "," << j << ") A = " << A(i, j);
      }

  // The brute force and verify read the 16-bit keys with the widened keys' bits.
  std::vector<HeavyEntry> brute16, brute32;
  brute_force_power_heavy(Q.view(), K.view(), p, eps,
                          [&](const HeavyEntry* e, index_t c) { brute16.insert(brute16.end(), e, e + c); });
  brute_force_power_heavy(Q.view(), K.widened.view(), p, eps,
                          [&](const HeavyEntry* e, index_t c) { brute32.insert(brute32.end(), e, e + c); });
  expect_identical(brute16, brute32, what + " brute force");
  const VerifyReport r16 = verify_power_heavy(search, K.view(), Q.view());
  const VerifyReport r32 = verify_power_heavy(widened, K.widened.view(), Q.view());
  EXPECT_EQ(r16.recall(), 1.0) << what;
  EXPECT_EQ(r16.reference, r32.reference) << what;
  EXPECT_EQ(r16.reported_confirmed, r32.reported_confirmed) << what;
  return {search.scanned_keys(), heavy};
}

TEST(PowerHeavyHalf, EntriesAreThoseOfTheWidenedKeysAndRecallIsOne) {
  index_t multi_block = 0, heavy = 0;  // instances whose scan spans several key blocks but not all keys
  for (const std::string kind : {"gaussian", "heavy_tailed", "duplicated", "low_rank", "huge", "tiny"})
    for (std::uint64_t seed = 1; seed <= 2; ++seed) {
      for (const Instance& r : {expect_search_matches<Half>(kind, 1.0, NormaliserPolicy::automatic, seed),
                                expect_search_matches<BFloat16>(kind, 3.0, NormaliserPolicy::automatic, seed),
                                expect_search_matches<Half>(kind, 4.0, NormaliserPolicy::exact, seed),
                                expect_search_matches<BFloat16>(kind, 4.0, NormaliserPolicy::sampled, seed)}) {
        multi_block += r.scanned > 64 && r.scanned < 1500;
        heavy += r.heavy;
      }
    }
  std::printf("%lld of 48 instances scan several key blocks; %lld reference entries\n",
              static_cast<long long>(multi_block), static_cast<long long>(heavy));
  EXPECT_GE(multi_block, 10);
  EXPECT_GT(heavy, 500);
}

// The normaliser of 16-bit keys, asked about 16-bit queries, gives the bits of the widened keys and
// queries, for every kind of normaliser.
template <class T>
void expect_normaliser_matches(double p, NormaliserPolicy policy) {
  const RoundedRows<T> K = round_rows<T>(keys_in_half_range<T>("heavy_tailed", 3000, 5, 7), 1);
  const RoundedRows<T> Q =
      round_rows<T>(rows_scaled_to_unit(make_queries(keys_in_half_range<T>("gaussian", 200, 5, 8), 150, 9)), 2);
  const std::vector<double> s = lewis_weights(K.view(), p).sensitivities();
  PowerNormaliserOptions o;
  o.policy = policy;
  const PowerNormaliser a(K.view(), p, s, o), b(K.widened.view(), p, s, o);
  const std::string what =
      std::string(half_type_label<T>()) + " p " + std::to_string(p) + " " + normaliser_kind_name(a.kind());
  EXPECT_EQ(a.kind(), b.kind()) << what;
  std::vector<double> got(150), want(150);
  a.log_normalisers(Q.view(), got.data());
  b.log_normalisers(Q.widened.view(), want.data());
  EXPECT_TRUE(same_bits(got, want)) << what;
  EXPECT_EQ(got[5], -INFINITY) << what;  // make_queries' zero row
  EXPECT_TRUE(std::isfinite(got[0])) << what;
}

TEST(PowerHeavyHalf, NormaliserOf16BitKeysAndQueriesIsThatOfTheWidenedOnes) {
  for (const auto& [p, policy] : {std::pair{2.0, NormaliserPolicy::exact}, std::pair{4.0, NormaliserPolicy::exact},
                                  std::pair{3.0, NormaliserPolicy::sampled}}) {
    expect_normaliser_matches<Half>(p, policy);
    expect_normaliser_matches<BFloat16>(p, policy);
  }
}

// Keys with a direction below the rank cut-off (column 5 = column 4, except one key) and queries
// along it: those rows fall back to every key, read in 16 bits, with the widened keys' entries.
template <class T>
void expect_fallback_matches() {
  const RoundedRows<T> K = round_rows<T>(keys_with_a_cut_direction());
  const Floats Q = queries_along_the_cut(K.widened);
  const std::string what = std::string(half_type_label<T>()) + " cut direction";
  HeavyStats stats;
  const std::vector<HeavyEntry> got = collect(PowerHeavySearch(K.view(), 3.0, 0.05), Q.view(), &stats);
  EXPECT_GE(stats.fallback_queries, 20) << what;
  expect_identical(got, collect(PowerHeavySearch(K.widened.view(), 3.0, 0.05), Q.view()), what);
  const MatD A = power_attention_reference(Q, K.widened, 3.0);
  for (index_t i = 0; i < Q.rows; i += 2)
    for (index_t j = 0; j < K.rows; ++j)
      if (A(i, j) >= 0.05 * (1 + 1e-9)) {
        EXPECT_TRUE(
            std::any_of(got.begin(), got.end(), [&](const HeavyEntry& e) { return e.query == i && e.key == j; }))
            << what << ": fallback row " << i << " missed key " << j;
      }
}

TEST(PowerHeavyHalf, FallbackRowsReadThe16BitKeys) {
  expect_fallback_matches<Half>();
  expect_fallback_matches<BFloat16>();
}

template <class T>
void expect_bad_row_named() {
  RoundedRows<T> K = round_rows<T>(keys_in_half_range<T>("gaussian", 300, 4, 1));
  K.data[123 * K.stride + 2] = round_to<T>(std::numeric_limits<float>::infinity());
  try {
    PowerHeavySearch(K.view(), 3.0, 0.1);
    ADD_FAILURE() << half_type_label<T>() << ": an Inf key was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::bad_input);
    EXPECT_NE(std::string(e.what()).find("row 123"), std::string::npos) << e.what();
  }
}

TEST(PowerHeavyHalf, NonFiniteKeyRowsAreNamed) {
  expect_bad_row_named<Half>();
  expect_bad_row_named<BFloat16>();
}

}  // namespace
}  // namespace levattn::test
