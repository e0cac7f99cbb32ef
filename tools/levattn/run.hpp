// The levattn command line as a function: parses argv, runs the chosen command and maps what it
// throws to an exit code (tools/frontend/exit_codes.hpp: 0 success, 2 usage, 3 bad input data or
// parameters, 1 anything else), printing "levattn: error: …" on stderr.
// main() installs the signal handling (io/signal_cleanup.hpp) and calls it; the fuzz harness
// fuzz/fuzz_cli.cpp calls it in-process.
#pragma once

namespace levattn::cli {

// argv[0] is the program name; argv[argc] need not be null. Returns the exit code.
int run_levattn(int argc, char** argv);

}  // namespace levattn::cli
