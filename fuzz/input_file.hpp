// The fuzz input as a file the readers can open: the bytes are written to <dir>/<name> in a
// directory of this process's own (on /dev/shm when it exists, else /tmp), overwritten every run.
// The readers memory-map and pread real files, so the harnesses hand them one.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace levattn::fuzz {

// The path of a file holding exactly `bytes`; `name` (e.g. "in.npy") fixes its extension.
inline std::string input_file(const std::uint8_t* bytes, std::size_t size, const std::string& name) {
  static const std::string dir = [] {
    char pattern[] = "/dev/shm/levattn-fuzz-XXXXXX";
    char fallback[] = "/tmp/levattn-fuzz-XXXXXX";
    const char* made = mkdtemp(pattern);
    if (made == nullptr) made = mkdtemp(fallback);
    if (made == nullptr) abort();
    return std::string(made);
  }();
  const std::string path = dir + "/" + name;
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) abort();
  for (std::size_t done = 0; done < size;) {
    const ssize_t n = write(fd, bytes + done, size - done);
    if (n <= 0) abort();
    done += static_cast<std::size_t>(n);
  }
  close(fd);
  return path;
}

// Reads every element, so that AddressSanitizer checks the whole tensor a reader handed back.
inline float touch(const float* data, std::size_t count) {
  float sum = 0.0f;
  for (std::size_t i = 0; i < count; ++i) sum += data[i];
  return sum;
}

}  // namespace levattn::fuzz
