#pragma once
// The Communicator (framework/communicator.h) over MPI, and the decision whether a process runs
// under MPI at all. This folder is the only code that includes <mpi.h>; apps/ links it, the
// libraries below see only the interface.
#include <memory>

#include "framework/communicator.h"

namespace inq {

// Whether a launcher started this process as one rank of several: mpirun / orterun (OMPI_COMM_WORLD_SIZE),
// Slurm's srun with PMIx or PMI2 (PMIX_RANK, PMI_SIZE). A plain `inq train` has none of them and
// never initializes MPI.
bool launched_by_mpi();
// The number of processes the launcher started (OMPI_COMM_WORLD_SIZE, PMI_SIZE), read
// without initializing MPI; 1 when none says.
int launched_world_size();

// Initializes MPI (once per process; MPI_THREAD_FUNNELED: only the main thread calls MPI) and
// returns a communicator over MPI_COMM_WORLD. MPI is finalized when the last communicator built on
// it goes away. Under a launcher, or standalone (a singleton: one rank).
std::unique_ptr<Communicator> make_mpi_communicator();

}  // namespace inq
