#include "attention/finite_check.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace levattn::detail {

void check_finite(const char* name, ConstHeadsF t) {
  for (index_t b = 0; b < t.batch; ++b)
    for (index_t h = 0; h < t.heads; ++h) {
      const ConstMatrixF m = t.head(b, h);
      for (index_t r = 0; r < m.rows; ++r)
        if (!std::all_of(m.row(r), m.row(r) + m.cols, [](float x) { return std::isfinite(x); }))
          throw Error(ErrorKind::bad_input,
                      std::string(name) + ": batch " + std::to_string(b) + ", head " +
                          std::to_string(h) + ", row " + std::to_string(r) +
                          " holds a NaN or an infinity");
    }
}

void explain_nonfinite(ConstHeadsF queries, ConstHeadsF keys, ConstHeadsF values) {
  check_finite("queries", queries);
  check_finite("keys", keys);
  check_finite("values", values);
  throw Error(ErrorKind::bad_input,
              "attention: the scaled scores c·<q,k> or the outputs overflow float32 "
              "(inputs too large for softmax at this scale)");
}

}  // namespace levattn::detail
