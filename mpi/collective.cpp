#include "collective.hpp"

#include <exception>

#include "exit_codes.hpp"
#include "levattn/core/error.hpp"
#include "levattn/core/finite_rows.hpp"
#include "levattn/io/npy.hpp"
#include "levattn/io/npy_rows.hpp"

namespace levattn::mpi {

World::World() {
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
}

void agreed(const World& w, const std::function<void()>& local) {
  cli::Failure failure{cli::exit_code::success, {}};
  try {
    local();
  } catch (const std::exception&) {
    failure = cli::current_failure();
  }
  int first = failure.exit_code != cli::exit_code::success ? w.rank : w.size;
  MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (first == w.size) return;
  int length = static_cast<int>(failure.message.size());
  MPI_Bcast(&failure.exit_code, 1, MPI_INT, first, MPI_COMM_WORLD);
  MPI_Bcast(&length, 1, MPI_INT, first, MPI_COMM_WORLD);
  failure.message.resize(static_cast<size_t>(length));
  MPI_Bcast(failure.message.data(), length, MPI_CHAR, first, MPI_COMM_WORLD);
  cli::throw_failure(failure);
}

std::vector<std::vector<std::uint8_t>> all_gather(const std::vector<std::uint8_t>& mine, const World& w) {
  const int n = static_cast<int>(mine.size());
  std::vector<int> sizes(static_cast<size_t>(w.size)), offsets(static_cast<size_t>(w.size), 0);
  MPI_Allgather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, MPI_COMM_WORLD);
  for (int r = 1; r < w.size; ++r) offsets[r] = offsets[r - 1] + sizes[r - 1];
  std::vector<std::uint8_t> all(static_cast<size_t>(offsets.back() + sizes.back()));
  MPI_Allgatherv(mine.data(), n, MPI_BYTE, all.data(), sizes.data(), offsets.data(), MPI_BYTE, MPI_COMM_WORLD);
  std::vector<std::vector<std::uint8_t>> out;
  out.reserve(static_cast<size_t>(w.size));
  for (int r = 0; r < w.size; ++r) out.emplace_back(all.begin() + offsets[r], all.begin() + offsets[r] + sizes[r]);
  return out;
}

index_t even_split(index_t n, int part, const World& w) { return n * part / w.size; }

Share read_share(const std::string& path, const char* what, const World& w, const RowSplit& split,
                 io::Precision precision) {
  Share s;
  agreed(w, [&] {
    io::NpyRowReader reader(path);
    s.n = reader.rows(), s.d = reader.cols();
    s.begin = split(s.n, w.rank);
    s.rows = split(s.n, w.rank + 1) - s.begin;
    s.type = precision == io::Precision::keep_16_bit ? reader.element_type() : ElementType::f32;
    const io::NpyHeader header = io::read_npy_header(path);
    const io::DType mappable = s.type == ElementType::f16 ? io::DType::f16 : io::DType::f32;
    if (header.layout.dtype == mappable && !header.layout.big_endian && !header.layout.fortran_order)
      s.mapped = io::load_npy(path, precision);
    if (s.mapped.mapped()) {
      require(
          s.mapped.ndim() == 2 && s.mapped.dim(0) == s.n && s.mapped.dim(1) == s.d && s.mapped.element_type() == s.type,
          path + ": the file changed while it was being opened");
      s.first = s.type == ElementType::f16 ? static_cast<const void*>(s.mapped.data_as<Half>() + s.begin * s.d)
                                           : static_cast<const void*>(s.mapped.data() + s.begin * s.d);
    } else if (s.type == ElementType::f16) {
      s.mapped = io::FloatTensor();
      s.copied_half.resize(static_cast<size_t>(s.rows * s.d));
      reader.read(s.begin, s.rows, s.copied_half.data());
      s.first = s.copied_half.data();
    } else {
      s.mapped = io::FloatTensor();
      s.copied.resize(static_cast<size_t>(s.rows * s.d));
      reader.read(s.begin, s.rows, s.copied.data());
      s.first = s.copied.data();
    }
    s.with_view([&](auto rows) { require_finite_rows(rows, what, s.begin); });
  });
  return s;
}

GramSummary global_summary(const Share& share, const World& w) {
  GramSummary mine(share.d, share.begin);
  share.with_view([&](auto rows) { mine.add(rows); });
  const auto parts = all_gather(mine.to_bytes(), w);
  GramSummary total = GramSummary::from_bytes(parts[0].data(), parts[0].size());
  for (int r = 1; r < w.size; ++r) total.merge(GramSummary::from_bytes(parts[r].data(), parts[r].size()));
  return total;
}

}  // namespace levattn::mpi
