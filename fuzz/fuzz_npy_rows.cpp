// libFuzzer harness: the row-block reader of `levattn stream` (NpyRowReader): the header checks,
// then every row read in blocks. The input's first byte sets the block size (1 … 256 rows); the
// rest is the file.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "input_file.hpp"
#include "levattn/core/error.hpp"
#include "levattn/io/npy_rows.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  if (size == 0) return 0;
  const levattn::index_t block = static_cast<levattn::index_t>(bytes[0]) + 1;
  const std::string path = levattn::fuzz::input_file(bytes + 1, size - 1, "rows.npy");
  try {
    levattn::io::NpyRowReader reader(path);
    std::vector<float> buffer(static_cast<std::size_t>(block * reader.cols()));
    float sum = 0.0f;
    for (levattn::index_t r = 0; r < reader.rows(); r += block) {
      const levattn::index_t count = reader.rows() - r < block ? reader.rows() - r : block;
      reader.read(r, count, buffer.data());
      sum += levattn::fuzz::touch(buffer.data(), static_cast<std::size_t>(count * reader.cols()));
    }
    volatile float sink = sum;
    (void)sink;
  } catch (const levattn::Error&) {}
  return 0;
}
