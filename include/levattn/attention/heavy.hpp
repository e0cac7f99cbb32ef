// Every heavy entry of x² attention, A[i,j] = <q_i,k_j>² / Σ_l <q_i,k_l>² ≥ ε, without forming A.
//
// Method: leverage scores τ of the keys give the universal set U = {j : τ_j ≥ ε}; since
// A[i,j] ≤ τ_j for every query (docs/proofs.md §1), only keys in U are scanned. The normaliser
// Σ_l <q,k_l>² = qᵀGq is exact. Cost O((n + m)·d² + m·|U|·d + m_f·n·d) with m_f the fallback queries (below), memory
// O(n + m + |U|·d) (entries stream to a sink).
//
// Guarantee: every entry with A[i,j] ≥ ε is reported, and no entry below it, with A computed in
// double from the float inputs: the product <q,k> exactly up to double rounding, the normaliser
// qᵀGq from the Gram factor (relative error growing like 1e-16·cond(K)²; the tests hold A to
// 1e-4 up to cond(K) = 1e6, so only entries that close to ε can fall on the wrong side).
// Candidate products come from a float GEMM and are re-checked in double whenever the float
// value, widened by its rigorous rounding bound, could clear ε. A query whose normaliser has noticeable weight along
// directions below the rank cut-off (see gram_factors.hpp), where leverage scores say nothing, is computed by brute
// force over all n keys instead ("fallback" queries; rare, counted in the stats). A query with Σ_l <q,k_l>² = 0 (e.g. q
// = 0) has no defined row: it yields no entries and is counted.
//
// 16-bit keys (f16, bf16): the search also fits on MatrixView<const Half> / <const BFloat16>,
// read as they are: the Gram matrix, τ and the fallback products come from the 16-bit values
// (widened exactly), and only the scan-set rows (|scan| ≤ rank/(ε(1 − 5e-2))) are copied, as
// float. Every statement above then holds with A computed from the ROUNDED keys, and the search
// reports, bit for bit, what it reports on the keys widened to float. Queries are float32.
#pragma once

#include <functional>
#include <vector>

#include "levattn/core/half.hpp"
#include "levattn/core/matrix_view.hpp"
#include "levattn/scores/leverage.hpp"
#include "levattn/select/universal_set.hpp"

namespace levattn {

struct HeavyEntry {
  index_t query;
  index_t key;
  double score;  // A[query, key]
};

struct HeavyStats {
  index_t queries = 0;           // rows searched
  index_t heavy_count = 0;       // entries reported
  index_t zero_queries = 0;      // rows with Σ_l <q,k_l>² = 0: no entries
  index_t fallback_queries = 0;  // rows searched over all keys (see above)
  index_t rechecked = 0;         // candidate entries re-checked in double

  HeavyStats& operator+=(const HeavyStats& other) {
    queries += other.queries;
    heavy_count += other.heavy_count;
    zero_queries += other.zero_queries;
    fallback_queries += other.fallback_queries;
    rechecked += other.rechecked;
    return *this;
  }
};

// Receives entries in (query, key) order, a batch at a time. It may throw; the search then stops
// and rethrows.
using HeavySink = std::function<void(const HeavyEntry* entries, index_t count)>;

// The keys a search scans: every key with τ_j ≥ heavy_scan_threshold(ε) — a superset of U that
// absorbs rounding in τ — as global indices (ascending), their scores and their rows (row-major,
// d floats each).
struct HeavyScanSet {
  std::vector<index_t> index;
  std::vector<double> tau;
  std::vector<float> rows;
};

// ε(1 − 5e-2): keys scored below it cannot hold an entry ≥ ε (see the guarantee above).
double heavy_scan_threshold(double eps);

// The scan set of the rows of keys (m×d, finite) under a scorer fitted on all keys, the rows
// numbered from `first`. Scan sets of consecutive row ranges, concatenated in order, are the scan
// set of the whole (each τ_j depends only on the scorer and row j). 16-bit keys: τ from the 16-bit
// values and the scanned rows widened exactly, the same set as for the keys widened to float.
HeavyScanSet heavy_scan_set(const LeverageScorer& fitted, ConstMatrixF keys, index_t first, double eps);
HeavyScanSet heavy_scan_set(const LeverageScorer& fitted, MatrixView<const Half> keys, index_t first, double eps);
HeavyScanSet heavy_scan_set(const LeverageScorer& fitted, MatrixView<const BFloat16> keys, index_t first, double eps);

// The products <q, k_j> of one query (d floats) with each row of keys, in double, exactly as a
// search computes them for a fallback row: out has keys.rows entries. 16-bit keys are widened
// exactly: the same bits as for the keys widened to float.
void heavy_products(const float* query, ConstMatrixF keys, double* out);
void heavy_products(const float* query, MatrixView<const Half> keys, double* out);
void heavy_products(const float* query, MatrixView<const BFloat16> keys, double* out);

// A query the universal set cannot vouch for (see above) needs its products with every key: given
// them in key order (n doubles), appends each entry p_j²/Σ_l p_l² ≥ ε to found. Returns false, and
// appends nothing, when Σ_l p_l² = 0 (a zero row).
bool heavy_entries_from_products(index_t query, const double* products, index_t n, double eps,
                                 std::vector<HeavyEntry>& found);

// Completes a fallback row of a search whose keys are held elsewhere: called with the row number
// in `queries` of run() and the row (d floats), from worker threads (concurrently: it must be
// thread safe). It may append the row's entries to found (in key order) and count a zero row in
// stats, or defer the row.
using HeavyFallback =
    std::function<void(index_t query, const float* row, std::vector<HeavyEntry>& found, HeavyStats& stats)>;

class HeavySearch {
 public:
  // Fits on keys (n×d, n ≥ 1, finite; the view must outlive the search) for threshold ε ∈ (0,1].
  // Throws Error{bad_input} on empty or non-finite keys (naming the first such row) or ε outside
  // (0, 1]. 16-bit keys: see the header's last paragraph.
  HeavySearch(ConstMatrixF keys, double eps, double rcond = kDefaultRcond);
  HeavySearch(MatrixView<const Half> keys, double eps, double rcond = kDefaultRcond);
  HeavySearch(MatrixView<const BFloat16> keys, double eps, double rcond = kDefaultRcond);

  // A search over n keys held elsewhere (e.g. on other MPI ranks): `fitted` was fitted on all of
  // them and `scan` is their scan set. Fallback rows go to `fallback`. Given the same scorer bits
  // and scan set, run() reports what the search fitted on the keys themselves reports, except for
  // fallback rows, which are the callback's.
  HeavySearch(LeverageScorer fitted, index_t n, double eps, HeavyScanSet scan, HeavyFallback fallback);

  // Every entry ≥ ε for the rows of queries (m×d), streamed to sink in (query, key) order.
  // Query indices are row numbers of `queries`. Parallel over query tiles; the output does not
  // depend on the thread count. `progress`, if set, is told how many rows are done, in order.
  HeavyStats run(ConstMatrixF queries, const HeavySink& sink, const std::function<void(index_t)>& progress = {}) const;

  // Query rows per tile of run(). Splitting the queries at multiples of it keeps every tile, and so
  // every bit of the output, what one run over all of them computes.
  index_t query_tile_rows() const;

  double eps() const { return eps_; }
  index_t key_count() const { return n_; }
  const LeverageScorer& scorer() const { return scorer_; }
  // U = {j : τ_j ≥ ε}, with bound rank/ε.
  const UniversalSet& universal_set() const { return uset_; }
  // Keys actually scanned: the scan set (τ_j ≥ heavy_scan_threshold(ε)).
  index_t scanned_keys() const { return static_cast<index_t>(cand_.size()); }

 private:
  template <class T>
  void fit_on(MatrixView<const T> keys);
  void prepare_scan(HeavyScanSet scan);

  index_t n_;
  double eps_;
  LeverageScorer scorer_;
  HeavyFallback fallback_;
  UniversalSet uset_;
  std::vector<index_t> cand_;     // scanned keys, ascending
  std::vector<float> cand_rows_;  // their rows as given
  std::vector<float> cand_keys_;  // their rows, scaled by 2^key_shift_, |·|∞ < 1
  int key_shift_ = 0;
  double cand_norm_max_ = 0.0;  // largest Euclidean norm of a scaled scanned row
};

}  // namespace levattn
