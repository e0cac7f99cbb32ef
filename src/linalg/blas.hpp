// The one checked entry to OpenBLAS's GEMM and SYRK over views: shapes are compared and every
// dimension and stride is checked to fit BLAS's int before the call (no silent narrowing).
// Callers inside an OpenMP parallel region must catch the errors there (FirstError) — an exception
// may not cross the region's boundary. Inside such a region OpenBLAS (its OpenMP build) runs the
// call on the calling thread.
#pragma once

#include "levattn/core/matrix_view.hpp"

namespace levattn::linalg {

// C = alpha·op(A)·op(B) + beta·C with op(X) = Xᵀ when its flag is set; op(A) m×k, op(B) k×n, C m×n.
// With k = 0, C = beta·C (C = 0 when beta = 0). Throws Error{failure} if a dimension or stride
// exceeds int, Error{bad_input} on mismatched shapes. C may not alias A or B.
void sgemm(bool transpose_a, bool transpose_b, float alpha, ConstMatrixF a, ConstMatrixF b, float beta, MatrixF c);
// The same in double.
void dgemm(bool transpose_a, bool transpose_b, double alpha, ConstMatrixD a, ConstMatrixD b, double beta, MatrixD c);

// The upper triangle of C = alpha·op(A)·op(A)ᵀ + beta·C with op(A) = Aᵀ when transpose_a (so
// transpose_a with A k×n gives alpha·AᵀA); op(A) n×k, C n×n. The strictly lower triangle of C is
// left untouched. With k = 0 the upper triangle becomes beta·C. Errors as for sgemm.
void dsyrk_upper(bool transpose_a, double alpha, ConstMatrixD a, double beta, MatrixD c);

}  // namespace levattn::linalg
