// The levattn-mpi commands. run() parses the command line (identically on every rank) and runs
// it; every rank returns the same exit code. Errors found on any rank are agreed on before the
// next collective, so that no rank waits forever for one that failed.
#pragma once

#include "levattn/core/error.hpp"
#include "report.hpp"

namespace levattn::mpi {

int run(int argc, char** argv);

}  // namespace levattn::mpi
