#include "levattn/select/stream_selector.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "levattn/core/finite_rows.hpp"
#include "levattn/scores/leverage.hpp"
#include "linalg/widen_rows.hpp"

namespace levattn {

namespace {

// Keys whose bound score falls below ε/kEvictDivisor are evicted: LeverageBound::kFactor = 2
// from the proof and a further 2 for rounding (see the header).
constexpr double kEvictDivisor = 4.0;

}  // namespace

void StreamSelector::Rows::append(const float* k, const float* v, index_t j, index_t d, index_t dv) {
  keys.insert(keys.end(), k, k + d);
  if (dv > 0) values.insert(values.end(), v, v + dv);
  index.push_back(j);
  ++rows;
}

StreamSelector::StreamSelector(index_t d, StreamOptions options)
    : d_(d),
      options_(options),
      summary_(std::max<index_t>(d, 1), std::max<index_t>(options.first_row, 0)),
      bound_(std::max<index_t>(d, 1), options.rcond > 0.0 && options.rcond < 1.0 ? options.rcond : 0.5) {
  require(d >= 1, "stream selector: dimension must be at least 1");
  require(options.budget >= 0, "stream selector: budget must be ≥ 0, got " + std::to_string(options.budget));
  if (options.budget == 0) check_eps(options.eps);
  require(options.rcond > 0.0 && options.rcond < 1.0, "rcond must lie in (0, 1), got " + std::to_string(options.rcond));
  require(options.first_row >= 0, "stream selector: first_row must be ≥ 0");
  require(options.value_dim >= 0, "stream selector: value_dim must be ≥ 0");
  require(options.pending_rows >= 0, "stream selector: pending_rows must be ≥ 0");
  if (options_.pending_rows == 0) options_.pending_rows = std::max<index_t>(4096, 16 * d);
}

void StreamSelector::note_peak() { peak_retained_ = std::max(peak_retained_, retained()); }

// Scores rows with the current bound and keeps the survivors as candidates (every row in budget
// mode). Values: row r at values + r·value_stride. Indices: index[r], or first_index + r.
void StreamSelector::score_and_keep(ConstMatrixF keys, const float* values, index_t value_stride, const index_t* index,
                                    index_t first_index) {
  std::vector<double> s(static_cast<size_t>(keys.rows));
  bound_.bounds(keys, s.data());
  const double floor = options_.budget > 0 ? -1.0 : options_.eps / kEvictDivisor;
  for (index_t r = 0; r < keys.rows; ++r)
    if (s[r] >= floor)
      cand_.append(keys.row(r), values + r * value_stride, index ? index[r] : first_index + r, d_, options_.value_dim);
}

void StreamSelector::check_shapes(index_t rows, index_t cols, index_t value_rows, index_t value_cols) const {
  require(cols == d_, "keys have " + std::to_string(cols) + " columns, expected " + std::to_string(d_));
  const index_t dv = options_.value_dim;
  if (dv > 0)
    require(value_rows == rows && value_cols == dv,
            "values: expected shape " + shape_string(rows, dv) + ", got " + shape_string(value_rows, value_cols));
  else
    require(value_rows == 0, "values given but the selector carries none (value_dim = 0)");
}

template <class T>
void StreamSelector::push_widened(MatrixView<const T> keys, MatrixView<const T> values) {
  check_shapes(keys.rows, keys.cols, values.rows, values.cols);
  const index_t first = summary_.end_row(), dv = options_.value_dim;
  // The whole block is checked before anything is pushed: the selector stays as it was.
  if (const index_t r = first_nonfinite_row(values); r < values.rows)
    throw Error(ErrorKind::bad_input, nonfinite_row_message("values", first + r));
  if (const index_t r = first_nonfinite_row(keys); r < keys.rows)
    throw Error(ErrorKind::bad_input, nonfinite_row_message("keys", first + r));
  const index_t chunk = std::min(keys.rows, options_.pending_rows);
  std::vector<float> k(static_cast<size_t>(chunk * d_)), v(static_cast<size_t>(chunk * dv));
  for (index_t begin = 0; begin < keys.rows; begin += chunk) {
    const index_t rows = std::min(chunk, keys.rows - begin);
    widen_rows(keys, begin, rows, k.data());
    if (dv > 0) widen_rows(values, begin, rows, v.data());
    push(ConstMatrixF(k.data(), rows, d_), dv > 0 ? ConstMatrixF(v.data(), rows, dv) : ConstMatrixF{});
  }
}

void StreamSelector::push(MatrixView<const Half> keys, MatrixView<const Half> values) { push_widened(keys, values); }
void StreamSelector::push(MatrixView<const BFloat16> keys, MatrixView<const BFloat16> values) {
  push_widened(keys, values);
}

void StreamSelector::push(ConstMatrixF keys, ConstMatrixF values) {
  check_shapes(keys.rows, keys.cols, values.rows, values.cols);
  const index_t dv = options_.value_dim;
  if (keys.rows == 0) return;
  const index_t first = summary_.end_row();
  for (index_t r = 0; r < values.rows; ++r)  // before any change: the selector stays as it was
    for (index_t c = 0; c < dv; ++c)
      if (!std::isfinite(values(r, c)))
        throw Error(ErrorKind::bad_input, "values: row " + std::to_string(first + r) + " holds a NaN or an infinity");
  try {
    summary_.add(keys);  // validates the keys; unchanged on error
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::bad_input) throw;
    for (index_t r = 0; r < keys.rows; ++r)
      for (index_t c = 0; c < d_; ++c)
        require(std::isfinite(keys(r, c)), "keys: row " + std::to_string(first + r) + " holds a NaN or an infinity");
    throw;
  }

  if (pending_.rows + keys.rows < options_.pending_rows) {
    for (index_t r = 0; r < keys.rows; ++r)
      pending_.append(keys.row(r), dv > 0 ? values.row(r) : nullptr, first + r, d_, dv);
    note_peak();
    return;
  }
  // One refit serves the buffer and the whole block: the summary already holds them all.
  bound_.fit(summary_);
  if (pending_.rows > 0) {
    score_and_keep(ConstMatrixF(pending_.keys.data(), pending_.rows, d_), pending_.values.data(), dv,
                   pending_.index.data(), 0);
    pending_ = Rows{};
  }
  score_and_keep(keys, dv > 0 ? values.data : nullptr, dv > 0 ? values.stride : 0, nullptr, first);
  note_peak();
  const index_t floor = options_.budget > 0 ? 2 * options_.budget : 2 * rescored_size_;
  if (cand_.rows > std::max(floor, options_.pending_rows)) rescore();
}

void StreamSelector::flush() {
  bound_.fit(summary_);
  if (pending_.rows == 0) return;
  Rows pending = std::move(pending_);
  pending_ = Rows{};
  score_and_keep(ConstMatrixF(pending.keys.data(), pending.rows, d_), pending.values.data(), options_.value_dim,
                 pending.index.data(), 0);
  note_peak();
}

// Re-scores the candidates under the bound last fitted and evicts (threshold) or trims to the
// budget (ties to the lower index). Keeps the candidates in ascending index.
void StreamSelector::rescore() {
  const index_t m = cand_.rows, dv = options_.value_dim;
  std::vector<double> s(static_cast<size_t>(m));
  bound_.bounds(ConstMatrixF(cand_.keys.data(), m, d_), s.data());
  std::vector<index_t> keep;
  if (options_.budget > 0) {
    keep.resize(static_cast<size_t>(m));
    std::iota(keep.begin(), keep.end(), index_t{0});
    const index_t k = std::min(options_.budget, m);
    const auto better = [&](index_t a, index_t b) {
      return s[a] > s[b] || (s[a] == s[b] && cand_.index[a] < cand_.index[b]);
    };
    std::nth_element(keep.begin(), keep.begin() + (k - 1), keep.end(), better);
    keep.resize(static_cast<size_t>(k));
  } else {
    for (index_t r = 0; r < m; ++r)
      if (s[r] >= options_.eps / kEvictDivisor) keep.push_back(r);
  }
  std::sort(keep.begin(), keep.end(), [&](index_t a, index_t b) { return cand_.index[a] < cand_.index[b]; });
  Rows kept;
  for (index_t r : keep)
    kept.append(cand_.keys.data() + r * d_, dv > 0 ? cand_.values.data() + r * dv : nullptr, cand_.index[r], d_, dv);
  cand_ = std::move(kept);
  rescored_size_ = cand_.rows;
}

void StreamSelector::merge(const StreamSelector& other) {
  const StreamOptions& o = other.options_;
  require(other.d_ == d_ && o.budget == options_.budget && (o.budget > 0 || o.eps == options_.eps) &&
              o.rcond == options_.rcond && o.value_dim == options_.value_dim,
          "stream selector: merge needs the same d, mode, eps or budget, rcond and value_dim");
  summary_.merge(other.summary_);
  const index_t dv = options_.value_dim;
  for (const Rows* part : {&other.cand_, &other.pending_})
    for (index_t r = 0; r < part->rows; ++r)
      pending_.append(part->keys.data() + r * d_, dv > 0 ? part->values.data() + r * dv : nullptr, part->index[r], d_,
                      dv);
  peak_retained_ = std::max(peak_retained_, other.peak_retained_);
  note_peak();
  flush();                        // refits the bound on the merged summary
  if (cand_.rows > 0) rescore();  // also restores ascending order after any merge
}

StreamResult StreamSelector::result() const {
  StreamResult out;
  out.count = count();
  LeverageScorer scorer(d_, {0.0, options_.rcond});
  scorer.fit(summary_);
  out.rank = scorer.rank();
  // Retained keys with their final scores, in ascending global index.
  struct Held {
    index_t index;
    const float* key;
    const float* value;
    double tau;
  };
  std::vector<Held> held;
  const index_t dv = options_.value_dim;
  for (const Rows* part : {&cand_, &pending_}) {
    std::vector<double> tau(static_cast<size_t>(part->rows));
    scorer.scores(ConstMatrixF(part->keys.data(), part->rows, d_), tau.data());
    for (index_t r = 0; r < part->rows; ++r)
      held.push_back(
          {part->index[r], part->keys.data() + r * d_, dv > 0 ? part->values.data() + r * dv : nullptr, tau[r]});
  }
  std::sort(held.begin(), held.end(), [](const Held& a, const Held& b) { return a.index < b.index; });
  std::vector<double> tau(held.size());
  for (size_t i = 0; i < held.size(); ++i) tau[i] = held[i].tau;
  const auto n = static_cast<index_t>(held.size());
  if (options_.budget > 0) {
    if (n > 0) out.set = select_top_k(tau.data(), n, std::min(options_.budget, n));
    out.set.bound = static_cast<double>(options_.budget);
  } else {
    out.set = select_by_threshold(tau.data(), n, options_.eps, static_cast<double>(out.rank));
  }
  for (index_t& i : out.set.indices) {
    const Held& h = held[static_cast<size_t>(i)];
    out.keys.insert(out.keys.end(), h.key, h.key + d_);
    if (dv > 0) out.values.insert(out.values.end(), h.value, h.value + dv);
    i = h.index;
  }
  return out;
}

StreamSelector::HeldKeys StreamSelector::held_keys() const {
  std::vector<std::pair<index_t, const float*>> held;  // (global index, row)
  for (const Rows* part : {&cand_, &pending_})
    for (index_t r = 0; r < part->rows; ++r) held.push_back({part->index[r], part->keys.data() + r * d_});
  std::sort(held.begin(), held.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  HeldKeys out;
  out.rows = static_cast<index_t>(held.size());
  for (const auto& [index, row] : held) {
    out.index.push_back(index);
    out.keys.insert(out.keys.end(), row, row + d_);
  }
  return out;
}

}  // namespace levattn
