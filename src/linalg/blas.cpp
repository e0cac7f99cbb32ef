#include "linalg/blas.hpp"

#include <cblas.h>

#include <climits>
#include <string>

namespace levattn::linalg {

namespace {

int to_int(index_t x, const char* routine, const char* what) {
  if (x < 0 || x > INT_MAX) throw Error(ErrorKind::failure, std::string(routine) + ": " + what + " exceeds BLAS's int");
  return static_cast<int>(x);
}

CBLAS_TRANSPOSE op(bool transpose) { return transpose ? CblasTrans : CblasNoTrans; }

// C = beta·C over the columns [first(i), n) of each row i: the k = 0 case BLAS is not asked for.
template <class T, class First>
void scale_only(T beta, MatrixView<T> c, First first) {
  for (index_t i = 0; i < c.rows; ++i)
    for (index_t j = first(i); j < c.cols; ++j) c(i, j) = beta == T(0) ? T(0) : beta * c(i, j);
}

// The checks shared by sgemm and dgemm; calls blas(m, n, k, lda, ldb, ldc) when there is work.
template <class T, class Blas>
void checked_gemm(const char* routine, bool transpose_a, bool transpose_b, MatrixView<const T> a, MatrixView<const T> b,
                  T beta, MatrixView<T> c, Blas blas) {
  const index_t m = transpose_a ? a.cols : a.rows, k = transpose_a ? a.rows : a.cols;
  const index_t kb = transpose_b ? b.cols : b.rows, n = transpose_b ? b.rows : b.cols;
  if (k != kb || c.rows != m || c.cols != n)
    throw Error(ErrorKind::bad_input, std::string(routine) + ": shapes do not match: op(A) " + shape_string(m, k) +
                                          ", op(B) " + shape_string(kb, n) + ", C " + shape_string(c.rows, c.cols));
  if (m == 0 || n == 0) return;
  if (k == 0) {
    scale_only(beta, c, [](index_t) { return index_t{0}; });
    return;
  }
  blas(to_int(m, routine, "rows"), to_int(n, routine, "columns"), to_int(k, routine, "inner dimension"),
       to_int(a.stride, routine, "a stride"), to_int(b.stride, routine, "b stride"),
       to_int(c.stride, routine, "c stride"));
}

}  // namespace

void sgemm(bool transpose_a, bool transpose_b, float alpha, ConstMatrixF a, ConstMatrixF b, float beta, MatrixF c) {
  checked_gemm("sgemm", transpose_a, transpose_b, a, b, beta, c, [&](int m, int n, int k, int lda, int ldb, int ldc) {
    cblas_sgemm(CblasRowMajor, op(transpose_a), op(transpose_b), m, n, k, alpha, a.data, lda, b.data, ldb, beta, c.data,
                ldc);
  });
}

void dgemm(bool transpose_a, bool transpose_b, double alpha, ConstMatrixD a, ConstMatrixD b, double beta, MatrixD c) {
  checked_gemm("dgemm", transpose_a, transpose_b, a, b, beta, c, [&](int m, int n, int k, int lda, int ldb, int ldc) {
    cblas_dgemm(CblasRowMajor, op(transpose_a), op(transpose_b), m, n, k, alpha, a.data, lda, b.data, ldb, beta, c.data,
                ldc);
  });
}

void dsyrk_upper(bool transpose_a, double alpha, ConstMatrixD a, double beta, MatrixD c) {
  const index_t n = transpose_a ? a.cols : a.rows, k = transpose_a ? a.rows : a.cols;
  if (c.rows != n || c.cols != n)
    throw Error(ErrorKind::bad_input,
                "dsyrk: shapes do not match: op(A) " + shape_string(n, k) + ", C " + shape_string(c.rows, c.cols));
  if (n == 0) return;
  if (k == 0) {
    scale_only(beta, c, [](index_t i) { return i; });
    return;
  }
  cblas_dsyrk(CblasRowMajor, CblasUpper, op(transpose_a), to_int(n, "dsyrk", "order"), to_int(k, "dsyrk", "rank"),
              alpha, a.data, to_int(a.stride, "dsyrk", "a stride"), beta, c.data,
              to_int(c.stride, "dsyrk", "c stride"));
}

}  // namespace levattn::linalg
