// What the levattn-mpi commands share: the world, error agreement, gathers, and reading this
// rank's share of an (n, d) .npy file. Every function here is collective: all ranks call it, in
// the same order.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "levattn/core/error.hpp"
#include "levattn/core/half.hpp"
#include "levattn/io/tensor.hpp"
#include "levattn/linalg/gram.hpp"

namespace levattn::mpi {

struct World {
  int rank = 0, size = 1;
  World();
};

// Runs `local` on every rank, then agrees: if any rank threw, every rank throws the error of the
// lowest such rank (levattn::Error keeps its kind; cli::UsageError stays a usage error). Call it
// around anything that can fail before the next collective, so that no rank waits for one that
// failed.
void agreed(const World& w, const std::function<void()>& local);

// Every rank's bytes on every rank, in rank order.
std::vector<std::vector<std::uint8_t>> all_gather(const std::vector<std::uint8_t>& mine, const World& w);

// Every rank's elements concatenated in rank order, on rank 0 (empty elsewhere). T must match
// `type`; each rank's count must fit in an int.
template <class T>
std::vector<T> gather_to_root(const std::vector<T>& mine, MPI_Datatype type, const World& w) {
  const int n = static_cast<int>(mine.size());
  std::vector<int> sizes(static_cast<size_t>(w.size)), offsets(static_cast<size_t>(w.size), 0);
  MPI_Gather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  for (int r = 1; r < w.size; ++r) offsets[r] = offsets[r - 1] + sizes[r - 1];
  std::vector<T> all(w.rank == 0 ? static_cast<size_t>(offsets.back() + sizes.back()) : 0);
  MPI_Gatherv(mine.data(), n, type, all.data(), sizes.data(), offsets.data(), type, 0, MPI_COMM_WORLD);
  return all;
}

// Every rank's elements concatenated in rank order, on every rank.
template <class T>
std::vector<T> all_gather_elements(const std::vector<T>& mine, MPI_Datatype type, const World& w) {
  const int n = static_cast<int>(mine.size());
  std::vector<int> sizes(static_cast<size_t>(w.size)), offsets(static_cast<size_t>(w.size), 0);
  MPI_Allgather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, MPI_COMM_WORLD);
  for (int r = 1; r < w.size; ++r) offsets[r] = offsets[r - 1] + sizes[r - 1];
  std::vector<T> all(static_cast<size_t>(offsets.back() + sizes.back()));
  MPI_Allgatherv(mine.data(), n, type, all.data(), sizes.data(), offsets.data(), type, MPI_COMM_WORLD);
  return all;
}

// Rows [begin, begin + rows) of an (n, d) .npy file, as float32 or (when read with keep_16_bit) as
// the float16 the file stores: a view into the file's memory map when the file holds little-endian
// C-order elements of that type (only this rank's pages are ever touched), else a copy of just
// these rows (byte-swapped, or converted to float32).
struct Share {
  index_t n = 0, d = 0, begin = 0, rows = 0;
  ElementType type = ElementType::f32;  // the element type of view()
  io::FloatTensor mapped;               // keeps the map alive (empty when copied)
  std::vector<float> copied;            // the copied rows of a float32 share
  std::vector<Half> copied_half;        // the copied rows of a float16 share
  const void* first = nullptr;
  Share() = default;
  Share(const Share&) = delete;  // `first` may point into the copied rows
  Share& operator=(const Share&) = delete;
  Share(Share&&) = default;  // a moved vector keeps its buffer, a moved map its address
  Share& operator=(Share&&) = default;
  // The rows as elements T; Error{failure} unless T is `type` (a bug of the caller).
  template <class T = float>
  MatrixView<const T> view() const {
    if (element_type_of<T> != type)
      throw Error(ErrorKind::failure, std::string("share of ") + element_type_name(type) + " read as " +
                                          element_type_name(element_type_of<T>));
    return {static_cast<const T*>(first), rows, d};
  }
  // work(view<T>()) with T the share's element type.
  template <class Work>
  auto with_view(Work work) const {
    return visit_element_type(type, [&]<class T>(std::type_identity<T>) { return work(view<T>()); });
  }
};

// Which rows of n this rank reads: its split point and the next (split(0) = 0, split(size) = n).
using RowSplit = std::function<index_t(index_t n, int part)>;
// The even split: rank r reads rows [n·r/P, n·(r+1)/P).
index_t even_split(index_t n, int part, const World& w);

// Reads this rank's rows of `path` (named `what` in errors: "keys: row 17 holds a NaN ..."),
// checking them finite; agreed, so a bad file or row on any rank fails every rank. A float16 file
// is read as float16 under io::Precision::keep_16_bit, as float32 otherwise.
Share read_share(const std::string& path, const char* what, const World& w, const RowSplit& split,
                 io::Precision precision = io::Precision::f32);

// Every rank's Gram summary of its rows (numbered from share.begin), merged in rank order:
// bit-identical to one summary of all n rows (gram.hpp: consecutive parts merge exactly).
GramSummary global_summary(const Share& share, const World& w);

}  // namespace levattn::mpi
