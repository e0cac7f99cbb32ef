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

ElementType NpyRowReader::element_type() const {
  return header_.layout.dtype == DType::f16 ? ElementType::f16 : ElementType::f32;
}

void NpyRowReader::check_rows(index_t begin, index_t count) const {
  require(begin >= 0 && count >= 0 && begin <= rows_ - count,
          path_ + ": rows [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
              ") lie outside the array of " + std::to_string(rows_) + " rows");
}

void NpyRowReader::read_bytes(index_t begin, index_t count, std::byte* target) {
  const std::size_t item = dtype_size(header_.layout.dtype);
  const std::size_t nbytes = static_cast<std::size_t>(count * cols_) * item;
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
}

FloatTensor NpyRowReader::decode_scratch(index_t count, Precision precision) const {
  StoredLayout rows_layout = header_.layout;
  rows_layout.shape = {count, cols_};
  return decode_float_tensor(scratch_.data(), scratch_.size(), nullptr, rows_layout, path_, precision);
}

void NpyRowReader::read(index_t begin, index_t count, float* out) {
  check_rows(begin, count);
  if (count == 0) return;
  const StoredLayout& layout = header_.layout;
  if (layout.dtype == DType::f32 && !layout.big_endian) {
    read_bytes(begin, count, reinterpret_cast<std::byte*>(out));
    return;
  }
  scratch_.resize(static_cast<std::size_t>(count * cols_) * dtype_size(layout.dtype));
  read_bytes(begin, count, scratch_.data());
  const FloatTensor t = decode_scratch(count, Precision::f32);
  std::memcpy(out, t.data(), static_cast<std::size_t>(count * cols_) * sizeof(float));
}

void NpyRowReader::read(index_t begin, index_t count, Half* out) {
  require(element_type() == ElementType::f16,
          path_ + ": holds " + dtype_name(header_.layout.dtype) + ", not float16: read it as float32");
  check_rows(begin, count);
  if (count == 0) return;
  if (!header_.layout.big_endian) {
    read_bytes(begin, count, reinterpret_cast<std::byte*>(out));
    return;
  }
  scratch_.resize(static_cast<std::size_t>(count * cols_) * sizeof(Half));
  read_bytes(begin, count, scratch_.data());
  const FloatTensor t = decode_scratch(count, Precision::keep_16_bit);
  std::memcpy(out, t.data_as<Half>(), static_cast<std::size_t>(count * cols_) * sizeof(Half));
}

}  // namespace levattn::io
