// Gradients of LevAttention with the selection held fixed (see lev_attention.hpp). The operator is
// one attention whose keys come in two disjoint parts sharing the normaliser and the output:
//  A. the kept keys outside the window — softmax: the gathered kept keys at their positions;
//     pow:2: every key, the others with value 0 (their entries still count in the normaliser);
//     causal: those at positions ≤ i + offset − window;
//  B. causal with a window: every key at (i + offset − window, i + offset].
// Each part's masked backward, given the whole operator's log normaliser and output, is that
// part's share of dQ, dK and dV (attend_masked_backward); the gradients are the sums.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention/backward_kernel.hpp"
#include "attention/gather_rows.hpp"
#include "attention/masked_attention.hpp"
#include "attention/prefix_normalisers.hpp"
#include "levattn/attention/backward.hpp"
#include "levattn/attention/lev_attention.hpp"

namespace levattn {

namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

void check_kept(const LevAttentionReport& report, ConstHeadsF keys) {
  require(static_cast<index_t>(report.kept_keys.size()) == keys.count(),
          "LevAttention backward: the report's kept keys do not match the key heads");
  for (const std::vector<index_t>& kept : report.kept_keys)
    for (size_t t = 0; t < kept.size(); ++t)
      require(kept[t] >= 0 && kept[t] < keys.rows && (t == 0 || kept[t] > kept[t - 1]),
              "LevAttention backward: the report's kept keys must be ascending indices of keys");
}

// ln(e^a + e^b), −∞ when both are.
double log_add(double a, double b) {
  const double hi = std::max(a, b), lo = std::min(a, b);
  if (hi == -kInfinity) return -kInfinity;
  return hi + std::log1p(std::exp(lo - hi));
}

void add_to(float* target, const std::vector<float>& part) {
  for (size_t t = 0; t < part.size(); ++t) target[t] += part[t];
}

}  // namespace

void attend_lev_backward(ConstHeadsF queries, ConstHeadsF keys, ConstHeadsF values, ConstHeadsF out,
                         ConstHeadsF grad_out, const AttentionOptions& attention, const LevAttentionReport& report,
                         HeadsF grad_queries, HeadsF grad_keys, HeadsF grad_values) {
  const bool power = attention.f.kind == ScoreKind::power;
  require(!power || attention.f.p == 2.0,
          "LevAttention backward: pow:P with P ≠ 2 is normalised by an estimate and has no gradient here");
  require(report.window >= 0, "LevAttention backward: the report's window must be ≥ 0");
  require(report.window == 0 || attention.causal, "LevAttention backward: a window needs the causal mask");
  detail::check_backward_shapes(queries, keys, values, out, grad_out, grad_queries, grad_keys, grad_values);
  check_kept(report, keys);
  const index_t group = queries.heads / keys.heads, n_q = queries.rows, n_k = keys.rows, d = keys.cols,
                dv = values.cols, offset = n_k - n_q, window = report.window;
  const double c = effective_scale(attention, d);
  AttentionOptions plain = attention;  // the masks below say what each query sees
  plain.causal = false;
  detail::KeyMask kept_part;  // A; softmax sets its positions per head
  kept_part.upper = attention.causal;
  kept_part.hi_offset = offset - window;
  detail::KeyMask window_part;  // B
  window_part.upper = window_part.lower = true;
  window_part.hi_offset = offset;
  window_part.lo_offset = offset - window + 1;

  std::vector<double> lse(static_cast<size_t>(group * n_q)), lse_window, normaliser(lse.size());
  std::vector<float> scratch_out(static_cast<size_t>(group * n_q * dv));
  std::vector<float> dQ_window, dK_window, dV_window;
  if (window > 0) {
    lse_window.resize(lse.size());
    dQ_window.resize(static_cast<size_t>(group * n_q * d));
    dK_window.resize(static_cast<size_t>(n_k * d));
    dV_window.resize(static_cast<size_t>(n_k * dv));
  }
  for (index_t b = 0; b < keys.batch; ++b)
    for (index_t kh = 0; kh < keys.heads; ++kh) {
      const std::vector<index_t>& kept = report.kept_keys[static_cast<size_t>(b * keys.heads + kh)];
      const ConstMatrixF K = keys.head(b, kh), V = values.head(b, kh);
      const index_t first_q = (b * queries.heads + kh * group) * n_q;  // this group's query heads, densely
      const ConstHeadsF Q(queries.data + first_q * d, 1, group, n_q, d), O(out.data + first_q * dv, 1, group, n_q, dv),
          dO(grad_out.data + first_q * dv, 1, group, n_q, dv);
      const HeadsF dQ(grad_queries.data + first_q * d, 1, group, n_q, d);
      const MatrixF dK = grad_keys.head(b, kh), dV = grad_values.head(b, kh);
      const ConstHeadsF K_all(K.data, 1, 1, n_k, d), V_all(V.data, 1, 1, n_k, dv);
      const HeadsF scratch(scratch_out.data(), 1, group, n_q, dv);

      if (!power) {  // softmax over A ∪ B: L from both parts' forwards; A over the gathered keys
        const index_t m = static_cast<index_t>(kept.size());
        const std::vector<float> Kg = detail::gather_rows(K, kept), Vg = detail::gather_rows(V, kept);
        std::vector<float> dKg(Kg.size()), dVg(Vg.size());
        const ConstHeadsF Kh(Kg.data(), 1, 1, m, d), Vh(Vg.data(), 1, 1, m, dv);
        detail::KeyMask mask = kept_part;
        mask.positions = kept.data();
        detail::attend_masked(Q, Kh, Vh, plain, mask, scratch, lse.data());
        if (window > 0) {
          detail::attend_masked(Q, K_all, V_all, plain, window_part, scratch, lse_window.data());
          for (size_t r = 0; r < lse.size(); ++r) lse[r] = log_add(lse[r], lse_window[r]);
        }
        detail::attend_masked_backward(Q, Kh, Vh, O, lse.data(), dO, plain, mask, dQ, HeadsF(dKg.data(), 1, 1, m, d),
                                       HeadsF(dVg.data(), 1, 1, m, dv));
        std::fill(dK.data, dK.data + n_k * d, 0.0f);
        std::fill(dV.data, dV.data + n_k * dv, 0.0f);
        for (index_t t = 0; t < m; ++t) {
          std::copy_n(dKg.data() + t * d, d, dK.row(kept[t]));
          std::copy_n(dVg.data() + t * dv, dv, dV.row(kept[t]));
        }
      } else {  // |x|²: L = ln c²·Σ_{visible l} <q,k_l>² over every key the mask lets the query see
        detail::prefix_normalisers(Q, K, attention.causal ? offset : n_k, normaliser.data());
        for (index_t r = 0; r < group * n_q; ++r)
          lse[r] = normaliser[r] > 0.0 ? std::log(c * c * normaliser[r]) : -kInfinity;
        std::vector<float> V_kept(static_cast<size_t>(n_k * dv), 0.0f);
        for (index_t j : kept) std::copy_n(V.row(j), dv, V_kept.data() + j * dv);
        detail::attend_masked_backward(Q, K_all, ConstHeadsF(V_kept.data(), 1, 1, n_k, dv), O, lse.data(), dO, plain,
                                       kept_part, dQ, HeadsF(dK.data, 1, 1, n_k, d), HeadsF(dV.data, 1, 1, n_k, dv));
        std::vector<char> is_kept(static_cast<size_t>(n_k), 0);
        for (index_t j : kept) is_kept[static_cast<size_t>(j)] = 1;
        for (index_t j = 0; j < n_k; ++j)
          if (!is_kept[static_cast<size_t>(j)]) std::fill(dV.row(j), dV.row(j) + dv, 0.0f);
      }
      if (window > 0) {  // B: every key of the window, with its own value
        detail::attend_masked_backward(Q, K_all, V_all, O, lse.data(), dO, plain, window_part,
                                       HeadsF(dQ_window.data(), 1, group, n_q, d),
                                       HeadsF(dK_window.data(), 1, 1, n_k, d), HeadsF(dV_window.data(), 1, 1, n_k, dv));
        add_to(dQ.data, dQ_window);
        add_to(dK.data, dK_window);
        add_to(dV.data, dV_window);
      }
    }
}

}  // namespace levattn
