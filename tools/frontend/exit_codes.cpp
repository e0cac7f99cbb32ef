#include "exit_codes.hpp"

#include <cstdio>
#include <exception>
#include <new>

#include "levattn/core/error.hpp"

namespace levattn::cli {

Failure current_failure() {
  try {
    throw;
  } catch (const UsageError& e) {
    return {exit_code::usage, e.what()};
  } catch (const Error& e) {
    return {e.kind() == ErrorKind::bad_input ? exit_code::bad_input : exit_code::failure, e.what()};
  } catch (const std::bad_alloc&) {
    return {exit_code::failure, "out of memory"};
  } catch (const std::exception& e) {
    return {exit_code::failure, e.what()};
  }
}

void throw_failure(const Failure& f) {
  if (f.exit_code == exit_code::usage) throw UsageError(f.message);
  throw Error(f.exit_code == exit_code::bad_input ? ErrorKind::bad_input : ErrorKind::failure, f.message);
}

int report_failure(const char* program, const Failure& f) {
  std::fprintf(stderr, "%s: error: %s\n", program, f.message.c_str());
  return f.exit_code;
}

}  // namespace levattn::cli
