// Reading a 2-D .npy array a range of rows at a time, never the whole file: for inputs larger
// than memory (levattn stream) and for MPI ranks that each read their own share.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "levattn/core/half.hpp"
#include "levattn/io/npy.hpp"
#include "levattn/io/tensor.hpp"

namespace levattn::io {

class NpyRowReader {
 public:
  // Opens `path` and validates its header against the file size (see read_npy_header). Throws
  // Error{bad_input} naming the file unless it holds a 2-D C-order array of a float dtype
  // ('<f2', '<f4', '<f8' or big-endian forms) with both dimensions ≥ 1.
  explicit NpyRowReader(const std::string& path);
  NpyRowReader(const NpyRowReader&) = delete;
  NpyRowReader& operator=(const NpyRowReader&) = delete;
  ~NpyRowReader();

  index_t rows() const { return rows_; }
  index_t cols() const { return cols_; }
  const std::string& path() const { return path_; }

  // The element type read(Half*) gives: f16 for a float16 ('<f2' or '>f2') file, else f32.
  ElementType element_type() const;

  // Rows [begin, begin + count) as float32 into out (count × cols floats), with pread: memory use
  // is the caller's buffer, whatever the file size. Throws Error{bad_input} for a range outside
  // the array or a file that shrank, Error{failure} on a read error.
  void read(index_t begin, index_t count, float* out);
  // The same rows of a float16 file as they are (count × cols Halfs, byte-swapped if stored
  // big-endian): no float32 conversion. Error{bad_input} unless element_type() is f16.
  void read(index_t begin, index_t count, Half* out);

 private:
  // Error{bad_input} unless [begin, begin + count) lies within the rows.
  void check_rows(index_t begin, index_t count) const;
  // The stored bytes of rows [begin, begin + count) into target (count × cols items of the file's dtype).
  void read_bytes(index_t begin, index_t count, std::byte* target);
  // Converts the stored bytes in scratch_ of count rows to the tensor they hold (f16 kept 16-bit).
  FloatTensor decode_scratch(index_t count, Precision precision) const;

  std::string path_;
  int fd_ = -1;
  NpyHeader header_;
  index_t rows_ = 0, cols_ = 0;
  std::vector<std::byte> scratch_;  // non-f32 input before conversion
};

}  // namespace levattn::io
