// levattn — command-line front end (run.hpp: exit codes and messages). Signals:
// io/signal_cleanup.hpp; the address-space check before main: tools/frontend/address_space.cpp.
#include "levattn/io/signal_cleanup.hpp"
#include "run.hpp"

int main(int argc, char** argv) {
  levattn::io::install_signal_cleanup("levattn");
  return levattn::cli::run_levattn(argc, argv);
}
