#include "levattn/io/npy_rows.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace levattn::io {

NpyRowReader::NpyRowReader(const std::string& path) : path_(path), header_(read_npy_header(path)) {
  const StoredLayout& layout = header_.layout;
  require(layout.shape.size() == 2, path + ": expected a 2-D (n, d) array, got shape " + format_shape(layout.shape));
  require(layout.dtype != DType::i64, path + ": expected a float array, got int64");
  require(!layout.fortran_order || layout.shape[0] == 1 || layout.shape[1] == 1,
          path + ": a Fortran-order array cannot be read by rows; save it in C order");
  rows_ = layout.shape[0];
  cols_ = layout.shape[1];
  require(rows_ >= 1 && cols_ >= 1,
          path + ": need at least one row and one column, got shape " + format_shape(layout.shape));
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw Error(ErrorKind::bad_input, path + ": cannot open: " + std::strerror(errno));
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
}

NpyRowReader::~NpyRowReader() {
  if (fd_ >= 0) ::close(fd_);
}

void NpyRowReader::read(index_t begin, index_t count, float* out) {
  require(begin >= 0 && count >= 0 && begin <= rows_ - count,
          path_ + ": rows [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
              ") lie outside the array of " + std::to_string(rows_) + " rows");
  if (count == 0) return;
  const StoredLayout& layout = header_.layout;
  const std::size_t item = dtype_size(layout.dtype);
  const std::size_t nbytes = static_cast<std::size_t>(count * cols_) * item;
  const bool direct = layout.dtype == DType::f32 && !layout.big_endian;
  std::byte* target = reinterpret_cast<std::byte*>(out);
  if (!direct) {
    scratch_.resize(nbytes);
    target = scratch_.data();
  }
  off_t offset = static_cast<off_t>(header_.data_offset + static_cast<std::uint64_t>(begin * cols_) * item);
  for (std::size_t done = 0; done < nbytes;) {
    const ssize_t got = ::pread(fd_, target + done, nbytes - done, offset + static_cast<off_t>(done));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorKind::failure, path_ + ": read error: " + std::strerror(errno));
    }
    require(got > 0, path_ + ": the file ended early (was it truncated while being read?)");
    done += static_cast<std::size_t>(got);
  }
  if (direct) return;
  StoredLayout rows_layout = layout;
  rows_layout.shape = {count, cols_};
  const FloatTensor t = decode_float_tensor(target, nbytes, nullptr, rows_layout, path_);
  std::memcpy(out, t.data(), static_cast<std::size_t>(count * cols_) * sizeof(float));
}

}  // namespace levattn::io
