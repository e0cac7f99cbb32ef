// levattn-mpi — the levattn commands select and heavy over MPI ranks, with the CLI's arguments:
//   mpirun -np P levattn-mpi select --keys K.npy (--eps E | --top-k K) --output U.npy [--json]
//   mpirun -np P levattn-mpi heavy --queries Q.npy --keys K.npy --eps E [--output H.csv] [--json]
// Each rank reads its own rows of the files; the output is the bytes the levattn command writes
// (cmd_select.cpp, cmd_heavy.cpp say how). Exit codes as levattn's (tools/frontend/exit_codes.hpp).
#include <mpi.h>

#include <exception>

#include "commands.hpp"
#include "exit_codes.hpp"
#include "levattn/io/signal_cleanup.hpp"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  levattn::io::install_signal_cleanup("levattn-mpi");
  int code = levattn::cli::exit_code::success;
  try {
    code = levattn::mpi::run(argc, argv);
  } catch (const std::exception&) {
    const levattn::cli::Failure failure = levattn::cli::current_failure();
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    code = rank == 0 ? levattn::cli::report_failure("levattn-mpi", failure) : failure.exit_code;
  }
  MPI_Finalize();
  return code;
}
