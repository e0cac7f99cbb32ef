#include "heavy_csv.hpp"

#include <cinttypes>

namespace levattn::cli {

void write_heavy_csv_header(std::FILE* out, HeavyCsvColumns columns) {
  std::fprintf(out, "%squery,key,score%s\n", columns.head ? "head," : "", columns.estimated ? ",estimated" : "");
}

void write_heavy_csv_row(std::FILE* out, HeavyCsvColumns columns, const HeavyEntry& entry, index_t head,
                         bool estimated) {
  if (columns.head) std::fprintf(out, "%" PRId64 ",", head);
  std::fprintf(out, "%" PRId64 ",%" PRId64 ",%.9g", entry.query, entry.key, entry.score);
  if (columns.estimated) std::fprintf(out, ",%d", estimated ? 1 : 0);
  std::fputc('\n', out);
}

}  // namespace levattn::cli
