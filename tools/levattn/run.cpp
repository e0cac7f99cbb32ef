#include "run.hpp"

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "commands.hpp"
#include "exit_codes.hpp"
#include "levattn/version.hpp"

namespace levattn::cli {

int run_levattn(int argc, char** argv) {
  CLI::App app("levattn — heavy attention with universal sets (leverage scores), exact attention and LevAttention",
               "levattn");
  app.set_version_flag("--version", std::string("levattn ") + version_string());
  app.require_subcommand(1);
  const std::vector<Command> commands = {add_scores_command(app), add_select_command(app),  add_heavy_command(app),
                                         add_attend_command(app), add_stream_command(app),  add_eval_command(app),
                                         add_press_command(app),  add_planted_command(app), add_demo_command(app)};

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "levattn: error: %s\nRun 'levattn --help' or 'levattn <command> --help'.\n", e.what());
    return exit_code::usage;
  }

  try {
    for (const Command& command : commands)
      if (command.app->parsed()) return command.run();
    return report_failure("levattn", {exit_code::usage, "no command given"});
  } catch (const std::exception&) {
    return report_failure("levattn", current_failure());
  }
}

}  // namespace levattn::cli
