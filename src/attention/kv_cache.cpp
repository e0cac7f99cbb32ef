// KVCache (see kv_cache.hpp): slots of retained keys/values, the Gram summary of every key with a
// scorer refit on it, and per-policy eviction.
#include "levattn/attention/kv_cache.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "levattn/attention/heavy.hpp"
#include "levattn/core/finite_rows.hpp"
#include "linalg/widen_rows.hpp"

namespace levattn {

namespace {
constexpr double kNew = std::numeric_limits<double>::infinity();  // appended since the last refresh

// f(rows): the store's rows as a view of its own element type, read in place.
template <class F>
void with_rows(const RowStore& store, F&& f) {
  visit_element_type(store.type(), [&]<class T>(std::type_identity<T>) { f(store.view<T>()); });
}
}  // namespace

KVCache::KVCache(index_t d, index_t d_v, KVCacheOptions options)
    : d_(d),
      dv_(d_v),
      options_(options),
      keys_(options.storage, std::max<index_t>(d, 1)),
      values_(options.storage, std::max<index_t>(d_v, 1)),
      summary_(std::max<index_t>(d, 1)),
      scorer_(std::max<index_t>(d, 1)) {
  require(d >= 1 && d_v >= 1, "KV cache: d and d_v must be at least 1");
  require(options.budget >= 1, "KV cache: the budget must be at least 1");
  require(options.eps >= 0.0 && options.eps <= 1.0, "KV cache: eps must lie in [0, 1] (0: budget mode)");
  require(options.policy != CachePolicy::window || (options.sinks >= 0 && options.sinks < options.budget),
          "KV cache: sinks must lie in [0, budget)");
  require(options.attention.f.kind == ScoreKind::softmax || options.attention.f.p == 2.0,
          "KV cache: attention must be softmax or pow:2");
  require(options.refresh >= 0, "KV cache: refresh must be ≥ 0");
  require(options.attention.scale >= 0.0 && std::isfinite(options.attention.scale),
          "KV cache: the scale must be finite and > 0 (0 chooses the default)");
  if (options_.refresh == 0)
    options_.refresh =
        options_.policy == CachePolicy::leverage ? std::max<index_t>(1, options_.budget / 4) : options_.budget;
  row_.resize(static_cast<size_t>(std::max(d_, dv_)));
}

bool KVCache::keeps_gram() const {
  return options_.policy == CachePolicy::leverage || options_.attention.f.kind == ScoreKind::power;
}

std::vector<index_t> KVCache::positions() const {
  std::vector<index_t> p = position_;
  std::sort(p.begin(), p.end());
  return p;
}

void KVCache::evict(index_t slot) {  // the last slot moves into `slot`
  const index_t last = size() - 1;
  keys_.remove(slot);
  values_.remove(slot);
  position_[slot] = position_[last];
  weight_[slot] = weight_[last];
  position_.pop_back();
  weight_.pop_back();
}

void KVCache::refit() {
  scorer_.fit(summary_);
  unfitted_.clear();
  if (options_.policy != CachePolicy::leverage) return;
  // The 16-bit overloads give the bits of the float ones on the widened keys (leverage.hpp).
  with_rows(keys_, [&](auto keys) { scorer_.scores(keys, weight_.data()); });
  if (options_.eps > 0.0)
    for (index_t s = size() - 1; s >= 0; --s)
      if (weight_[s] < options_.eps) evict(s);
}

// Evicts while over budget: the policy's least valuable slot each time.
void KVCache::enforce_budget() {
  if (options_.policy == CachePolicy::leverage && options_.eps > 0.0) return;
  while (size() > options_.budget) {
    index_t victim = -1;
    for (index_t s = 0; s < size(); ++s) {
      bool eligible = true;
      if (options_.policy == CachePolicy::window) eligible = position_[s] >= options_.sinks;
      if (options_.policy == CachePolicy::accumulated)
        eligible = position_[s] < appended_ - options_.budget / 2;  // outside the recent half
      if (!eligible) continue;
      const bool better = victim < 0 || (options_.policy == CachePolicy::window
                                             ? position_[s] < position_[victim]  // the oldest
                                             : weight_[s] < weight_[victim] ||
                                                   (weight_[s] == weight_[victim] && position_[s] < position_[victim]));
      if (better) victim = s;
    }
    if (victim < 0) break;  // cannot happen with the option checks above
    evict(victim);
  }
}

void KVCache::append(const float* key, const float* value) {
  if (first_nonfinite_row(ConstMatrixF(key, 1, d_)) < 1 || first_nonfinite_row(ConstMatrixF(value, 1, dv_)) < 1)
    throw Error(ErrorKind::bad_input,
                "KV cache: key or value " + std::to_string(appended_) + " holds a NaN or an infinity");
  // From here on the key is the stored one (rounded to the storage type), which must be finite.
  const auto finite = [&](index_t width) {
    return std::all_of(row_.begin(), row_.begin() + width, [](float x) { return std::isfinite(x); });
  };
  values_.push(value, row_.data());
  bool fits = finite(dv_);
  keys_.push(key, row_.data());
  fits = fits && finite(d_);
  if (!fits) {
    values_.remove(values_.rows() - 1);
    keys_.remove(keys_.rows() - 1);
    throw Error(ErrorKind::bad_input, "KV cache: key or value " + std::to_string(appended_) + " overflows " +
                                          element_type_name(options_.storage));
  }
  key = row_.data();
  if (keeps_gram()) {
    summary_.add(ConstMatrixF(key, 1, d_));
    unfitted_.insert(unfitted_.end(), key, key + d_);
  }
  double weight = options_.policy == CachePolicy::leverage ? kNew : 0.0;
  if (options_.policy == CachePolicy::key_norm)  // ‖k‖²
    for (index_t c = 0; c < d_; ++c) weight += static_cast<double>(key[c]) * key[c];
  position_.push_back(appended_++);
  weight_.push_back(weight);
  if (keeps_gram() && unfitted_rows() >= options_.refresh) refit();
  enforce_budget();
}

void KVCache::append(ConstMatrixF keys, ConstMatrixF values) {
  require(keys.cols == d_ && values.cols == dv_ && keys.rows == values.rows,
          "KV cache: expected keys (rows, " + std::to_string(d_) + ") and values (rows, " + std::to_string(dv_) +
              "), got " + shape_string(keys.rows, keys.cols) + " and " + shape_string(values.rows, values.cols));
  for (const ConstMatrixF m : {keys, values})
    if (const index_t r = first_nonfinite_row(m); r < m.rows)
      throw Error(ErrorKind::bad_input,
                  "KV cache: key or value " + std::to_string(appended_ + r) + " holds a NaN or an infinity");
  const auto overflows = [&](float x) {  // finite, but not once rounded to the storage type
    return options_.storage == ElementType::f16    ? !std::isfinite(to_float(to_half(x)))
           : options_.storage == ElementType::bf16 ? !std::isfinite(to_float(to_bfloat16(x)))
                                                   : false;
  };
  if (options_.storage != ElementType::f32)
    for (const ConstMatrixF m : {keys, values})
      for (index_t r = 0; r < m.rows; ++r)
        if (std::any_of(m.row(r), m.row(r) + m.cols, overflows))
          throw Error(ErrorKind::bad_input, "KV cache: key or value " + std::to_string(appended_ + r) + " overflows " +
                                                element_type_name(options_.storage));
  for (index_t r = 0; r < keys.rows; ++r) append(keys.row(r), values.row(r));
}

void KVCache::attend(ConstMatrixF queries, MatrixF out, double* missing) {
  require(queries.cols == d_ && out.cols == dv_ && out.rows == queries.rows,
          "KV cache: expected queries (m, " + std::to_string(d_) + ") and out (m, " + std::to_string(dv_) + "), got " +
              shape_string(queries.rows, queries.cols) + " and " + shape_string(out.rows, out.cols));
  if (const index_t r = first_nonfinite_row(queries); r < queries.rows)
    throw Error(ErrorKind::bad_input, "KV cache: query row " + std::to_string(r) + " holds a NaN or an infinity");
  for (index_t r = 0; r < queries.rows; ++r) {
    attend(queries.row(r), out.row(r));
    if (missing != nullptr) missing[r] = missing_mass_;
  }
}

void KVCache::attend(const float* query, float* out) {
  require(first_nonfinite_row(ConstMatrixF(query, 1, d_)) == 1, "KV cache: the query holds a NaN or an infinity");
  lse_.resize(1);
  const index_t n = size();
  AttentionOptions o = options_.attention;
  o.causal = false;
  const ConstHeadsF q(query, 1, 1, 1, d_);
  const HeadsF out_head(out, 1, 1, 1, dv_);
  visit_element_type(options_.storage, [&]<class T>(std::type_identity<T>) {
    attend_exact(q, HeadsView<const T>(keys_.view<T>()), HeadsView<const T>(values_.view<T>()), o, out_head,
                 lse_.data());
  });
  const double c = effective_scale(o, d_);
  if (options_.policy == CachePolicy::accumulated && std::isfinite(lse_[0]))
    with_rows(keys_, [&](auto keys) {
      for (index_t s = 0; s < n; ++s) {  // A over the retained keys, added to what each received
        widen_rows(keys, s, 1, row_.data());
        double dot = 0.0;
        for (index_t col = 0; col < d_; ++col) dot += static_cast<double>(query[col]) * row_[col];
        const double logf = o.f.kind == ScoreKind::softmax ? c * dot : 2.0 * std::log(std::fabs(c * dot));
        weight_[s] += std::exp(logf - lse_[0]);
      }
    });
  if (o.f.kind != ScoreKind::power) return;
  double total = 0.0;  // c²·qᵀGq over every key appended: the fitted part, then the unfitted rows
  scorer_.normalisers(ConstMatrixF(query, 1, d_), &total);
  products_.resize(static_cast<size_t>(unfitted_rows()));
  heavy_products(query, ConstMatrixF(unfitted_.data(), unfitted_rows(), d_), products_.data());
  for (const double p : products_) total += p * p;
  total *= c * c;
  const double kept = total > 0.0 && std::isfinite(lse_[0]) ? std::exp(lse_[0] - std::log(total)) : 0.0;
  missing_mass_ = total > 0.0 ? std::max(0.0, 1.0 - kept) : 0.0;
  for (index_t col = 0; col < dv_; ++col) out[col] *= static_cast<float>(kept);
}

}  // namespace levattn
