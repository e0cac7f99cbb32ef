#include "attention/finite_check.hpp"

#include <string>

#include "core/finite_rows.hpp"

namespace levattn::detail {

void check_finite(const char* name, ConstHeadsF t) {
  for (index_t b = 0; b < t.batch; ++b)
    for (index_t h = 0; h < t.heads; ++h) {
      const ConstMatrixF m = t.head(b, h);
      if (const index_t r = first_nonfinite_row(m); r < m.rows)
        throw Error(ErrorKind::bad_input, std::string(name) + ": batch " + std::to_string(b) + ", head " +
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
