// One checked entry to OpenBLAS's float GEMM over views: shapes are compared and every dimension
// and stride is checked to fit BLAS's int before the call (no silent narrowing).
#pragma once

#include "levattn/core/matrix_view.hpp"

namespace levattn::linalg {

// C = alpha·op(A)·op(B) + beta·C with op(X) = Xᵀ when its flag is set. Throws Error{failure} if a
// dimension or stride exceeds int, Error{bad_input} on mismatched shapes. C may not alias A or B.
// Inside an OpenMP parallel region OpenBLAS (its OpenMP build) runs the call on the calling thread.
void sgemm(bool transpose_a, bool transpose_b, float alpha, ConstMatrixF a, ConstMatrixF b, float beta,
           MatrixF c);

}  // namespace levattn::linalg
