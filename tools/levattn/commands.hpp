// The levattn subcommands. Each add_* registers a subcommand on `app` and returns it with the
// function that runs it once the command line has been parsed; that function returns the exit
// code and lets levattn::Error escape (main maps it to exit codes 3 and 1).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace levattn::cli {

struct Command {
  CLI::App* app;             // the registered subcommand
  std::function<int()> run;  // runs it after parsing; returns the exit code
};

Command add_scores_command(CLI::App& app);
Command add_select_command(CLI::App& app);
Command add_heavy_command(CLI::App& app);
Command add_attend_command(CLI::App& app);
Command add_stream_command(CLI::App& app);
Command add_eval_command(CLI::App& app);
Command add_press_command(CLI::App& app);
Command add_planted_command(CLI::App& app);
Command add_demo_command(CLI::App& app);

}  // namespace levattn::cli
