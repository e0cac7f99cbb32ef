// NumPy .npy files: reading (versions 1.0, 2.0, 3.0) and writing (version 1.0, or 2.0 when the
// header needs it).
//
// Readable element types: '<f2', '<f4', '<f8', '<i8' and their big-endian forms '>f2', '>f4',
// '>f8', '>i8' (big-endian data is byte-swapped while converting; it is never zero-copy).
// Loading as float accepts the float types only. Both C and Fortran order are read; a Fortran-order array is
// transposed into C order. The header is parsed as the Python dict literal NumPy writes (keys in
// any order, any spacing, optional trailing comma) and checked against the real file size: a data
// section shorter or longer than the header's shape says is an error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "levattn/io/tensor.hpp"

namespace levattn::io {

// What a validated .npy header says.
struct NpyHeader {
  int major_version = 1;  // 1, 2 or 3
  StoredLayout layout;
  std::uint64_t data_offset = 0;  // bytes from the start of the file to the first element
};

// Reads and validates the header of `path`: magic, version, dict, dtype, shape, and that the file
// holds exactly element_count * itemsize bytes after the header. Throws Error{bad_input} naming
// `path` otherwise.
NpyHeader read_npy_header(const std::string& path);

// Loads `path` as a float tensor (see load_float_tensor); zero-copy for little-endian C-order
// '<f4' (and '<f2' under Precision::keep_16_bit).
FloatTensor load_npy(const std::string& path, Precision precision = Precision::f32);

// Writes `data` (product(shape) elements in C order) as a version 1.0 .npy file ('<f8', '<f4' or
// '<i8', fortran_order False) whose data starts at a multiple of 64 bytes; version 2.0 only if the
// header exceeds 65535 bytes. Atomic: the file appears complete or not at all. Throws
// Error{bad_input} for a negative or overflowing shape or null data with a non-empty shape, and
// Error{failure} when the file cannot be written.
void write_npy(const std::string& path, const double* data, const std::vector<index_t>& shape);
void write_npy(const std::string& path, const float* data, const std::vector<index_t>& shape);
void write_npy(const std::string& path, const std::int64_t* data, const std::vector<index_t>& shape);

}  // namespace levattn::io
