#include <cstdio>

#include "collective.hpp"
#include "commands.hpp"

namespace levattn::mpi {

int run(int argc, char** argv) {
  const World w;
  CLI::App app("levattn-mpi — levattn select and heavy over MPI ranks (same arguments as levattn)", "levattn-mpi");
  app.require_subcommand(1);
  const Command commands[] = {add_select_command(app), add_heavy_command(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (w.rank != 0) return e.get_exit_code() == 0 ? 0 : 2;
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "levattn-mpi: error: %s\n", e.what());
    return 2;
  }
  for (const Command& c : commands)
    if (c.app->parsed()) return c.run(w);
  return 2;  // unreachable: require_subcommand(1)
}

}  // namespace levattn::mpi
