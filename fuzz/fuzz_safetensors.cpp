// libFuzzer harness: the .safetensors reader (the JSON header, offsets, dtypes, shapes) and the
// FILE:NAME selection. The input's first line (up to 64 bytes) is the tensor name asked for —
// empty: the file's only tensor — and the rest is the file.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "input_file.hpp"
#include "levattn/core/error.hpp"
#include "levattn/io/safetensors.hpp"
#include "levattn/io/tensor.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const void* newline = std::memchr(bytes, '\n', size < 65 ? size : 65);
  const std::size_t name_length = newline != nullptr ? static_cast<const std::uint8_t*>(newline) - bytes : 0;
  const std::size_t skip = newline != nullptr ? name_length + 1 : 0;
  const std::string name(reinterpret_cast<const char*>(bytes), name_length);
  const std::string path = levattn::fuzz::input_file(bytes + skip, size - skip, "in.safetensors");
  try {
    levattn::io::read_safetensors_header(path);
  } catch (const levattn::Error&) {}
  try {
    const levattn::io::FloatTensor t = levattn::io::load_float_tensor(name.empty() ? path : path + ":" + name);
    volatile float sink = levattn::fuzz::touch(t.data(), static_cast<std::size_t>(t.size()));
    (void)sink;
  } catch (const levattn::Error&) {}
  return 0;
}
