#include "framework/threading.h"

#include <omp.h>

#include <unistd.h>

#include <cstdlib>
#include <thread>

extern "C" {
void openblas_set_num_threads(int num_threads);
char* openblas_get_config(void);
char* openblas_get_corename(void);
}

namespace inq {

namespace {
int g_threads = 0;
}

void set_num_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  g_threads = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int get_num_threads() { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

const char* use_short_openmp_spin(char** argv) {
  if (const char* policy = std::getenv("OMP_WAIT_POLICY")) return policy;
  if (std::getenv("GOMP_SPINCOUNT") == nullptr) {
    setenv("GOMP_SPINCOUNT", "10000", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then run with the default policy
    return "default (re-exec failed)";
  }
  return "GOMP_SPINCOUNT";
}

const char* blas_config() { return openblas_get_config(); }

const char* blas_core() { return openblas_get_corename(); }

}  // namespace inq
