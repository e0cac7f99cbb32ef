// levattn-mpi — the levattn commands select and heavy over MPI ranks, with the CLI's arguments:
//   mpirun -np P levattn-mpi select --keys K.npy (--eps E | --top-k K) --output U.npy [--json]
// Rank r reads rows [n·r/P, n·(r+1)/P) of K; one MPI_Allgatherv of the ranks' Gram summaries lets
// every rank merge them, in rank order, into the single-process summary bit for bit (gram.hpp:
// consecutive parts merge exactly); each rank scores its own keys with the identical scorer; rank
// 0 gathers the result and writes it atomically. Output: the bytes `levattn select` writes.
#include <mpi.h>

#include <cstdio>
#include <exception>
#include <new>

#include "mpi_select.hpp"

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
