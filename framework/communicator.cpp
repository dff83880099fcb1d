#include "framework/communicator.h"

#include <cstdlib>

namespace inq {

namespace {

class CompletedReduce final : public PendingReduce {
 public:
  bool test() override { return true; }
  void wait() override {}
};

std::unique_ptr<Communicator>& installed() {
  static std::unique_ptr<Communicator> communicator = std::make_unique<SingleProcessCommunicator>();
  return communicator;
}

}  // namespace

std::unique_ptr<PendingReduce> SingleProcessCommunicator::start_allreduce_sum(float*, int64_t) {
  return std::make_unique<CompletedReduce>();
}

void SingleProcessCommunicator::abort(int code) { std::exit(code); }

Communicator& process_communicator() { return *installed(); }

void set_process_communicator(std::unique_ptr<Communicator> communicator) { installed() = std::move(communicator); }

uint64_t fnv1a(const void* data, size_t bytes, uint64_t hash) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) {
    hash ^= p[i];
    hash *= 0x100000001b3ull;
  }
  return hash;
}

}  // namespace inq
