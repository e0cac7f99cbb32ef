// Where a command writes a text output: the named file, all-or-nothing (io::AtomicFile: a reader
// never sees a partial file, and a failed run leaves none), or standard output when no file is named.
#pragma once

#include <cstdio>
#include <optional>
#include <string>

#include "levattn/io/atomic_file.hpp"

namespace levattn::cli {

class TextOutput {
 public:
  // `path` empty: standard output. Otherwise throws Error{failure} if the file cannot be created.
  explicit TextOutput(const std::string& path);

  std::FILE* stream();

  // Commits the file; or flushes standard output and throws Error{failure} "writing <what> to
  // standard output failed" if any write to it failed. Call at most once; without it, the file is
  // not written.
  void finish(const std::string& what);

 private:
  std::optional<io::AtomicFile> file_;
};

}  // namespace levattn::cli
