// All-or-nothing file output: write to a temporary file next to the target, rename it over the
// target on commit(). Until commit() succeeds the target is untouched; if commit() is never reached
// (an exception, an early return) the temporary is removed. The file gets the permissions a plain
// fopen would give it (0666 minus the umask), or the existing target's permissions.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

namespace levattn::io {

class AtomicFile {
 public:
  // Creates "<dir>/.<name>.tmp.XXXXXX" beside `path`. Throws Error{failure} if it cannot.
  explicit AtomicFile(const std::string& path);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  // If not committed: closes and removes the temporary. Never throws.
  ~AtomicFile();

  // The temporary's buffered stream, for callers that format output themselves; commit() checks it
  // for errors. Null after commit().
  std::FILE* stream() { return file_; }
  // Appends n bytes. Throws Error{failure} naming the target on a short write (e.g. disk full).
  void write(const void* bytes, std::size_t n);
  // Flushes, fsyncs, closes and renames the temporary onto the target. Throws Error{failure} on any
  // error (the temporary is then removed by the destructor). Call at most once.
  void commit();

  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void fail(const std::string& what, int err) const;

  std::string path_;
  std::string temp_path_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
  int temporary_slot_ = -1;  // in the io layer's table of unfinished temporaries (signal_cleanup.hpp)
};

}  // namespace levattn::io
