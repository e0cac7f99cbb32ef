#include "levattn/linalg/gram.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "core/first_error.hpp"
#include "levattn/core/finite_rows.hpp"
#include "linalg/kernels.hpp"
#include "linalg/widen_rows.hpp"

namespace levattn {

namespace {

constexpr index_t kB = kernels::kBlockRows;

// Whole blocks of one add() call are cut, at multiples of 2^level blocks, into at most about
// this many tasks; each task's pieces are canonical, so the cut never changes any bit.
constexpr index_t kMaxTasks = 64;

void add_upper(std::vector<double>& acc, const std::vector<double>& x, index_t d) {
  const index_t dpad = kernels::padded_dim(d);
  for (index_t a = 0; a < d; ++a)
    for (index_t b = a; b < d; ++b) acc[a * dpad + b] += x[a * dpad + b];
}

}  // namespace

GramSummary::GramSummary(index_t d, index_t first_row) : d_(d), first_row_(first_row) {
  require(d >= 1, "gram summary: dimension must be at least 1");
  require(first_row >= 0, "gram summary: first row must be ≥ 0, got " + std::to_string(first_row));
}

// Pushes a piece onto `items`, joining it with its left sibling as long as there is one, so that
// `items` always holds maximal pieces (no two adjacent ones form an aligned pair). Such a
// decomposition of a range of blocks is unique, and every piece's value is left + right of its
// halves, so the result does not depend on the order in which pieces were formed.
void GramSummary::push_piece_into(std::vector<Item>& items, Item piece, index_t d) {
  while (!items.empty()) {
    Item& left = items.back();
    const index_t span = index_t{1} << piece.level;
    if (left.fragment || left.level != piece.level || left.first + span != piece.first || left.first % (2 * span) != 0)
      break;
    add_upper(left.sum, piece.sum, d);
    ++left.level;
    piece = std::move(left);
    items.pop_back();
  }
  items.push_back(std::move(piece));
}

void GramSummary::push_piece(Item piece) { push_piece_into(items_, std::move(piece), d_); }

void GramSummary::push(Item item) {
  if (!item.fragment) return push_piece(std::move(item));
  if (!items_.empty()) {
    Item& last = items_.back();
    if (last.fragment && last.first + last.rows == item.first && last.first / kB == item.first / kB) {
      last.data.insert(last.data.end(), item.data.begin(), item.data.end());
      last.rows += item.rows;
      if (last.first % kB != 0 || last.rows < kB) return;
      // The block is whole: it becomes a piece of level 0.
      Item leaf;
      leaf.first = last.first / kB;
      const index_t dpad = kernels::padded_dim(d_);
      leaf.sum.assign(static_cast<size_t>(dpad * dpad), 0.0);
      kernels::active_kernels().gram(last.data.data(), kB, d_, d_, leaf.sum.data());
      items_.pop_back();
      return push_piece(std::move(leaf));
    }
  }
  items_.push_back(std::move(item));
}

// One implementation for every element type. Float keys go to the kernel in place; 16-bit keys
// are widened one block at a time into a scratch of kB × d floats (per task), so the kernel sees
// the very floats a caller widening the keys first would pass, and forms the same bits.
template <class T>
void GramSummary::add_rows(MatrixView<const T> keys) {
  constexpr bool kWiden = !std::is_same_v<T, float>;
  require(keys.cols == d_, "gram summary: keys have " + std::to_string(keys.cols) + " columns, summary has dimension " +
                               std::to_string(d_));
  const index_t n = keys.rows;
  if (n == 0) return;
  const index_t e = end_row();
  // Rows [0, h) finish the block holding position e, [h, t) are whole blocks, [t, n) start one.
  const index_t h = e % kB == 0 ? 0 : std::min(n, kB - e % kB);
  const index_t blocks = (n - h) / kB;
  const index_t t = h + blocks * kB;
  const auto reject_row = [](index_t r) { throw Error(ErrorKind::bad_input, nonfinite_row_message("keys", r)); };
  if (const index_t r = first_nonfinite_row(keys, 0, h); r < h) reject_row(r);

  // Whole blocks, in tasks of aligned runs of 2^level blocks, each task summed left to right.
  const index_t first_block = (e + h) / kB;
  index_t level = 0;
  while ((blocks >> level) > kMaxTasks) ++level;
  const index_t span = index_t{1} << level;
  std::vector<index_t> cuts = {first_block};
  for (index_t b = (first_block / span + 1) * span; b < first_block + blocks; b += span) cuts.push_back(b);
  cuts.push_back(first_block + blocks);
  const index_t tasks = blocks == 0 ? 0 : static_cast<index_t>(cuts.size()) - 1;
  std::vector<std::vector<Item>> parts(static_cast<size_t>(tasks));
  const index_t dpad = kernels::padded_dim(d_);
  const auto& kernel = kernels::active_kernels();
  index_t first_bad_block = first_block + blocks;
  FirstError error;  // e.g. out of memory
#pragma omp parallel for schedule(dynamic, 1) reduction(min : first_bad_block) if (tasks > 1)
  for (index_t task = 0; task < tasks; ++task) {
    try {
      std::vector<float> scratch(kWiden ? static_cast<size_t>(kB * d_) : 0);
      for (index_t b = cuts[task]; b < cuts[task + 1] && !error.failed(); ++b) {
        Item leaf;
        leaf.first = b;
        leaf.sum.assign(static_cast<size_t>(dpad * dpad), 0.0);
        const index_t row = h + (b - first_block) * kB;
        bool finite = false;
        if constexpr (kWiden) {
          widen_rows(keys, row, kB, scratch.data());
          finite = kernel.gram(scratch.data(), kB, d_, d_, leaf.sum.data());
        } else {
          finite = kernel.gram(keys.row(row), kB, d_, keys.stride, leaf.sum.data());
        }
        if (!finite) {
          first_bad_block = std::min(first_bad_block, b);
          break;
        }
        push_piece_into(parts[task], std::move(leaf), d_);
      }
    } catch (...) {
      error.capture();
    }
  }
  error.rethrow_if_any();
  if (first_bad_block < first_block + blocks)
    reject_row(first_nonfinite_row(keys, h + (first_bad_block - first_block) * kB, t));
  if (const index_t r = first_nonfinite_row(keys, t, n); r < n) reject_row(r);

  const auto fragment = [&](index_t begin, index_t end) {
    Item f;
    f.fragment = true;
    f.first = e + begin;
    f.rows = end - begin;
    f.data.resize(static_cast<size_t>(f.rows * d_));
    widen_rows(keys, begin, f.rows, f.data.data());
    return f;
  };
  if (h > 0) push(fragment(0, h));
  for (auto& part : parts)
    for (auto& piece : part) push_piece(std::move(piece));
  if (t < n) push(fragment(t, n));
  count_ += n;
}

void GramSummary::add(ConstMatrixF keys) { add_rows(keys); }
void GramSummary::add(MatrixView<const Half> keys) { add_rows(keys); }
void GramSummary::add(MatrixView<const BFloat16> keys) { add_rows(keys); }

template <class T>
void GramSummary::add_scaled_rows(MatrixView<const T> keys, const double* row_scale) {
  require(keys.cols == d_, "gram summary: keys have " + std::to_string(keys.cols) + " columns, summary has dimension " +
                               std::to_string(d_));
  const index_t n = keys.rows;
  int bad_scale = 0;  // an OR over all rows vectorises; the first bad row is found only if needed
#pragma omp simd reduction(| : bad_scale)
  for (index_t r = 0; r < n; ++r)
    bad_scale |= !(row_scale[r] >= 0.0 && row_scale[r] <= std::numeric_limits<double>::max());
  if (bad_scale)
    for (index_t r = 0; r < n; ++r)
      if (!(row_scale[r] >= 0.0 && std::isfinite(row_scale[r])))
        throw Error(ErrorKind::bad_input, "gram summary: row scale " + std::to_string(r) + " must be finite and ≥ 0");
  // Scaled copies in chunks of 4,096 rows (small enough to stay in cache), scaled in parallel
  // and checked before they are added; add() gives the same bits however rows are split. A refused
  // call restores the summary as it was (a copy of O(d² log n) numbers).
  constexpr index_t kChunkRows = 16 * kB;
  std::vector<float> chunk(static_cast<size_t>(std::min(n, kChunkRows) * d_));
  const GramSummary before = *this;
  try {
    for (index_t begin = 0; begin < n; begin += kChunkRows) {
      const index_t rows = std::min(kChunkRows, n - begin);
      index_t first_bad = rows;
#pragma omp parallel for schedule(static) reduction(min : first_bad)
      for (index_t r = 0; r < rows; ++r) {
        float* out = chunk.data() + r * d_;
        const float* x = out;  // the row as float: in place, or 16-bit widened into out first
        if constexpr (std::is_same_v<T, float>)
          x = keys.row(begin + r);
        else
          widen_rows(keys, begin + r, 1, out);
        const double scale = row_scale[begin + r];
        int overflow = 0;  // integer OR and branch-free compare: the loop vectorises
#pragma omp simd reduction(| : overflow)
        for (index_t c = 0; c < d_; ++c) {
          out[c] = static_cast<float>(scale * x[c]);
          overflow |= !(std::fabs(out[c]) <= std::numeric_limits<float>::max());  // true for NaN
        }
        if (overflow) first_bad = std::min(first_bad, r);
      }
      if (const index_t r = begin + first_bad; first_bad < rows) {
        require_finite_rows(keys.rows_range(r, r + 1), "keys", r);
        throw Error(ErrorKind::failure, "gram summary: row " + std::to_string(r) + " overflows float once scaled");
      }
      add(ConstMatrixF{chunk.data(), rows, d_, d_});
    }
  } catch (...) {
    *this = before;
    throw;
  }
}

void GramSummary::add(ConstMatrixF keys, const double* row_scale) { add_scaled_rows(keys, row_scale); }
void GramSummary::add(MatrixView<const Half> keys, const double* row_scale) { add_scaled_rows(keys, row_scale); }
void GramSummary::add(MatrixView<const BFloat16> keys, const double* row_scale) { add_scaled_rows(keys, row_scale); }

void GramSummary::add_item_sum(const Item& item, std::vector<double>& acc) const {
  if (item.fragment)
    kernels::active_kernels().gram(item.data.data(), item.rows, d_, d_, acc.data());
  else
    add_upper(acc, item.sum, d_);
}

void GramSummary::merge(const GramSummary& other) {
  require(other.d_ == d_,
          "gram summary: cannot merge dimension " + std::to_string(other.d_) + " into dimension " + std::to_string(d_));
  if (other.count_ == 0 && other.loose_.empty()) return;
  if (count_ == 0 && loose_.empty()) {
    *this = other;
    return;
  }
  if (other.first_row_ == end_row() && other.loose_.empty()) {
    for (const Item& item : other.items_) push(item);
    count_ += other.count_;
    return;
  }
  // Not consecutive: fold both into one loose sum.
  const index_t dpad = kernels::padded_dim(d_);
  std::vector<double> acc = loose_.empty() ? std::vector<double>(static_cast<size_t>(dpad * dpad), 0.0) : loose_;
  for (const Item& item : items_) add_item_sum(item, acc);
  std::vector<double> theirs = other.loose_.empty() ? std::vector<double>(acc.size(), 0.0) : other.loose_;
  for (const Item& item : other.items_) other.add_item_sum(item, theirs);
  add_upper(acc, theirs, d_);
  loose_ = std::move(acc);
  items_.clear();
  count_ += other.count_;
}

std::vector<double> GramSummary::gram() const {
  const index_t dpad = kernels::padded_dim(d_);
  std::vector<double> acc = loose_.empty() ? std::vector<double>(static_cast<size_t>(dpad * dpad), 0.0) : loose_;
  for (const Item& item : items_) add_item_sum(item, acc);
  std::vector<double> G(static_cast<size_t>(d_ * d_));
  for (index_t a = 0; a < d_; ++a)
    for (index_t b = a; b < d_; ++b) G[a * d_ + b] = G[b * d_ + a] = acc[a * dpad + b];
  return G;
}

namespace {

constexpr char kMagic[8] = {'L', 'V', 'G', 'R', 'A', 'M', '0', '1'};

class Writer {
 public:
  template <class T>
  void put(const T* x, size_t count) {
    if (count == 0) return;  // x may be an empty vector's null data()
    const auto* p = reinterpret_cast<const std::uint8_t*>(x);
    bytes.insert(bytes.end(), p, p + count * sizeof(T));
  }
  void put(index_t v) { put(&v, 1); }
  std::vector<std::uint8_t> bytes;
};

class Reader {
 public:
  Reader(const std::uint8_t* p, size_t n) : p_(p), n_(n) {}
  template <class T>
  void get(T* x, size_t count) {
    require(count <= (n_ - at_) / sizeof(T), "gram summary: truncated bytes");
    if (count == 0) return;  // x may be an empty vector's null data()
    std::memcpy(x, p_ + at_, count * sizeof(T));
    at_ += count * sizeof(T);
  }
  index_t get() {
    index_t v = 0;
    get(&v, 1);
    return v;
  }
  bool done() const { return at_ == n_; }

 private:
  const std::uint8_t* p_;
  size_t n_, at_ = 0;
};

}  // namespace

std::vector<std::uint8_t> GramSummary::to_bytes() const {
  Writer w;
  w.put(kMagic, sizeof kMagic);
  w.put(d_);
  w.put(first_row_);
  w.put(count_);
  w.put(static_cast<index_t>(loose_.size()));
  w.put(loose_.data(), loose_.size());
  w.put(static_cast<index_t>(items_.size()));
  for (const Item& item : items_) {
    w.put(index_t{item.fragment});
    w.put(item.first);
    w.put(item.level);
    w.put(item.rows);
    w.put(static_cast<index_t>(item.sum.size()));
    w.put(item.sum.data(), item.sum.size());
    w.put(static_cast<index_t>(item.data.size()));
    w.put(item.data.data(), item.data.size());
  }
  return std::move(w.bytes);
}

GramSummary GramSummary::from_bytes(const std::uint8_t* bytes, std::size_t size) {
  Reader r(bytes, size);
  char magic[sizeof kMagic];
  r.get(magic, sizeof magic);
  require(std::memcmp(magic, kMagic, sizeof kMagic) == 0, "gram summary: not a serialised summary");
  const index_t d = r.get();
  require(d >= 1 && d <= (index_t{1} << 20), "gram summary: bad dimension");
  const index_t first_row = r.get();
  GramSummary s(d, first_row);
  s.count_ = r.get();
  require(s.count_ >= 0, "gram summary: bad count");
  const auto dpad2 = static_cast<index_t>(kernels::padded_dim(d) * kernels::padded_dim(d));
  const auto sized = [&](auto& v, index_t expected_max) {
    const index_t len = r.get();
    require(len >= 0 && len <= expected_max, "gram summary: bad length");
    v.resize(static_cast<size_t>(len));
    r.get(v.data(), v.size());
  };
  sized(s.loose_, dpad2);
  require(s.loose_.empty() || static_cast<index_t>(s.loose_.size()) == dpad2, "gram summary: bad sum");
  const index_t items = r.get();
  require(items >= 0 && items <= 256, "gram summary: bad item count");
  for (index_t i = 0; i < items; ++i) {
    Item item;
    item.fragment = r.get() != 0;
    item.first = r.get();
    item.level = r.get();
    item.rows = r.get();
    sized(item.sum, dpad2);
    sized(item.data, kB * d);
    require(item.fragment ? (item.rows > 0 && item.rows < kB && static_cast<index_t>(item.data.size()) == item.rows * d)
                          : (static_cast<index_t>(item.sum.size()) == dpad2 && item.level >= 0 && item.level < 62),
            "gram summary: bad item");
    s.items_.push_back(std::move(item));
  }
  require(r.done(), "gram summary: trailing bytes");
  return s;
}

}  // namespace levattn
