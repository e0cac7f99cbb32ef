#include <cstdio>
#include <string>

#include "collective.hpp"
#include "commands.hpp"
#include "exit_codes.hpp"
#include "levattn/version.hpp"

namespace levattn::mpi {

int run(int argc, char** argv) {
  const World w;
  CLI::App app("levattn-mpi — levattn select and heavy over MPI ranks (same arguments as levattn)", "levattn-mpi");
  app.set_version_flag("--version", std::string("levattn-mpi ") + version_string());
  app.require_subcommand(1);
  const Command commands[] = {add_select_command(app), add_heavy_command(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (w.rank != 0) return e.get_exit_code() == 0 ? cli::exit_code::success : cli::exit_code::usage;
    if (e.get_exit_code() == 0) return app.exit(e);
    return cli::report_failure("levattn-mpi", {cli::exit_code::usage, e.what()});
  }
  for (const Command& c : commands)
    if (c.app->parsed()) return c.run(w);
  return cli::exit_code::usage;  // unreachable: require_subcommand(1)
}

}  // namespace levattn::mpi
