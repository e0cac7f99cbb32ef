// levattn-mpi — the levattn commands select and heavy over MPI ranks, with the CLI's arguments:
//   mpirun -np P levattn-mpi select --keys K.npy (--eps E | --top-k K) --output U.npy [--json]
//   mpirun -np P levattn-mpi heavy --queries Q.npy --keys K.npy --eps E [--output H.csv] [--json]
// Each rank reads its own rows of the files; the output is the bytes the levattn command writes
// (cmd_select.cpp, cmd_heavy.cpp say how). Exit codes as levattn's: 2 usage, 3 bad input, 1 failure.
#include <mpi.h>

#include <cstdio>
#include <exception>
#include <new>

#include "commands.hpp"
#include "levattn/core/error.hpp"
#include "levattn/io/signal_cleanup.hpp"
#include "report.hpp"

namespace {

int report(int code, const char* message) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) std::fprintf(stderr, "levattn-mpi: error: %s\n", message);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  levattn::io::install_signal_cleanup("levattn-mpi");
  int code = 0;
  try {
    code = levattn::mpi::run(argc, argv);
  } catch (const levattn::cli::UsageError& e) {
    code = report(2, e.what());
  } catch (const levattn::Error& e) {
    code = report(e.kind() == levattn::ErrorKind::bad_input ? 3 : 1, e.what());
  } catch (const std::bad_alloc&) {
    code = report(1, "out of memory");
  } catch (const std::exception& e) {
    code = report(1, e.what());
  }
  MPI_Finalize();
  return code;
}
