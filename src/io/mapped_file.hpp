// RAII read-only memory map of a whole file. Private to the io layer.
//
// The file descriptor is closed as soon as the map exists; the map lives as long as the last
// shared_ptr to it. An empty file is valid and has data() == nullptr, size() == 0 (mmap cannot map
// zero bytes). The map is MAP_PRIVATE: if another process truncates the file while it is mapped,
// reading the lost pages raises SIGBUS — the usual limit of memory-mapped I/O; the map is recorded
// (open_files.hpp) so that a program's SIGBUS handler can name the file (signal_cleanup.hpp).
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "io/open_files.hpp"
#include "levattn/core/error.hpp"

namespace levattn::io {

class MappedFile {
 public:
  // Maps all of `path`. Throws Error{bad_input} naming the path when it cannot be opened, is not a
  // regular file, or cannot be mapped; Error{failure} when the process has no memory for the map.
  static std::shared_ptr<const MappedFile> open(const std::string& path) {
    // O_NONBLOCK: opening a FIFO by mistake must fail below, not hang; it does nothing for files.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      fail(path, std::string("cannot stat: ") + std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      fail(path, "not a regular file");
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    void* base = nullptr;
    if (size > 0) {
      base = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (base == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        if (err == ENOMEM)  // the process's memory, not the file, is at fault
          throw Error(ErrorKind::failure, path + ": out of memory mapping its " + std::to_string(size) +
                                              " bytes (an address-space limit, ulimit -v, or the machine's memory)");
        fail(path, std::string("cannot map: ") + std::strerror(err));
      }
    }
    ::close(fd);
    return std::shared_ptr<const MappedFile>(new MappedFile(path, base, size));
  }

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    detail::forget_map(slot_);
    if (base_ != nullptr) ::munmap(base_, size_);
  }

  const std::byte* data() const { return static_cast<const std::byte*>(base_); }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, void* base, std::size_t size)
      : path_(std::move(path)), base_(base), size_(size), slot_(detail::record_map(base, size, path_)) {}

  [[noreturn]] static void fail(const std::string& path, const std::string& problem) {
    throw Error(ErrorKind::bad_input, path + ": " + problem);
  }

  std::string path_;
  void* base_;
  std::size_t size_;
  int slot_;  // in the table of mapped inputs, or −1
};

}  // namespace levattn::io
