#include "levattn/io/atomic_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "io/open_files.hpp"
#include "levattn/core/error.hpp"

namespace levattn::io {
namespace {

// The process umask, read without changing it (umask(2) can only be read by setting it, which
// would race with other threads creating files). Falls back to the common 022.
mode_t current_umask() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Umask:", 0) == 0) return static_cast<mode_t>(std::strtoul(line.c_str() + 6, nullptr, 8));
  }
  return 022;
}

// Permissions for the finished file: the existing target's, else what open(..., 0666) would give.
mode_t target_mode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return st.st_mode & 07777;
  return 0666 & ~current_umask();
}

}  // namespace

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  const std::filesystem::path target(path);
  const std::string name = target.filename().string();
  if (name.empty() || name == "." || name == "..") fail("not a file name", EINVAL);
  temp_path_ = (target.parent_path() / ("." + name + ".tmp.XXXXXX")).string();
  std::vector<char> pattern(temp_path_.begin(), temp_path_.end());
  pattern.push_back('\0');
  // A throwing constructor gets no destructor call, so failures below clean up themselves.
  const int fd = ::mkstemp(pattern.data());
  if (fd < 0) {
    const int err = errno;  // read before building the message, which may allocate
    fail("cannot create a temporary file beside it", err);
  }
  temp_path_ = pattern.data();
  temporary_slot_ = detail::record_temporary(temp_path_);
  if (::fchmod(fd, target_mode(path)) != 0 || (file_ = ::fdopen(fd, "wb")) == nullptr) {
    const int err = errno;
    ::close(fd);
    ::unlink(temp_path_.c_str());
    detail::forget_temporary(temporary_slot_);
    temporary_slot_ = -1;
    fail("cannot open the temporary file " + temp_path_, err);
  }
}

AtomicFile::~AtomicFile() {
  if (file_ != nullptr) std::fclose(file_);
  if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
  detail::forget_temporary(temporary_slot_);
}

void AtomicFile::write(const void* bytes, std::size_t n) {
  if (file_ == nullptr) fail("write after commit", EINVAL);
  if (n > 0 && std::fwrite(bytes, 1, n, file_) != n) {
    const int err = errno;
    fail("write failed", err);
  }
}

void AtomicFile::commit() {
  if (file_ == nullptr) fail("commit called twice", EINVAL);
  // Each errno is saved right after the call that set it, before a message is built.
  if (std::ferror(file_) != 0) {  // an earlier formatted write failed: flushing again tells why
    errno = 0;
    std::fflush(file_);
    const int err = errno;
    fail("write failed", err != 0 ? err : EIO);
  }
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0) {
    const int err = errno;
    fail("write failed", err);
  }
  const int closed = std::fclose(file_);
  const int close_err = errno;
  file_ = nullptr;
  if (closed != 0) fail("close failed", close_err);
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    fail("cannot rename " + temp_path_ + " onto it", err);
  }
  committed_ = true;
  detail::forget_temporary(temporary_slot_);  // after the rename: a signal before it removes the temporary
  temporary_slot_ = -1;
}

void AtomicFile::fail(const std::string& what, int err) const {
  throw Error(ErrorKind::failure, path_ + ": " + what + ": " + std::strerror(err));
}

}  // namespace levattn::io
