// libFuzzer harness: the .npy reader (header v1/v2/v3, every dtype and byte order, C and Fortran
// order, the body against the header) on arbitrary bytes. Any outcome but a tensor or
// levattn::Error — a crash, a sanitizer report, another exception, a hang — is a finding.
#include <cstddef>
#include <cstdint>

#include "input_file.hpp"
#include "levattn/core/error.hpp"
#include "levattn/io/npy.hpp"
#include "levattn/io/tensor.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const std::string path = levattn::fuzz::input_file(bytes, size, "in.npy");
  try {
    levattn::io::read_npy_header(path);
  } catch (const levattn::Error&) {}
  try {
    const levattn::io::FloatTensor t = levattn::io::load_float_tensor(path);
    volatile float sink = levattn::fuzz::touch(t.data(), static_cast<std::size_t>(t.size()));
    (void)sink;
  } catch (const levattn::Error&) {}
  return 0;
}
