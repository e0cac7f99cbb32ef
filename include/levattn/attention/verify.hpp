// Checks the heavy-entry search against brute force on a sample of queries.
#pragma once

#include <cstdint>
#include <vector>

#include "levattn/attention/heavy.hpp"

namespace levattn {

struct VerifyReport {
  index_t queries = 0;             // sampled queries checked
  double tolerance = 0.0;          // relative band around ε that rounding may blur
  index_t reference = 0;           // brute-force entries with A ≥ ε(1 + tolerance)
  index_t reference_found = 0;     // ... of those, reported by the search
  index_t reported = 0;            // entries the search reported
  index_t reported_confirmed = 0;  // ... of those, with brute-force A ≥ ε(1 − tolerance)
  double recall() const { return reference == 0 ? 1.0 : double(reference_found) / double(reference); }
  double precision() const { return reported == 0 ? 1.0 : double(reported_confirmed) / double(reported); }
};

// Runs `search` and brute_force_heavy with double products (BruteForceProducts::f64) on the rows
// of `sample` (queries, m×d) and compares them. Entries within `tolerance` (relative) of ε may
// fall either way and are not counted against the search.
VerifyReport verify_heavy(const HeavySearch& search, ConstMatrixF keys, ConstMatrixF sample, double tolerance = 1e-4);
// The same for a search fit on 16-bit keys, given those keys as they are (the brute force reads
// them in blocks: no float copy).
VerifyReport verify_heavy(const HeavySearch& search, MatrixView<const Half> keys, ConstMatrixF sample,
                          double tolerance = 1e-4);
VerifyReport verify_heavy(const HeavySearch& search, MatrixView<const BFloat16> keys, ConstMatrixF sample,
                          double tolerance = 1e-4);

// Compares `found` (a search's entries) with `reference` (brute-force entries computed with the
// threshold lowered to ε(1 − tolerance)), both in (query, key) order.
VerifyReport compare_heavy(const std::vector<HeavyEntry>& found, const std::vector<HeavyEntry>& reference, double eps,
                           double tolerance);

// `count` distinct rows of X chosen uniformly with the given seed (all rows if count ≥ rows),
// copied densely in ascending row order; `rows` receives their indices.
std::vector<float> sample_rows(ConstMatrixF X, index_t count, std::uint64_t seed, std::vector<index_t>& rows);

}  // namespace levattn
