#include "dist/mpi_communicator.h"

#include <mpi.h>

#include <climits>
#include <cstdlib>
#include <string>

#include "framework/error.h"

namespace inq {

namespace {

// MPI calls report failures through their return value once MPI_ERRORS_RETURN is set; a failed
// collective ends this rank with an error naming the call (the caller aborts the job).
void check_mpi(int status, const char* call) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(status, text, &length);
  throw Error(fmt::format("{} failed: {}", call, std::string(text, static_cast<size_t>(length))));
}

int checked_count(int64_t count) {
  INQ_CHECK(count >= 0 && count <= INT_MAX, "Given an MPI message of {} elements, expected at most {}", count, INT_MAX);
  return static_cast<int>(count);
}

// MPI is initialized by the first communicator and finalized with the last one (split_off shares it).
struct MpiSession {
  MpiSession() {
    int provided = 0;
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    INQ_CHECK(provided >= MPI_THREAD_FUNNELED,
              "Given MPI with thread support level {}, expected at least MPI_THREAD_FUNNELED", provided);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  ~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
};

class MpiReduce final : public PendingReduce {
 public:
  explicit MpiReduce(MPI_Request request) : request_(request) {}
  // A reduction still in flight when its handle goes away belongs to a step that was abandoned: an
  // error is unwinding and the job is about to be aborted (apps/main.cpp). Waiting could hang on a
  // rank that never joins it, so the request is left to MPI_Abort (its buffer is kept alive by
  // DistributedHook in that case).
  ~MpiReduce() override = default;
  bool test() override {
    if (request_ == MPI_REQUEST_NULL) return true;
    int done = 0;
    check_mpi(MPI_Test(&request_, &done, MPI_STATUS_IGNORE), "MPI_Test (gradient all-reduce)");
    return done != 0;
  }
  void wait() override {
    if (request_ != MPI_REQUEST_NULL) check_mpi(MPI_Wait(&request_, MPI_STATUS_IGNORE), "MPI_Wait (gradient all-reduce)");
  }

 private:
  MPI_Request request_;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(std::shared_ptr<MpiSession> session, MPI_Comm comm) : session_(std::move(session)), comm_(comm) {
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Comm local;
    check_mpi(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
  }
  ~MpiCommunicator() override {
    if (comm_ != MPI_COMM_WORLD) MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return local_size_; }

  void allreduce_sum(double* data, int64_t count) override {
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, checked_count(count), MPI_DOUBLE, MPI_SUM, comm_), "MPI_Allreduce");
  }
  void allreduce_sum(int64_t* data, int64_t count) override {
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, checked_count(count), MPI_INT64_T, MPI_SUM, comm_), "MPI_Allreduce");
  }
  std::unique_ptr<PendingReduce> start_allreduce_sum(float* data, int64_t count) override {
    MPI_Request request;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, data, checked_count(count), MPI_FLOAT, MPI_SUM, comm_, &request),
              "MPI_Iallreduce");
    return std::make_unique<MpiReduce>(request);
  }
  void broadcast(float* data, int64_t count, int root) override {
    check_mpi(MPI_Bcast(data, checked_count(count), MPI_FLOAT, root, comm_), "MPI_Bcast");
  }
  std::vector<uint64_t> allgather(uint64_t value) override {
    std::vector<uint64_t> all(static_cast<size_t>(size_));
    check_mpi(MPI_Allgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, comm_), "MPI_Allgather");
    return all;
  }
  std::unique_ptr<Communicator> split_off() override {
    MPI_Comm dup;
    check_mpi(MPI_Comm_dup(comm_, &dup), "MPI_Comm_dup");
    return std::make_unique<MpiCommunicator>(session_, dup);
  }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; this keeps the promise if it ever did
  }

 private:
  std::shared_ptr<MpiSession> session_;
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1, local_size_ = 1;
};

}  // namespace

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}

int launched_world_size() {
  // Not SLURM_NTASKS: a batch script's own shell has it too, without being one of the tasks.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    const char* text = std::getenv(name);
    if (text == nullptr) continue;
    const long value = std::strtol(text, nullptr, 10);
    if (value >= 1 && value <= INT_MAX) return static_cast<int>(value);
  }
  return 1;
}

std::unique_ptr<Communicator> make_mpi_communicator() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  INQ_CHECK(!initialized, "Given MPI already initialized in this process, expected one communicator over MPI_COMM_WORLD");
  return std::make_unique<MpiCommunicator>(std::make_shared<MpiSession>(), MPI_COMM_WORLD);
}

}  // namespace inq
