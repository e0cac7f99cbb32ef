// The regularised incomplete beta function I_x(a, b) — the CDF of Beta(a, b) — used to state
// the failure probability of a random orthogonal projection exactly.
#pragma once

namespace levattn::detail {

// I_x(a, b) for a, b > 0 and x ∈ [0, 1], to about 1e-14 (Lentz's continued fraction, DLMF 8.17.22).
double incomplete_beta(double a, double b, double x);

}  // namespace levattn::detail
