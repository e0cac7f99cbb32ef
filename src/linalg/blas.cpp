#include "linalg/blas.hpp"

#include <cblas.h>

#include <climits>
#include <string>

namespace levattn::linalg {

namespace {
int to_int(index_t x, const char* what) {
  if (x < 0 || x > INT_MAX) throw Error(ErrorKind::failure, std::string("sgemm: ") + what + " exceeds BLAS's int");
  return static_cast<int>(x);
}
}  // namespace

void sgemm(bool transpose_a, bool transpose_b, float alpha, ConstMatrixF a, ConstMatrixF b, float beta,
           MatrixF c) {
  const index_t m = transpose_a ? a.cols : a.rows, k = transpose_a ? a.rows : a.cols;
  const index_t kb = transpose_b ? b.cols : b.rows, n = transpose_b ? b.rows : b.cols;
  if (k != kb || c.rows != m || c.cols != n)
    throw Error(ErrorKind::bad_input, "sgemm: shapes do not match");
  if (m == 0 || n == 0) return;
  if (k == 0) {  // C = beta·C
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) c(i, j) = beta == 0.0f ? 0.0f : beta * c(i, j);
    return;
  }
  cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans,
              to_int(m, "rows"), to_int(n, "columns"), to_int(k, "inner dimension"), alpha, a.data,
              to_int(a.stride, "a stride"), b.data, to_int(b.stride, "b stride"), beta, c.data,
              to_int(c.stride, "c stride"));
}

}  // namespace levattn::linalg
