// RowStore: a growable table of rows of fixed width held as float, Half or BFloat16 (rounded to
// nearest, ties to even, on the way in) — the KV cache's storage, half the bytes in a 16-bit type.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "levattn/core/half.hpp"
#include "levattn/core/matrix_view.hpp"

namespace levattn {

class RowStore {
 public:
  RowStore(ElementType type, index_t width) : type_(type), width_(width) {}

  ElementType type() const { return type_; }
  index_t rows() const { return rows_; }
  // Bytes held by the rows (not counting spare capacity).
  index_t bytes() const { return rows_ * width_ * (type_ == ElementType::f32 ? 4 : 2); }

  // `row` (width floats) rounded to the type, written to `rounded` (width floats: the values the
  // store now holds, widened back); `rounded` may be `row`.
  void push(const float* row, float* rounded) {
    for (index_t c = 0; c < width_; ++c) {
      switch (type_) {
        case ElementType::f32:
          full_.push_back(row[c]);
          rounded[c] = row[c];
          break;
        case ElementType::f16:
          half_.push_back(to_half(row[c]).bits);
          rounded[c] = half_to_float(half_.back());
          break;
        case ElementType::bf16:
          half_.push_back(to_bfloat16(row[c]).bits);
          rounded[c] = bf16_to_float(half_.back());
          break;
      }
    }
    ++rows_;
  }

  // Moves the last row into row `to`, then drops the last row.
  void remove(index_t to) {
    const index_t last = rows_ - 1;
    if (type_ == ElementType::f32) {
      if (to != last) std::copy_n(full_.begin() + last * width_, width_, full_.begin() + to * width_);
      full_.resize(static_cast<size_t>(last * width_));
    } else {
      if (to != last) std::copy_n(half_.begin() + last * width_, width_, half_.begin() + to * width_);
      half_.resize(static_cast<size_t>(last * width_));
    }
    rows_ = last;
  }

  // The rows as a dense view of T, which must be the store's type.
  template <class T>
  MatrixView<const T> view() const {
    if (element_type_of<T> != type_) throw Error(ErrorKind::failure, "row store: read as the wrong element type");
    if constexpr (std::is_same_v<T, float>)
      return MatrixView<const T>(full_.data(), rows_, width_);
    else
      return MatrixView<const T>(reinterpret_cast<const T*>(half_.data()), rows_, width_);
  }

 private:
  ElementType type_;
  index_t width_;
  index_t rows_ = 0;
  std::vector<float> full_;          // f32
  std::vector<std::uint16_t> half_;  // f16, bf16 bits
};

}  // namespace levattn
