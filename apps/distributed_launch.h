#pragma once
// How `inq train` and `inq quantize` join a data-parallel run (docs/DISTRIBUTED.md): MPI is
// initialized only when a launcher started the process (mpirun, srun: dist/mpi_communicator.h
// launched_by_mpi) or --distributed is given; a plain run never touches MPI.
#include <CLI/CLI.hpp>

#include <memory>
#include <vector>

#include "train/train_config.h"
#include "train/trainer_hooks.h"

namespace inq {

// --distributed: initialize MPI even without a launcher's environment.
void add_distributed_flag(CLI::App* cmd, bool& distributed);

// Joins the MPI job when launched by one (or `distributed`), and then returns the hook that makes
// the Trainer data-parallel (none for one process). With --threads 0 (all cores) and several ranks
// on this machine, each rank takes an equal share of the cores instead, at least 1.
std::vector<std::unique_ptr<TrainerHook>> distributed_hooks(TrainConfig& config, bool distributed);

// Formats an error of this process: under MPI, the message names the rank ("rank 1 of 2: ...").
std::string error_origin();
// Under MPI with several ranks, ends every rank (MPI_Abort) with `code`; otherwise returns.
void abort_other_ranks(int code);

}  // namespace inq
