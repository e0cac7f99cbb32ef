// LevAttention: select by leverage score per key head, gather, attend (see lev_attention.hpp).
#include "levattn/attention/lev_attention.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>

#include "attention/gather_rows.hpp"
#include "attention/masked_attention.hpp"
#include "attention/prefix_normalisers.hpp"
#include "levattn/scores/lewis.hpp"
#include "levattn/select/universal_set.hpp"

namespace levattn {

namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void check_select(const LevSelectOptions& o) {
  require((o.top_k > 0) != (o.eps > 0.0), "LevAttention: give exactly one of a budget (top-k ≥ 1) and a threshold ε");
  require(o.top_k >= 0, "LevAttention: top-k must be at least 1");
  if (o.eps > 0.0) check_eps(o.eps);
  require(o.sinks >= 0 && o.window >= 0, "LevAttention: sinks and window must be ≥ 0");
}

// U ∪ [0, sinks) from one score per key; `total` (the scores' sum) bounds |U|·ε.
std::vector<index_t> kept_keys(const std::vector<double>& scores, double total, const LevSelectOptions& options) {
  const index_t n = static_cast<index_t>(scores.size());
  const UniversalSet u = options.top_k > 0 ? select_top_k(scores.data(), n, options.top_k)
                                           : select_by_threshold(scores.data(), n, options.eps, total);
  std::vector<index_t> kept;
  const index_t sinks = std::min(options.sinks, n);
  kept.reserve(u.indices.size() + static_cast<size_t>(sinks));
  for (index_t j = 0; j < sinks; ++j) kept.push_back(j);
  for (index_t j : u.indices)
    if (j >= sinks) kept.push_back(j);
  return kept;
}

template <class T>
void check_budget(MatrixView<const T> keys, const LevSelectOptions& options) {
  require(keys.rows >= 1, "LevAttention: no keys to select from");
  require(options.top_k <= keys.rows, "LevAttention: top-k = " + std::to_string(options.top_k) +
                                          " exceeds the number of keys n = " + std::to_string(keys.rows));
}

template <class T>
std::vector<index_t> select_by_leverage(MatrixView<const T> keys, const LevSelectOptions& options) {
  check_select(options);
  check_budget(keys, options);
  LeverageScorer scorer(keys.cols, options.leverage);
  scorer.fit(keys);
  return kept_keys(scorer.scores(keys), static_cast<double>(scorer.rank()), options);
}

// attend_lev over queries of element type TQ and keys and values of type TKV (the pairs attend_exact
// reads): scores, normalisers and attention read the elements as they are stored; only the kept
// rows are gathered, in their own type.
template <class TQ, class TKV>
LevAttentionReport attend_lev_typed(HeadsView<const TQ> queries, HeadsView<const TKV> keys, HeadsView<const TKV> values,
                                    const AttentionOptions& attention, const LevSelectOptions& select, HeadsF out) {
  check_select(select);
  const bool power = attention.f.kind == ScoreKind::power;
  const bool lewis = power && attention.f.p != 2.0;  // ranked by ℓP Lewis sensitivities
  require(!lewis || !attention.causal,
          "LevAttention with pow:P, P ≠ 2, cannot be causal: its normaliser covers every key, not a prefix");
  require(!lewis || select.leverage.ridge == 0.0, "LevAttention: a ridge applies to leverage scores (softmax, pow:2)");
  require(select.window == 0 || attention.causal, "LevAttention: a window needs the causal mask");
  require(keys.batch == queries.batch && keys.heads > 0 && queries.heads % keys.heads == 0,
          "attention: query heads must be a multiple of key heads, with equal batch sizes");
  require(values.batch == keys.batch && values.heads == keys.heads && values.rows == keys.rows,
          "attention: values must have one row per key and as many heads as keys");
  require(
      out.batch == queries.batch && out.heads == queries.heads && out.rows == queries.rows && out.cols == values.cols,
      "attention: out must have shape (batch, query heads, n_q, d_v)");
  require(keys.cols == queries.cols, "attention: queries and keys must have the same width d");

  LevAttentionReport report;
  report.window = select.window;
  const index_t group = queries.heads / keys.heads, n_q = queries.rows, n_k = keys.rows;
  const index_t offset = n_k - n_q;
  const double c = effective_scale(attention, queries.cols);
  if (power) report.missing_mass.assign(static_cast<size_t>(queries.count() * n_q), 0.0);
  std::vector<double> lse(static_cast<size_t>(n_q)), lse2, normaliser(static_cast<size_t>(group * n_q)),
      log_total(static_cast<size_t>(n_q));
  std::vector<float> window_out;

  for (index_t b = 0; b < keys.batch; ++b)
    for (index_t kh = 0; kh < keys.heads; ++kh) {
      const MatrixView<const TKV> K = keys.head(b, kh), V = values.head(b, kh);
      auto start = std::chrono::steady_clock::now();
      check_budget(K, select);
      LeverageScorer scorer(K.cols, select.leverage);
      std::unique_ptr<PowerNormaliser> power_normaliser;
      std::vector<index_t> kept;
      if (!lewis) {
        scorer.fit(K);
        kept = kept_keys(scorer.scores(K), static_cast<double>(scorer.rank()), select);
      } else {
        LewisOptions lo;
        lo.rcond = select.leverage.rcond;
        const std::vector<double> s = lewis_weights(K, attention.f.p, lo).sensitivities();
        kept = kept_keys(s, std::accumulate(s.begin(), s.end(), 0.0), select);
        PowerNormaliserOptions po = select.power;  // one sample per head: seed + head number
        po.seed += static_cast<std::uint64_t>(b * keys.heads + kh);
        power_normaliser = std::make_unique<PowerNormaliser>(K, attention.f.p, s, po);
        if (!power_normaliser->exact()) {
          report.normaliser_estimated = true;
          report.normaliser_delta = power_normaliser->delta();
          report.normaliser_failure = power_normaliser->failure();
        }
      }
      report.kept.push_back(static_cast<index_t>(kept.size()));
      report.select_seconds += seconds_since(start);

      start = std::chrono::steady_clock::now();
      const std::vector<TKV> Kg = detail::gather_rows(K, kept), Vg = detail::gather_rows(V, kept);
      const index_t m = static_cast<index_t>(kept.size());
      const HeadsView<const TKV> kept_keys_view(Kg.data(), 1, 1, m, K.cols), kept_values(Vg.data(), 1, 1, m, V.cols);
      if (power && !lewis && attention.causal) {  // the group's prefix normalisers: one pass over the keys
        const HeadsView<const TQ> group_queries(queries.head(b, kh * group).data, 1, group, n_q, queries.cols);
        detail::prefix_normalisers(group_queries, K, offset, normaliser.data());
      }
      for (index_t h = kh * group; h < (kh + 1) * group; ++h) {
        const MatrixView<const TQ> Q = queries.head(b, h);
        const MatrixF O = out.head(b, h);
        detail::KeyMask mask;
        mask.positions = kept.data();
        mask.upper = attention.causal;
        mask.hi_offset = offset - select.window;  // the window's keys come from the second pass
        AttentionOptions plain = attention;
        plain.causal = false;
        detail::attend_masked_typed(HeadsView<const TQ>(Q), kept_keys_view, kept_values, plain, mask, HeadsF(O),
                                    lse.data());
        if (select.window > 0) {  // keys (i + offset − window, i + offset], all of them
          detail::KeyMask band;
          band.upper = band.lower = true;
          band.hi_offset = offset;
          band.lo_offset = offset - select.window + 1;
          window_out.resize(static_cast<size_t>(n_q * V.cols));
          lse2.resize(static_cast<size_t>(n_q));
          const MatrixF W(window_out.data(), n_q, V.cols);
          detail::attend_masked_typed(HeadsView<const TQ>(Q), HeadsView<const TKV>(K), HeadsView<const TKV>(V), plain,
                                      band, HeadsF(W), lse2.data());
          merge_attention(O, lse.data(), W, lse2.data());
        }
        if (!power) continue;
        // Rescale from "normalised over the kept keys" to "normalised over all visible keys":
        // log_total[i] = ln Σ_{visible} |c·<q_i,k_j>|^P (estimated for a sampled normaliser).
        if (lewis) {
          power_normaliser->log_normalisers(Q, log_total.data());
          for (double& t : log_total) t += attention.f.p * std::log(std::abs(c));
        } else {
          double* head_normaliser = normaliser.data() + (attention.causal ? (h - kh * group) * n_q : 0);
          if (!attention.causal) scorer.normalisers(Q, head_normaliser);
          for (index_t i = 0; i < n_q; ++i)
            log_total[i] = head_normaliser[i] > 0.0 ? std::log(c * c * head_normaliser[i]) : -kInfinity;
        }
        double* missing = report.missing_mass.data() + (b * queries.heads + h) * n_q;
        for (index_t i = 0; i < n_q; ++i) {
          const bool some = log_total[i] > -kInfinity;
          const double kept_mass = some ? std::exp(lse[i] - log_total[i]) : 0.0;
          missing[i] = some ? std::max(0.0, 1.0 - kept_mass) : 0.0;
          const float factor = static_cast<float>(kept_mass);
          for (index_t col = 0; col < O.cols; ++col) O(i, col) *= factor;
        }
      }
      report.attend_seconds += seconds_since(start);
      report.kept_keys.push_back(std::move(kept));
    }
  return report;
}

}  // namespace

std::vector<index_t> lev_select(ConstMatrixF keys, const LevSelectOptions& options) {
  return select_by_leverage(keys, options);
}
std::vector<index_t> lev_select(MatrixView<const Half> keys, const LevSelectOptions& options) {
  return select_by_leverage(keys, options);
}
std::vector<index_t> lev_select(MatrixView<const BFloat16> keys, const LevSelectOptions& options) {
  return select_by_leverage(keys, options);
}

LevAttentionReport attend_lev(ConstHeadsF queries, ConstHeadsF keys, ConstHeadsF values,
                              const AttentionOptions& attention, const LevSelectOptions& select, HeadsF out) {
  return attend_lev_typed(queries, keys, values, attention, select, out);
}
LevAttentionReport attend_lev(ConstHeadsF16 queries, ConstHeadsF16 keys, ConstHeadsF16 values,
                              const AttentionOptions& attention, const LevSelectOptions& select, HeadsF out) {
  return attend_lev_typed(queries, keys, values, attention, select, out);
}
LevAttentionReport attend_lev(ConstHeadsBF16 queries, ConstHeadsBF16 keys, ConstHeadsBF16 values,
                              const AttentionOptions& attention, const LevSelectOptions& select, HeadsF out) {
  return attend_lev_typed(queries, keys, values, attention, select, out);
}
LevAttentionReport attend_lev(ConstHeadsF queries, ConstHeadsF16 keys, ConstHeadsF16 values,
                              const AttentionOptions& attention, const LevSelectOptions& select, HeadsF out) {
  return attend_lev_typed(queries, keys, values, attention, select, out);
}
LevAttentionReport attend_lev(ConstHeadsF queries, ConstHeadsBF16 keys, ConstHeadsBF16 values,
                              const AttentionOptions& attention, const LevSelectOptions& select, HeadsF out) {
  return attend_lev_typed(queries, keys, values, attention, select, out);
}

}  // namespace levattn
