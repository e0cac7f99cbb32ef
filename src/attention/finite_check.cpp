#include "attention/finite_check.hpp"

#include <string>

#include "levattn/core/finite_rows.hpp"

namespace levattn::detail {

template <class T>
void check_finite(const char* name, HeadsView<const T> t) {
  for (index_t b = 0; b < t.batch; ++b)
    for (index_t h = 0; h < t.heads; ++h) {
      const MatrixView<const T> m = t.head(b, h);
      if (const index_t r = first_nonfinite_row(m); r < m.rows)
        throw Error(ErrorKind::bad_input, std::string(name) + ": batch " + std::to_string(b) + ", head " +
                                              std::to_string(h) + ", row " + std::to_string(r) +
                                              " holds a NaN or an infinity");
    }
}

template <class Q, class KV>
void explain_nonfinite(HeadsView<const Q> queries, HeadsView<const KV> keys, HeadsView<const KV> values) {
  check_finite("queries", queries);
  check_finite("keys", keys);
  check_finite("values", values);
  throw Error(ErrorKind::bad_input,
              "attention: the scaled scores c·<q,k> or the outputs overflow float32 "
              "(inputs too large for softmax at this scale)");
}

template void check_finite(const char*, ConstHeadsF);
template void check_finite(const char*, ConstHeadsF16);
template void check_finite(const char*, ConstHeadsBF16);
template void explain_nonfinite(ConstHeadsF, ConstHeadsF, ConstHeadsF);
template void explain_nonfinite(ConstHeadsF16, ConstHeadsF16, ConstHeadsF16);
template void explain_nonfinite(ConstHeadsBF16, ConstHeadsBF16, ConstHeadsBF16);
template void explain_nonfinite(ConstHeadsF, ConstHeadsF16, ConstHeadsF16);
template void explain_nonfinite(ConstHeadsF, ConstHeadsBF16, ConstHeadsBF16);

}  // namespace levattn::detail
