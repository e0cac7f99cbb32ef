// .safetensors files: an 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {..}}
// then the data buffer; offsets are relative to the start of the buffer.
//
// Reading validates every entry (N within the file, JSON well-formed, a known dtype, offsets inside
// the buffer, end - begin == product(shape) * itemsize) before any tensor is touched. Any dtype of
// the format is listed; F16, BF16, F32 and F64 load as float tensors. Writing supports F16, BF16,
// F32, F64 and I64.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "levattn/io/tensor.hpp"

namespace levattn::io {

// One tensor as the header describes it.
struct SafetensorsEntry {
  std::string name;
  std::string dtype_tag;       // as in the file: "F32", "BF16", "I32", ...
  std::optional<DType> dtype;  // set when the tag is one of DType's
  std::vector<index_t> shape;
  std::uint64_t begin = 0;  // data_offsets, relative to the data buffer
  std::uint64_t end = 0;
};

// A validated header.
struct SafetensorsHeader {
  std::vector<SafetensorsEntry> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;
  std::uint64_t data_offset = 0;  // bytes from the start of the file to the data buffer (8 + N)
};

// Reads and validates the header of `path`. Throws Error{bad_input} naming `path` and the problem.
SafetensorsHeader read_safetensors_header(const std::string& path);

// Loads tensor `name` of `path` as a float tensor; an empty `name` means "the only tensor" and is
// an error when the file holds several (the message lists them). Zero-copy for 4-byte-aligned F32
// (and 2-byte-aligned F16/BF16 under Precision::keep_16_bit). An unknown name is an error listing
// the available names.
FloatTensor load_safetensors(const std::string& path, const std::string& name, Precision precision = Precision::f32);

// A tensor to write: `data` holds product(shape) elements of `dtype`, C order, little-endian.
struct TensorRef {
  std::string name;
  DType dtype;
  std::vector<index_t> shape;
  const void* data;
};

// Writes `tensors` (names unique, non-empty, not "__metadata__") and string `metadata` atomically.
// The JSON header is padded with spaces to a multiple of 8 bytes, and tensors are laid out by
// decreasing element size so that each starts at a multiple of its own element size.
// Throws Error{bad_input} for invalid names, shapes or null data, Error{failure} on write errors.
void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace levattn::io
