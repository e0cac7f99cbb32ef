// Turns "the attention came out non-finite" into an error that names its cause.
#pragma once

#include "levattn/core/heads_view.hpp"

namespace levattn::detail {

// Throws Error{bad_input} "<name>: batch b, head h, row r holds a NaN or an infinity" for the
// first such row of t (float, Half or BFloat16 elements).
template <class T>
void check_finite(const char* name, HeadsView<const T> t);

// Throws Error{bad_input} naming the first input (tensor, batch, head, row) that holds a NaN or
// an infinity, or, when every input is finite, saying that the scores overflowed float32.
// Never returns. Instantiated for the element types attend_exact accepts.
template <class Q, class KV>
[[noreturn]] void explain_nonfinite(HeadsView<const Q> queries, HeadsView<const KV> keys, HeadsView<const KV> values);

}  // namespace levattn::detail
