// Anderson acceleration ("type II", Walker & Ni 2011) of a fixed-point iteration x ← g(x) in
// log-weight space. Given the last iterates x_i and their residuals f_i = g(x_i) − x_i, it proposes
//     x⁺ = x_k + β·f_k − (ΔX + β·ΔF)·γ,   γ = argmin ‖f_k − ΔF·γ‖₂,
// where the columns of ΔX, ΔF are the differences of consecutive recorded iterates and residuals.
// With no history (one recorded iterate) this is the plain mixed step x_k + β·f_k. The proposal
// carries no guarantee by itself: the caller evaluates it and keeps it only if it lowers the
// residual enough (lewis.cpp).
//
// Entries equal to −∞ (zero weights) in x_k or g(x_k) take no part: their proposal is −∞, as the
// plain step's would be. Every reduction runs over fixed blocks summed in a fixed order, so the
// proposal never depends on the thread count.
#pragma once

#include <cstddef>
#include <vector>

namespace levattn::detail {

class AndersonMixing {
 public:
  // depth ≥ 1: differences kept (the least-squares problem has at most `depth` columns).
  AndersonMixing(std::size_t depth, double beta);

  // Forgets every recorded iterate.
  void clear();

  // Records the iterate x and g(x) (same length as earlier records, or clear() first). If an entry
  // became inactive since the last record, the differences are forgotten.
  void record(const std::vector<double>& x, const std::vector<double>& gx);

  // Differences recorded so far (0 after clear() or the first record()).
  std::size_t history() const { return dx_.size(); }

  // Writes the proposal from the last record into `next`. Columns whose least-squares problem is
  // numerically singular are dropped, oldest first. Requires at least one record.
  void propose(std::vector<double>& next) const;

 private:
  std::size_t depth_;
  double beta_;
  std::vector<double> x_, f_;                 // last iterate and residual (0 where inactive)
  std::vector<unsigned char> active_;         // 1 where x_j and g(x_j) are both finite
  std::vector<std::vector<double>> dx_, df_;  // oldest first
};

}  // namespace levattn::detail
