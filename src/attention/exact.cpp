// Exact tiled attention with the online normaliser (see exact.hpp for the contract).
//
// A work unit is one head's tile of up to kLanes queries over one key segment; the inner loops
// (flash_tile.hpp) walk the segment in blocks of kKeyBlock keys with the queries held in vector
// lanes. A single query (decode) takes a one-lane path. Units run in parallel (OpenMP); when a
// call has too few tiles to feed the threads, keys are split into fixed segments whose partial
// results are merged in order afterwards, so the answer does not depend on the thread count.
// The driver is a template over the element types of the queries (Q) and of the keys and values
// (KV); the kernels take 16-bit blocks as they are.
#include "levattn/attention/exact.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "attention/finite_check.hpp"
#include "attention/flash_kernel.hpp"
#include "attention/masked_attention.hpp"
#include "core/first_error.hpp"
#include "linalg/scaled_rows.hpp"

namespace levattn {

namespace {

using detail::kKeyBlock;
using detail::kLanes;

constexpr index_t kSegmentKeys = 4096;  // keys per segment when keys are split
constexpr index_t kMinUnits = 16;       // below this many tiles in a call, split the keys
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// The shape of one call, shared by all its work units.
struct Plan {
  ScoreFunction f;
  double scale;  // c
  bool bf16_products;
  ElementType type;  // of keys and values
  detail::KeyMask mask;
  index_t n_q, n_k, d, dv;
  index_t segments;  // key segments per tile
  index_t segment_keys;
};

struct Scratch {
  std::vector<float> Qp, St, Ot, m, q1;  // q1: the one query of a decode unit, scaled, or a query row
  std::vector<double> l;
  std::vector<int> shift;                     // power: query v was multiplied by 2^-shift[v]
  std::vector<float> Kf, Vf;                  // widened blocks (16-bit inputs or emulated bf16 arithmetic)
  std::vector<std::uint32_t> Qb, Kb, Pb, Vb;  // pair-packed operands of the bf16 tile

  explicit Scratch(const Plan& plan)
      : Qp(static_cast<size_t>(plan.d * kLanes)),
        St(static_cast<size_t>(kKeyBlock * kLanes)),
        Ot(static_cast<size_t>(plan.dv * kLanes)),
        m(static_cast<size_t>(kLanes)),
        q1(static_cast<size_t>(plan.d)),
        l(static_cast<size_t>(kLanes)),
        shift(static_cast<size_t>(kLanes)) {
    if (plan.type != ElementType::f32 || plan.bf16_products) {
      Kf.resize(static_cast<size_t>(kKeyBlock * plan.d));
      Vf.resize(static_cast<size_t>(kKeyBlock * plan.dv));
    }
    if (plan.bf16_products) {
      const index_t pairs = (plan.d + 1) / 2;
      Qb.resize(static_cast<size_t>(pairs * kLanes));
      Kb.resize(static_cast<size_t>(kKeyBlock * pairs));
      Pb.resize(static_cast<size_t>(kKeyBlock / 2 * kLanes));
      Vb.resize(static_cast<size_t>(kKeyBlock / 2 * plan.dv));
    }
  }
};

// For |x|^p: the e with the largest key entry of a head in [2^(e-1), 2^e) (0 for all-zero keys), so
// that dividing by 2^e brings it near 1.
template <class KV>
int key_shift(MatrixView<const KV> keys) {
  return -linalg::pow2_shift(keys);
}

// Packs rows of q into lanes, multiplied by c (softmax) or by 2^-shift (power, so that every
// product is at most about d in magnitude whatever the inputs' scale). In bf16 arithmetic the
// queries are rounded to bf16 instead and c is applied to the scores.
template <class Q>
void pack_queries(const Plan& plan, MatrixView<const Q> q, int keys_shift, Scratch& sc) {
  std::fill(sc.Qp.begin(), sc.Qp.end(), 0.0f);
  float* row = sc.q1.data();
  for (index_t v = 0; v < q.rows; ++v) {
    for (index_t c = 0; c < plan.d; ++c) row[c] = to_float(q(v, c));
    if (plan.f.kind == ScoreKind::power) {  // the shift may exceed float's exponent range
      sc.shift[v] = -linalg::pow2_shift(row, plan.d) + keys_shift;
      for (index_t c = 0; c < plan.d; ++c) sc.Qp[c * kLanes + v] = std::ldexp(row[c], -sc.shift[v]);
    } else if (plan.bf16_products) {
      for (index_t c = 0; c < plan.d; ++c) sc.Qp[c * kLanes + v] = to_float(to_bfloat16(row[c]));
    } else {
      const float factor = static_cast<float>(plan.scale);
      for (index_t c = 0; c < plan.d; ++c) sc.Qp[c * kLanes + v] = row[c] * factor;
    }
  }
}

// log Σ_j f(c·s_j) of lane v from its running maximum and relative sum.
double log_normaliser(const Plan& plan, float m, double l, int shift) {
  if (plan.f.kind == ScoreKind::softmax) return static_cast<double>(m) + std::log(l);
  return plan.f.p * (std::log(static_cast<double>(m)) + shift * std::log(2.0) + std::log(plan.scale)) + std::log(l);
}

// Writes the normalised rows (out: rows × dv) from lanes; false if a sum or output is not finite.
bool finish_lanes(const Plan& plan, const float* Ot, index_t lanes, const float* m, const double* l, const int* shift,
                  index_t rows, MatrixF out, double* lse) {
  bool finite = true;
  for (index_t v = 0; v < rows; ++v) {
    float* o = out.row(v);
    if (!std::isfinite(l[v])) finite = false;
    if (!(l[v] > 0.0)) {
      std::fill(o, o + plan.dv, 0.0f);
      lse[v] = kNegInf;
      continue;
    }
    const float inv = static_cast<float>(1.0 / l[v]);
    for (index_t c = 0; c < plan.dv; ++c) {
      o[c] = Ot[c * lanes + v] * inv;
      finite &= std::isfinite(o[c]);
    }
    lse[v] = log_normaliser(plan, m[v], l[v], shift[v]);
  }
  return finite;
}

// Shrinks [k_begin, k_end) to the keys some query in [q_lo, q_hi] may see (positions ascend).
void narrow_keys(const detail::KeyMask& mask, index_t q_lo, index_t q_hi, index_t& k_begin, index_t& k_end) {
  const auto first_at_or_after = [&](index_t pos) {  // first key in range with position ≥ pos
    if (mask.positions == nullptr) return std::clamp(pos, k_begin, k_end);
    return static_cast<index_t>(std::lower_bound(mask.positions + k_begin, mask.positions + k_end, pos) -
                                mask.positions);
  };
  if (mask.upper) k_end = first_at_or_after(q_hi + mask.hi_offset + 1);
  if (mask.lower) k_begin = std::min(k_end, first_at_or_after(q_lo + mask.lo_offset));
}

// Queries [q_first, q_first + q.rows) of one head over keys [k_begin, k_end) → out, lse.
template <class Q, class KV>
bool run_unit(const Plan& plan, MatrixView<const Q> q, index_t q_first, MatrixView<const KV> keys,
              MatrixView<const KV> values, int keys_shift, index_t k_begin, index_t k_end, Scratch& sc, MatrixF out,
              double* lse) {
  const auto& kernels = detail::active_flash_kernels();
  const bool softmax = plan.f.kind == ScoreKind::softmax;
  const float m0 = softmax ? -std::numeric_limits<float>::infinity() : 0.0f;
  narrow_keys(plan.mask, q_first, q_first + q.rows - 1, k_begin, k_end);
  pack_queries(plan, q, keys_shift, sc);
  if (q.rows == 1) {  // a single row: float arithmetic, its query scaled here if bf16 products left c out
    const float factor = plan.bf16_products ? static_cast<float>(plan.scale) : 1.0f;
    for (index_t c = 0; c < plan.d; ++c) sc.q1[c] = sc.Qp[c * kLanes] * factor;
    std::fill(sc.Ot.begin(), sc.Ot.begin() + plan.dv, 0.0f);
    detail::SingleJob job{plan.f.kind, plan.f.p, plan.type, keys.data, keys.stride, values.data, values.stride,
                          plan.d,      plan.dv,  k_begin,   k_end,     plan.mask,   q_first};
    detail::SingleState st{sc.q1.data(), sc.St.data(), sc.Ot.data(), m0, 0.0};
    kernels.run_single(job, st);
    return finish_lanes(plan, sc.Ot.data(), 1, &st.m, &st.l, sc.shift.data(), 1, out, lse);
  }
  std::fill(sc.m.begin(), sc.m.end(), m0);
  std::fill(sc.l.begin(), sc.l.end(), 0.0);
  std::fill(sc.Ot.begin(), sc.Ot.end(), 0.0f);
  detail::TileJob job{plan.f.kind,
                      plan.f.p,
                      plan.type,
                      keys.data,
                      keys.stride,
                      values.data,
                      values.stride,
                      plan.d,
                      plan.dv,
                      k_begin,
                      k_end,
                      plan.mask,
                      q_first,
                      plan.bf16_products,
                      plan.bf16_products ? static_cast<float>(plan.scale) : 1.0f};
  detail::TileState st{sc.Qp.data(), sc.St.data(), sc.Ot.data(), sc.m.data(),  sc.l.data(), sc.Kf.data(),
                       sc.Vf.data(), sc.Qb.data(), sc.Kb.data(), sc.Pb.data(), sc.Vb.data()};
  kernels.run_tile(job, st);
  return finish_lanes(plan, sc.Ot.data(), kLanes, sc.m.data(), sc.l.data(), sc.shift.data(), q.rows, out, lse);
}

}  // namespace

std::string ScoreFunction::name() const {
  if (kind == ScoreKind::softmax) return "softmax";
  std::string s = std::to_string(p);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return "pow:" + s;
}

ScoreFunction parse_score_function(const std::string& text) {
  if (text == "softmax") return ScoreFunction::softmax();
  if (text.rfind("pow:", 0) == 0) {
    const std::string number = text.substr(4);
    size_t used = 0;
    double p = 0.0;
    try {
      p = std::stod(number, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    require(used == number.size() && used > 0 && p > 0.0 && p <= 64.0 && std::isfinite(p),
            "score function '" + text + "': pow:P needs a number 0 < P ≤ 64");
    return ScoreFunction::power(p);
  }
  throw Error(ErrorKind::bad_input, "score function '" + text + "': expected softmax or pow:P");
}

double effective_scale(const AttentionOptions& options, index_t d) {
  if (options.scale > 0.0) return options.scale;
  return options.f.kind == ScoreKind::softmax ? 1.0 / std::sqrt(static_cast<double>(std::max<index_t>(d, 1))) : 1.0;
}

void attend_exact(ConstMatrixF queries, ConstMatrixF keys, ConstMatrixF values, const AttentionOptions& options,
                  MatrixF out, double* log_normaliser) {
  attend_exact(ConstHeadsF(queries), ConstHeadsF(keys), ConstHeadsF(values), options, HeadsF(out), log_normaliser);
}

namespace {
template <class Q, class KV>
void attend_causal_or_not(HeadsView<const Q> queries, HeadsView<const KV> keys, HeadsView<const KV> values,
                          const AttentionOptions& options, HeadsF out, double* log_normaliser) {
  detail::KeyMask mask;
  mask.upper = options.causal;
  mask.hi_offset = keys.rows - queries.rows;
  detail::attend_masked_typed(queries, keys, values, options, mask, out, log_normaliser);
}
}  // namespace

void attend_exact(ConstHeadsF queries, ConstHeadsF keys, ConstHeadsF values, const AttentionOptions& options,
                  HeadsF out, double* log_normaliser) {
  attend_causal_or_not(queries, keys, values, options, out, log_normaliser);
}
void attend_exact(ConstHeadsF16 queries, ConstHeadsF16 keys, ConstHeadsF16 values, const AttentionOptions& options,
                  HeadsF out, double* log_normaliser) {
  attend_causal_or_not(queries, keys, values, options, out, log_normaliser);
}
void attend_exact(ConstHeadsBF16 queries, ConstHeadsBF16 keys, ConstHeadsBF16 values, const AttentionOptions& options,
                  HeadsF out, double* log_normaliser) {
  attend_causal_or_not(queries, keys, values, options, out, log_normaliser);
}
void attend_exact(ConstHeadsF queries, ConstHeadsF16 keys, ConstHeadsF16 values, const AttentionOptions& options,
                  HeadsF out, double* log_normaliser) {
  attend_causal_or_not(queries, keys, values, options, out, log_normaliser);
}
void attend_exact(ConstHeadsF queries, ConstHeadsBF16 keys, ConstHeadsBF16 values, const AttentionOptions& options,
                  HeadsF out, double* log_normaliser) {
  attend_causal_or_not(queries, keys, values, options, out, log_normaliser);
}

AttentionKernel attention_kernel(index_t n_q, const AttentionOptions& options) {
  const auto& kernels = detail::active_flash_kernels();
  return {kernels.name, detail::uses_bf16_products(n_q, options)};
}

namespace detail {

void check_attention_options(const AttentionOptions& options) {
  require(options.scale >= 0.0 && std::isfinite(options.scale),
          "attention: the scale must be finite and > 0 (0 chooses the default)");
  if (options.f.kind == ScoreKind::power)
    require(options.f.p > 0.0 && std::isfinite(options.f.p) && options.f.p <= 64.0,
            "attention: pow:P needs 0 < P ≤ 64");
}

bool uses_bf16_products(index_t n_q, const AttentionOptions& options) {
  if (options.f.kind != ScoreKind::softmax || n_q <= 1) return false;
  return options.arithmetic == Arithmetic::bf16;
}

void attend_masked(ConstHeadsF queries, ConstHeadsF keys, ConstHeadsF values, const AttentionOptions& options,
                   const KeyMask& mask, HeadsF out, double* log_normaliser) {
  attend_masked_typed(queries, keys, values, options, mask, out, log_normaliser);
}

template <class Q, class KV>
void attend_masked_typed(HeadsView<const Q> queries, HeadsView<const KV> keys, HeadsView<const KV> values,
                         const AttentionOptions& options, const KeyMask& mask, HeadsF out, double* log_normaliser) {
  check_attention_options(options);
  require(keys.batch == queries.batch && values.batch == queries.batch && out.batch == queries.batch,
          "attention: queries, keys, values and out must have the same batch size");
  require(keys.cols == queries.cols, "attention: queries and keys must have the same width d (got " +
                                         std::to_string(queries.cols) + " and " + std::to_string(keys.cols) + ")");
  require(values.heads == keys.heads && values.rows == keys.rows,
          "attention: values must have one row per key and as many heads as keys");
  require(keys.heads > 0 || queries.count() == 0, "attention: no key heads");
  require(keys.heads == 0 || queries.heads % keys.heads == 0,
          "attention: query heads (" + std::to_string(queries.heads) + ") must be a multiple of key heads (" +
              std::to_string(keys.heads) + ")");
  require(out.heads == queries.heads && out.rows == queries.rows && out.cols == values.cols,
          "attention: out must have shape (batch, query heads, n_q, d_v)");
  if (queries.count() == 0 || queries.rows == 0) return;
  require(queries.cols > 0, "attention: d must be at least 1");

  Plan plan;
  plan.f = options.f;
  plan.scale = effective_scale(options, queries.cols);
  plan.type = element_type_of<KV>;
  plan.bf16_products = uses_bf16_products(queries.rows, options);
  plan.mask = mask;
  plan.n_q = queries.rows;
  plan.n_k = keys.rows;
  plan.d = queries.cols;
  plan.dv = values.cols;
  const index_t heads = queries.count();
  const index_t group = queries.heads / keys.heads;
  const index_t tiles = plan.n_q == 1 ? 1 : (plan.n_q + kLanes - 1) / kLanes;
  const index_t tile_rows = plan.n_q == 1 ? 1 : kLanes;
  plan.segments =
      heads * tiles < kMinUnits && plan.n_k > kSegmentKeys ? (plan.n_k + kSegmentKeys - 1) / kSegmentKeys : 1;
  plan.segment_keys = plan.segments > 1 ? kSegmentKeys : std::max<index_t>(plan.n_k, 1);

  std::vector<int> shifts(static_cast<size_t>(keys.count()), 0);
  if (plan.f.kind == ScoreKind::power)
    for (index_t kh = 0; kh < keys.count(); ++kh) shifts[kh] = key_shift(keys.head(kh / keys.heads, kh % keys.heads));

  // With segments, each unit leaves a normalised partial and its log normaliser, merged in
  // segment order afterwards.
  const bool split = plan.segments > 1;
  const index_t units = heads * tiles * plan.segments;
  std::vector<float> part_out(split ? static_cast<size_t>(units * tile_rows * plan.dv) : 0);
  std::vector<double> part_lse(split ? static_cast<size_t>(units * tile_rows) : 0);
  std::vector<double> own_lse(log_normaliser == nullptr ? static_cast<size_t>(heads * plan.n_q) : 0);
  double* lse_all = log_normaliser != nullptr ? log_normaliser : own_lse.data();

  FirstError error;
  bool all_finite = true;
#pragma omp parallel reduction(&& : all_finite) if (units > 1)
  {
    std::optional<Scratch> sc;
#pragma omp for schedule(dynamic, 1)
    for (index_t u = 0; u < units; ++u) {
      if (error.failed()) continue;
      try {
        if (!sc) sc.emplace(plan);
        const index_t seg = u % plan.segments, t = (u / plan.segments) % tiles, head = u / (plan.segments * tiles);
        const index_t b = head / queries.heads, h = head % queries.heads, kh = h / group;
        const index_t q_first = t * tile_rows, rows = std::min(tile_rows, plan.n_q - q_first);
        const MatrixView<const Q> q = queries.head(b, h).rows_range(q_first, q_first + rows);
        const index_t k_begin = seg * plan.segment_keys, k_end = std::min(plan.n_k, k_begin + plan.segment_keys);
        const bool ok =
            split ? run_unit(plan, q, q_first, keys.head(b, kh), values.head(b, kh), shifts[b * keys.heads + kh],
                             k_begin, k_end, *sc, MatrixF(part_out.data() + u * tile_rows * plan.dv, rows, plan.dv),
                             part_lse.data() + u * tile_rows)
                  : run_unit(plan, q, q_first, keys.head(b, kh), values.head(b, kh), shifts[b * keys.heads + kh],
                             k_begin, k_end, *sc, out.head(b, h).rows_range(q_first, q_first + rows),
                             lse_all + head * plan.n_q + q_first);
        all_finite = all_finite && ok;
      } catch (...) {
        error.capture();
      }
    }
  }
  error.rethrow_if_any();

  if (split) {  // merge the segments in order: deterministic whatever the thread count
    for (index_t head = 0; head < heads; ++head)
      for (index_t t = 0; t < tiles; ++t) {
        const index_t b = head / queries.heads, h = head % queries.heads;
        const index_t q_first = t * tile_rows, rows = std::min(tile_rows, plan.n_q - q_first);
        const MatrixF o = out.head(b, h).rows_range(q_first, q_first + rows);
        double* lse = lse_all + head * plan.n_q + q_first;
        for (index_t seg = 0; seg < plan.segments; ++seg) {
          const index_t u = (head * tiles + t) * plan.segments + seg;
          const ConstMatrixF po(part_out.data() + u * tile_rows * plan.dv, rows, plan.dv);
          const double* pl = part_lse.data() + u * tile_rows;
          if (seg == 0) {
            for (index_t i = 0; i < rows; ++i) std::copy(po.row(i), po.row(i) + plan.dv, o.row(i));
            std::copy(pl, pl + rows, lse);
          } else {
            merge_attention(o, lse, po, pl);
          }
        }
      }
  }
  if (!all_finite) detail::explain_nonfinite(queries, keys, values);
}

template void attend_masked_typed(ConstHeadsF, ConstHeadsF, ConstHeadsF, const AttentionOptions&, const KeyMask&,
                                  HeadsF, double*);
template void attend_masked_typed(ConstHeadsF16, ConstHeadsF16, ConstHeadsF16, const AttentionOptions&, const KeyMask&,
                                  HeadsF, double*);
template void attend_masked_typed(ConstHeadsBF16, ConstHeadsBF16, ConstHeadsBF16, const AttentionOptions&,
                                  const KeyMask&, HeadsF, double*);
template void attend_masked_typed(ConstHeadsF, ConstHeadsF16, ConstHeadsF16, const AttentionOptions&, const KeyMask&,
                                  HeadsF, double*);
template void attend_masked_typed(ConstHeadsF, ConstHeadsBF16, ConstHeadsBF16, const AttentionOptions&, const KeyMask&,
                                  HeadsF, double*);

}  // namespace detail

void merge_attention(MatrixF out, double* log_normaliser, ConstMatrixF other_out, const double* other_log_normaliser) {
  require(out.rows == other_out.rows && out.cols == other_out.cols,
          "merge_attention: the two partial outputs must have the same shape");
  for (index_t i = 0; i < out.rows; ++i) {  // all checked before anything changes
    for (const double l : {log_normaliser[i], other_log_normaliser[i]})
      if (std::isnan(l) || (std::isinf(l) && l > 0.0))
        throw Error(ErrorKind::bad_input, "merge_attention: log normaliser of row " + std::to_string(i) +
                                              " is NaN or +inf (it must be finite or -inf)");
    for (const float* row : {static_cast<const float*>(out.row(i)), other_out.row(i)})
      for (index_t c = 0; c < out.cols; ++c)
        if (!std::isfinite(row[c]))
          throw Error(ErrorKind::bad_input,
                      "merge_attention: output row " + std::to_string(i) + " holds a NaN or an infinity");
  }
  for (index_t i = 0; i < out.rows; ++i) {
    const double la = log_normaliser[i], lb = other_log_normaliser[i];
    if (lb == kNegInf) continue;
    float* o = out.row(i);
    const float* ob = other_out.row(i);
    if (la == kNegInf) {
      std::copy(ob, ob + out.cols, o);
      log_normaliser[i] = lb;
      continue;
    }
    const double l = std::max(la, lb) + std::log1p(std::exp(-std::fabs(la - lb)));
    const float wa = static_cast<float>(std::exp(la - l)), wb = static_cast<float>(std::exp(lb - l));
    for (index_t c = 0; c < out.cols; ++c) o[c] = wa * o[c] + wb * ob[c];
    log_normaliser[i] = l;
  }
}

}  // namespace levattn
