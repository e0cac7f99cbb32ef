// Gradients of LevAttention with the selection held fixed (see lev_attention.hpp): the exact
// backward over the gathered kept keys (softmax) or over every key with the others' values at 0
// (pow:2, whose normaliser covers every key).
#include <algorithm>
#include <vector>

#include "attention/backward_kernel.hpp"
#include "attention/gather_rows.hpp"
#include "levattn/attention/backward.hpp"
#include "levattn/attention/lev_attention.hpp"

namespace levattn {

namespace {

void check_kept(const LevAttentionReport& report, ConstHeadsF keys) {
  require(static_cast<index_t>(report.kept_keys.size()) == keys.count(),
          "LevAttention backward: the report's kept keys do not match the key heads");
  for (const std::vector<index_t>& kept : report.kept_keys)
    for (size_t t = 0; t < kept.size(); ++t)
      require(kept[t] >= 0 && kept[t] < keys.rows && (t == 0 || kept[t] > kept[t - 1]),
              "LevAttention backward: the report's kept keys must be ascending indices of keys");
}

}  // namespace

void attend_lev_backward(ConstHeadsF queries, ConstHeadsF keys, ConstHeadsF values, ConstHeadsF out,
                         ConstHeadsF grad_out, const AttentionOptions& attention, const LevAttentionReport& report,
                         HeadsF grad_queries, HeadsF grad_keys, HeadsF grad_values) {
  require(!attention.causal, "LevAttention backward: the causal operator is not supported yet");
  const bool power = attention.f.kind == ScoreKind::power;
  require(!power || attention.f.p == 2.0,
          "LevAttention backward: pow:P with P ≠ 2 is normalised by an estimate and has no gradient here");
  detail::check_backward_shapes(queries, keys, values, out, grad_out, grad_queries, grad_keys, grad_values);
  check_kept(report, keys);
  const index_t group = queries.heads / keys.heads, n_q = queries.rows, n_k = keys.rows, d = keys.cols,
                dv = values.cols;
  std::vector<double> lse(static_cast<size_t>(group * n_q));
  std::vector<float> scratch_out(static_cast<size_t>(group * n_q * dv));
  for (index_t b = 0; b < keys.batch; ++b)
    for (index_t kh = 0; kh < keys.heads; ++kh) {
      const std::vector<index_t>& kept = report.kept_keys[static_cast<size_t>(b * keys.heads + kh)];
      const ConstMatrixF K = keys.head(b, kh), V = values.head(b, kh);
      const index_t first_q = (b * queries.heads + kh * group) * n_q;  // this group's query heads, densely
      const ConstHeadsF Q(queries.data + first_q * d, 1, group, n_q, d), O(out.data + first_q * dv, 1, group, n_q, dv),
          dO(grad_out.data + first_q * dv, 1, group, n_q, dv);
      const HeadsF dQ(grad_queries.data + first_q * d, 1, group, n_q, d);
      const MatrixF dK = grad_keys.head(b, kh), dV = grad_values.head(b, kh);
      const HeadsF L_out(scratch_out.data(), 1, group, n_q, dv);
      if (!power) {  // softmax over the kept keys: exact attention over them
        const index_t m = static_cast<index_t>(kept.size());
        const std::vector<float> Kg = detail::gather_rows(K, kept), Vg = detail::gather_rows(V, kept);
        std::vector<float> dKg(Kg.size()), dVg(Vg.size());
        const ConstHeadsF Kh(Kg.data(), 1, 1, m, d), Vh(Vg.data(), 1, 1, m, dv);
        attend_exact(Q, Kh, Vh, attention, L_out, lse.data());  // the log normalisers over the kept keys
        attend_exact_backward(Q, Kh, Vh, O, lse.data(), dO, attention, dQ, HeadsF(dKg.data(), 1, 1, m, d),
                              HeadsF(dVg.data(), 1, 1, m, dv));
        std::fill(dK.data, dK.data + n_k * d, 0.0f);
        std::fill(dV.data, dV.data + n_k * dv, 0.0f);
        for (index_t t = 0; t < m; ++t) {
          std::copy_n(dKg.data() + t * d, d, dK.row(kept[t]));
          std::copy_n(dVg.data() + t * dv, dv, dV.row(kept[t]));
        }
        continue;
      }
      // |x|²: every key through the full normaliser; the keys not kept carry zero values.
      std::vector<float> Vk(static_cast<size_t>(n_k * dv), 0.0f);
      for (index_t j : kept) std::copy_n(V.row(j), dv, Vk.data() + j * dv);
      const ConstHeadsF Kh(K.data, 1, 1, n_k, d), Vh(Vk.data(), 1, 1, n_k, dv);
      attend_exact(Q, Kh, ConstHeadsF(V.data, 1, 1, n_k, dv), attention, L_out, lse.data());  // ln Σ_l all keys
      attend_exact_backward(Q, Kh, Vh, O, lse.data(), dO, attention, dQ, HeadsF(dK.data, 1, 1, n_k, d),
                            HeadsF(dV.data, 1, 1, n_k, dv));
      std::vector<char> is_kept(static_cast<size_t>(n_k), 0);
      for (index_t j : kept) is_kept[j] = 1;
      for (index_t j = 0; j < n_k; ++j)
        if (!is_kept[j]) std::fill(dV.row(j), dV.row(j) + dv, 0.0f);
    }
}

}  // namespace levattn
