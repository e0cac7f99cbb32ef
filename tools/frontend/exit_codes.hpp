// The exit codes of levattn and levattn-mpi, in one place, and the mapping from what a command
// throws to a code and a message:
//   0 success; 2 usage (a CLI parse error, or UsageError: a command line that parses but asks for
//   something impossible); 3 bad input data or parameters (levattn::Error of kind bad_input, which
//   includes an input file that changes while being read); 1 anything else (Error of kind failure,
//   std::bad_alloc as "out of memory", any other std::exception).
#pragma once

#include <stdexcept>
#include <string>

namespace levattn::cli {

namespace exit_code {
inline constexpr int success = 0;
inline constexpr int failure = 1;
inline constexpr int usage = 2;
inline constexpr int bad_input = 3;
}  // namespace exit_code

// A command line that parses but asks for something impossible (exit code 2).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An exit code with the message that explains it.
struct Failure {
  int exit_code = exit_code::failure;
  std::string message;
};

// The Failure of the std::exception being handled (by the table above). Call it only inside a
// `catch (const std::exception&)` handler; any other exception in flight is rethrown.
Failure current_failure();

// Throws the exception current_failure() maps to `f`: UsageError for exit code 2, Error{bad_input}
// for 3, Error{failure} otherwise (so a failure agreed across MPI ranks keeps its exit code).
[[noreturn]] void throw_failure(const Failure& f);

// Prints "<program>: error: <message>" on stderr and returns the exit code.
int report_failure(const char* program, const Failure& f);

}  // namespace levattn::cli
