// levattn::Error — the one exception type the library throws.
//
// Every failure carries a kind so that front ends can map it to an exit code without parsing
// messages: bad_input is the caller's data or parameters (malformed file, shape mismatch, NaN/Inf,
// eps outside (0,1], k > n, ...); failure is anything else (I/O on output, resources, internal).
#pragma once

#include <stdexcept>
#include <string>

namespace levattn {

enum class ErrorKind {
  bad_input,  // the input data or a parameter is wrong; the caller can fix it
  failure,    // the environment or the library failed (write error, out of memory, bug)
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

// Throws Error{bad_input, message} unless `condition` holds. A std::string message is built on
// every call: inside per-row or per-element loops, test and throw instead. A string literal costs
// nothing until it is thrown (the const char* overload), so views built in loops stay cheap.
inline void require(bool condition, const std::string& message) {
  if (!condition) throw Error(ErrorKind::bad_input, message);
}
inline void require(bool condition, const char* message) {
  if (!condition) throw Error(ErrorKind::bad_input, message);
}

}  // namespace levattn
