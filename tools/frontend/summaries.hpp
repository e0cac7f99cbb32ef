// The summaries levattn and levattn-mpi give of a universal set and of a heavy search: the fields
// of the --json object the two tools share (each adds its own: heads and per-head facts, or ranks;
// "seconds"), and the one line on stderr without --json. nlohmann::json objects print their keys
// sorted, so the order in which fields are added never shows.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "levattn/core/matrix_view.hpp"

namespace levattn::cli {

// A universal set selected from n keys of width d, by threshold (eps) or budget (top_k): exactly
// one of the two is set.
struct UniversalSetSummary {
  index_t n = 0, d = 0;
  std::optional<double> eps;
  std::optional<index_t> top_k;
  index_t size = 0;  // |U| (summed over heads)
  double bound = 0.0;
  bool within_bound = true;
  std::string output;  // the file written
};

// {"command", "n", "d", "eps" or "top_k", "universal_set_size", "bound", "within_bound", "output"}.
nlohmann::json universal_set_summary_json(const std::string& command, const UniversalSetSummary& s);

// "<program>: wrote <output>: |U| = <size> over <over>, bound <bound>" (e.g. over "2 head(s)").
void print_universal_set_line(const char* program, const UniversalSetSummary& s, const std::string& over);

// A heavy search of m queries (per head) over n keys of width d for the entries ≥ eps of |x|^p.
struct HeavySummary {
  index_t n = 0, m = 0, d = 0, heads = 1;
  double eps = 0.0, p = 2.0;
  index_t universal_set_size = 0;  // summed over heads, as the counts below
  double bound = 0.0;
  index_t scanned_keys = 0;
  index_t searched_queries = 0;  // m × heads
  index_t heavy_count = 0, zero_queries = 0, fallback_queries = 0, rechecked = 0;
  std::string output;  // the CSV written ("" for standard output)
};

// {"command": "heavy", "n", "m", "d", "heads", "eps", "p", "universal_set_size", "bound",
// "scanned_keys", "heavy_count", "zero_queries", "fallback_queries", "rechecked", "output"}.
nlohmann::json heavy_summary_json(const HeavySummary& s);

// "<program>: <count> heavy entries (eps <eps>) over <searched> queries<where>; |U| = <size>
// (bound <bound>); <zero> zero rows, <fallback> fallback rows" (e.g. where " on 4 ranks").
void print_heavy_line(const char* program, const HeavySummary& s, const std::string& where);

}  // namespace levattn::cli
