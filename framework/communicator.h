#pragma once
// The processes of a data-parallel run, as the rest of the code sees them (docs/DISTRIBUTED.md).
// Everything above framework/ talks to other processes only through this interface, so the code
// compiles and behaves the same without MPI: a plain `inq train` uses SingleProcessCommunicator,
// whose collectives return their input. dist/mpi_communicator.h implements it over MPI.
//
// Collectives must be called by every rank in the same order (MPI's rule); the non-blocking
// all-reduce may be outstanding while blocking collectives run only on a communicator obtained
// from split_off(), which keeps the two streams from having to be ordered against each other.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace inq {

// An all-reduce in flight (Communicator::start_allreduce_sum). Call wait() before its buffer goes
// away: destroying an unfinished one does not wait (the step it belongs to was abandoned).
class PendingReduce {
 public:
  virtual ~PendingReduce() = default;
  // Lets the reduction advance (MPI progresses non-blocking collectives only inside MPI calls);
  // true once it is complete.
  virtual bool test() = 0;
  // Blocks until the reduction is complete.
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Ranks on this machine (for dividing its cores among them); 1 without MPI.
  virtual int local_size() const { return 1; }

  // Element-wise sums over every rank, in place; every rank gets the same result.
  virtual void allreduce_sum(double* data, int64_t count) = 0;
  virtual void allreduce_sum(int64_t* data, int64_t count) = 0;
  // The same, started now and finished by the returned handle; `data` must stay alive until then.
  virtual std::unique_ptr<PendingReduce> start_allreduce_sum(float* data, int64_t count) = 0;
  // Copies `count` floats from rank `root` to every rank.
  virtual void broadcast(float* data, int64_t count, int root) = 0;
  // One value per rank, in rank order.
  virtual std::vector<uint64_t> allgather(uint64_t value) = 0;
  // A second communicator over the same ranks whose collectives are independent of this one's.
  virtual std::unique_ptr<Communicator> split_off() = 0;
  // Ends every rank's process with exit status `code` (MPI_Abort); the single process just exits.
  [[noreturn]] virtual void abort(int code) = 0;
};

// One process: rank 0 of 1. The collectives leave their data as it is.
class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(double*, int64_t) override {}
  void allreduce_sum(int64_t*, int64_t) override {}
  std::unique_ptr<PendingReduce> start_allreduce_sum(float* data, int64_t count) override;
  void broadcast(float*, int64_t, int) override {}
  std::vector<uint64_t> allgather(uint64_t value) override { return {value}; }
  std::unique_ptr<Communicator> split_off() override { return std::make_unique<SingleProcessCommunicator>(); }
  [[noreturn]] void abort(int code) override;
};

// The communicator of this process: SingleProcessCommunicator unless a launcher installed another
// (apps: MPI under mpirun or --distributed).
Communicator& process_communicator();
void set_process_communicator(std::unique_ptr<Communicator> communicator);

// FNV-1a over raw bytes, chained through `hash` (the cross-rank checksums of weights and masks).
uint64_t fnv1a(const void* data, size_t bytes, uint64_t hash = 0xcbf29ce484222325ull);

}  // namespace inq
