// The CSV of heavy entries that `levattn heavy` and `levattn-mpi heavy` write, the same bytes from
// both: a header "[head,]query,key,score[,estimated]", then one line per entry with the integers in
// decimal, the score with 9 significant digits (%.9g) and `estimated` as 0 or 1.
#pragma once

#include <cstdio>

#include "levattn/attention/heavy.hpp"

namespace levattn::cli {

struct HeavyCsvColumns {
  bool head = false;       // a leading "head" column (inputs of several heads)
  bool estimated = false;  // a trailing "estimated" column (p ≠ 2: was the normaliser sampled?)
};

void write_heavy_csv_header(std::FILE* out, HeavyCsvColumns columns);

// One line for `entry`; `head` is written only with columns.head, `estimated` only with
// columns.estimated. Errors show in the stream's error flag (io::AtomicFile::commit checks it).
void write_heavy_csv_row(std::FILE* out, HeavyCsvColumns columns, const HeavyEntry& entry, index_t head,
                         bool estimated);

}  // namespace levattn::cli
