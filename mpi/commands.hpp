// The levattn-mpi commands, each with the arguments of the levattn command of the same name.
// Every rank runs them and returns the same exit code; errors found on any rank are agreed on
// before the next collective (collective.hpp), so that no rank waits forever for one that failed.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace levattn::mpi {

struct World;

// A subcommand and what runs it once the command line is parsed.
struct Command {
  CLI::App* app;
  std::function<int(const World&)> run;
};

Command add_select_command(CLI::App& app);
Command add_heavy_command(CLI::App& app);

// Parses the command line (identically on every rank) and runs the chosen command.
int run(int argc, char** argv);

}  // namespace levattn::mpi
