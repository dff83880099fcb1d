#include "framework/threading.h"

#include <omp.h>

#include <thread>

extern "C" {
void openblas_set_num_threads(int num_threads);
char* openblas_get_config(void);
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

const char* blas_config() { return openblas_get_config(); }

}  // namespace inq
