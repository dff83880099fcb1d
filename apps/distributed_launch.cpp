#include "apps/distributed_launch.h"

#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "dist/mpi_communicator.h"
#include "framework/communicator.h"
#include "train/distributed.h"

namespace inq {

void add_distributed_flag(CLI::App* cmd, bool& distributed) {
  cmd->add_flag("--distributed", distributed,
                "Join an MPI job even without a launcher's environment (mpirun and srun are detected; alone, the "
                "process is a job of one rank)");
}

std::vector<std::unique_ptr<TrainerHook>> distributed_hooks(TrainConfig& config, bool distributed) {
  std::vector<std::unique_ptr<TrainerHook>> hooks;
  if (!distributed && !launched_by_mpi()) return hooks;
  if (process_communicator().size() == 1 && dynamic_cast<SingleProcessCommunicator*>(&process_communicator()))
    set_process_communicator(make_mpi_communicator());
  Communicator& comm = process_communicator();
  if (config.run.threads == 0 && comm.local_size() > 1) {
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    config.run.threads = std::max(1, cores / comm.local_size());
  }
  hooks.push_back(std::make_unique<DistributedHook>(comm, config.run.sync_bn));
  return hooks;
}

std::string error_origin() {
  const Communicator& comm = process_communicator();
  if (comm.size() == 1) return "";
  return fmt::format("rank {} of {}: ", comm.rank(), comm.size());
}

void abort_other_ranks(int code) {
  Communicator& comm = process_communicator();
  if (comm.size() > 1) comm.abort(code);
}

}  // namespace inq
