#include "run.hpp"

#include <cstdio>
#include <exception>
#include <new>
#include <vector>

#include "commands.hpp"
#include "report.hpp"
#include "levattn/core/error.hpp"

namespace levattn::cli {

namespace {

int fail(int code, const char* message) {
  std::fprintf(stderr, "levattn: error: %s\n", message);
  return code;
}

}  // namespace

int run_levattn(int argc, char** argv) {
  CLI::App app("levattn — heavy attention with universal sets (leverage scores), exact attention and LevAttention",
               "levattn");
  app.require_subcommand(1);
  const std::vector<Command> commands = {add_scores_command(app), add_select_command(app),
                                         add_heavy_command(app), add_attend_command(app), add_stream_command(app),
                                         add_eval_command(app),   add_press_command(app), add_planted_command(app),
                                         add_demo_command(app)};

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "levattn: error: %s\nRun 'levattn --help' or 'levattn <command> --help'.\n",
                 e.what());
    return 2;
  }

  try {
    for (const Command& command : commands)
      if (command.app->parsed()) return command.run();
    return fail(2, "no command given");
  } catch (const UsageError& e) {
    return fail(2, e.what());
  } catch (const levattn::Error& e) {
    return fail(e.kind() == levattn::ErrorKind::bad_input ? 3 : 1, e.what());
  } catch (const std::bad_alloc&) {
    return fail(1, "out of memory");
  } catch (const std::exception& e) {
    return fail(1, e.what());
  }
}

}  // namespace levattn::cli
