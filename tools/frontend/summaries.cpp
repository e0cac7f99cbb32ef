#include "summaries.hpp"

namespace levattn::cli {

nlohmann::json universal_set_summary_json(const std::string& command, const UniversalSetSummary& s) {
  nlohmann::json j = {{"command", command}, {"n", s.n},
                      {"d", s.d},           {"universal_set_size", s.size},
                      {"bound", s.bound},   {"within_bound", s.within_bound},
                      {"output", s.output}};
  if (s.eps) j["eps"] = *s.eps;
  if (s.top_k) j["top_k"] = *s.top_k;
  return j;
}

void print_universal_set_line(const char* program, const UniversalSetSummary& s, const std::string& over) {
  std::fprintf(stderr, "%s: wrote %s: |U| = %lld over %s, bound %.6g\n", program, s.output.c_str(),
               static_cast<long long>(s.size), over.c_str(), s.bound);
}

nlohmann::json heavy_summary_json(const HeavySummary& s) {
  return {{"command", "heavy"},
          {"n", s.n},
          {"m", s.m},
          {"d", s.d},
          {"heads", s.heads},
          {"eps", s.eps},
          {"p", s.p},
          {"universal_set_size", s.universal_set_size},
          {"bound", s.bound},
          {"scanned_keys", s.scanned_keys},
          {"heavy_count", s.heavy_count},
          {"zero_queries", s.zero_queries},
          {"fallback_queries", s.fallback_queries},
          {"rechecked", s.rechecked},
          {"output", s.output}};
}

void print_heavy_line(const char* program, const HeavySummary& s, const std::string& where) {
  std::fprintf(stderr,
               "%s: %lld heavy entries (eps %g) over %lld queries%s; |U| = %lld (bound %.6g); "
               "%lld zero rows, %lld fallback rows\n",
               program, static_cast<long long>(s.heavy_count), s.eps, static_cast<long long>(s.searched_queries),
               where.c_str(), static_cast<long long>(s.universal_set_size), s.bound,
               static_cast<long long>(s.zero_queries), static_cast<long long>(s.fallback_queries));
}

}  // namespace levattn::cli
