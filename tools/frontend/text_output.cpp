#include "text_output.hpp"

#include "levattn/core/error.hpp"

namespace levattn::cli {

TextOutput::TextOutput(const std::string& path) {
  if (!path.empty()) file_.emplace(path);
}

std::FILE* TextOutput::stream() { return file_ ? file_->stream() : stdout; }

void TextOutput::finish(const std::string& what) {
  if (file_) {
    file_->commit();
  } else if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    throw Error(ErrorKind::failure, "writing " + what + " to standard output failed");
  }
}

}  // namespace levattn::cli
