// Turns "the attention came out non-finite" into an error that names its cause.
#pragma once

#include "levattn/core/heads_view.hpp"

namespace levattn::detail {

// Throws Error{bad_input} "<name>: batch b, head h, row r holds a NaN or an infinity" for the
// first such row of t.
void check_finite(const char* name, ConstHeadsF t);

// Throws Error{bad_input} naming the first input (tensor, batch, head, row) that holds a NaN or
// an infinity, or, when every input is finite, saying that the scores overflowed float32.
// Never returns.
[[noreturn]] void explain_nonfinite(ConstHeadsF queries, ConstHeadsF keys, ConstHeadsF values);

}  // namespace levattn::detail
