// Factors of a Gram matrix G = KᵀK that turn leverage scores and attention normalisers into
// sums of squares: kᵀ G⁺ k = ‖T k‖² and qᵀ G q = ‖F q‖², with T and F upper trapezoidal.
//
// How: G is first equilibrated, G̃ = D^{-1/2} G D^{-1/2} with D = diag(G), so that scaling the
// columns of K (which leaves leverage scores unchanged) cannot change the result or the rank;
// then G̃ = V Λ Vᵀ in double. An eigenvalue is cut — treated as zero — when
// λ_i ≤ rcond² · λ_max, i.e. when its singular value of the equilibrated K (columns scaled to
// unit norm) is at most rcond times the largest one. The default rcond = 2⁻²¹ ≈ 4.8e-7 sits 8×
// above the float32 rounding of K (2⁻²⁴) and 2× below 1/cond for cond = 1e6. Equilibration
// lowers cond(K) in practice but can raise it by up to √d, so keys with cond(K) near 1e6 may
// lose a direction; pass a smaller rcond for them. With a ridge the same cut applies to
// D_λ^{-1/2}(G + λI)D_λ^{-1/2}, equilibrated by its own diagonal D_λ = diag(G) + λI. The
// numerical rank is the number of kept eigenvalues, and on the fitted keys Σ_j kⱼᵀ G⁺ kⱼ equals it.
#pragma once

#include <vector>

#include "levattn/core/half.hpp"
#include "levattn/core/matrix_view.hpp"

namespace levattn {

// The default relative singular-value cut-off, 2⁻²¹.
constexpr double kDefaultRcond = 1.0 / (1 << 21);

// A matrix T (rows × d) with T[i][c] = 0 for c < i, kept in the layout the kernels read, that
// answers ‖T x‖² for many x at once.
class TrapezoidalForm {
 public:
  TrapezoidalForm() = default;
  // From T given dense row-major (rows × d); entries below the trapezoid are ignored.
  TrapezoidalForm(const std::vector<double>& T, index_t rows, index_t d);

  index_t rows() const { return rows_; }
  index_t dim() const { return d_; }
  // T itself, rows × d row-major (zeros below the trapezoid).
  std::vector<double> dense() const;

  // out[r] = ‖T x_r‖² in double for every row x_r of X (X.cols == d), parallel over rows.
  // Throws Error{bad_input} "<what>: row r holds a NaN or an infinity" on non-finite input.
  void sum_squares(ConstMatrixF X, double* out, const char* what) const;
  // The same for 16-bit rows, widened a block at a time to float (exactly): the bits equal those
  // of sum_squares on the widened rows.
  void sum_squares(MatrixView<const Half> X, double* out, const char* what) const;
  void sum_squares(MatrixView<const BFloat16> X, double* out, const char* what) const;

  // The same with T x_r formed in float32 (T rounded to float, fused multiply-adds) and ‖T x_r‖²
  // summed in double: about twice as fast, with a relative error of about d·2⁻²⁴·‖|T||x|‖/‖Tx‖
  // (≲ d·2⁻²⁴·√d·cond(T) for x in T's row space) instead of double rounding. Blocks whose float
  // result overflows are recomputed in double; errors as sum_squares.
  void sum_squares_float32(ConstMatrixF X, double* out, const char* what) const;
  // The same for 16-bit rows, widened a block at a time (bits as on the widened rows).
  void sum_squares_float32(MatrixView<const Half> X, double* out, const char* what) const;
  void sum_squares_float32(MatrixView<const BFloat16> X, double* out, const char* what) const;

 private:
  index_t rows_ = 0;
  index_t d_ = 0;
  std::vector<double> tt_;  // Tᵀ, padded_dim(d) × padded_dim(rows), zero padded
  std::vector<float> ttf_;  // 2^float_shift_·Tᵀ rounded to float, padded_dim(d) × padded_dim_float(rows)
  int float_shift_ = 0;     // makes ttf_'s largest entry lie in [0.5, 1)

  void check_shape(index_t cols, const char* what) const;
  // True (out filled) when T has no rows: every sum is zero once X is checked finite.
  template <class T>
  bool empty_form(MatrixView<const T> X, double* out, const char* what) const;
  template <class T>
  void sum_squares_rows(MatrixView<const T> X, double* out, const char* what) const;
  template <class T>
  void sum_squares_float32_rows(MatrixView<const T> X, double* out, const char* what) const;
};

struct GramFactors {
  index_t rank = 0;                 // eigenvalues kept
  std::vector<double> eigenvalues;  // of the equilibrated G̃ (with a ridge: of G + λI equilibrated
                                    // by its own diagonal), descending
  TrapezoidalForm inverse_root;     // ‖T k‖² = kᵀ (G + λI)⁺ k, cut-off applied
  TrapezoidalForm root;             // ‖F q‖² = qᵀ G q (every direction, no ridge)
  TrapezoidalForm cut_root;         // ‖F_c q‖² ≥ the part of qᵀ G q along cut directions: each
                                    // charged the cut level rcond²·λ_max (+ rounding)
};

// Factors G (d×d, row-major, symmetric PSD up to rounding) with ridge λ ≥ 0 and cut-off rcond
// in (0, 1). Costs O(d³).
GramFactors factor_gram(const std::vector<double>& G, index_t d, double ridge, double rcond);

}  // namespace levattn
