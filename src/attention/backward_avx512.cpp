// The attention backward's element-wise pass and block products compiled for AVX-512 (this file
// alone gets the AVX-512 flags; it runs only after the run-time CPU check). The products use
// Eigen's float GEMM compiled here for AVX-512; -fno-weak (src/CMakeLists.txt) keeps that code, and
// every other inline function this file compiles, private to it, so no portable caller elsewhere
// can be linked to it (tests/simd_symbols.cmake).
#define EIGEN_DONT_PARALLELIZE  // one block product per call, on the calling thread
#include <Eigen/Core>

#define FLASH_NAMESPACE backward_avx512_build
#include "attention/backward_tile.hpp"

namespace levattn::detail {

namespace {

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstView = Eigen::Map<const RowMajor, 0, Eigen::OuterStride<>>;
using View = Eigen::Map<RowMajor, 0, Eigen::OuterStride<>>;

ConstView view(ConstMatrixF m) { return ConstView(m.data, m.rows, m.cols, Eigen::OuterStride<>(m.stride)); }

template <class A, class B>
void product(const A& a, const B& b, bool accumulate, View& c) {
  if (accumulate)
    c.noalias() += a * b;
  else
    c.noalias() = a * b;
}

void eigen_gemm(bool transpose_a, bool transpose_b, ConstMatrixF a, ConstMatrixF b, bool accumulate, MatrixF c) {
  const index_t m = transpose_a ? a.cols : a.rows, k = transpose_a ? a.rows : a.cols;
  const index_t kb = transpose_b ? b.cols : b.rows, n = transpose_b ? b.rows : b.cols;
  if (k != kb || c.rows != m || c.cols != n) throw Error(ErrorKind::bad_input, "block product: shapes do not match");
  View out(c.data, c.rows, c.cols, Eigen::OuterStride<>(c.stride));
  const ConstView A = view(a), B = view(b);
  if (transpose_a && transpose_b)
    product(A.transpose(), B.transpose(), accumulate, out);
  else if (transpose_a)
    product(A.transpose(), B, accumulate, out);
  else if (transpose_b)
    product(A, B.transpose(), accumulate, out);
  else
    product(A, B, accumulate, out);
}

}  // namespace

const BackwardKernels& avx512_backward_kernels() {
  static const BackwardKernels set{"avx512", backward_avx512_build::backward_block, eigen_gemm};
  return set;
}

}  // namespace levattn::detail
