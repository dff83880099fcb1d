#include "framework/threading.h"

#include <omp.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
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

const char* blas_core_override(const char* detected, bool cpu_has_avx2, bool cpu_has_avx512) {
  if (detected == nullptr) return nullptr;
  // OpenBLAS's kernel sets without AVX2: what a DYNAMIC_ARCH build falls back to on a processor it
  // does not recognize (0.3.21, Debian 12's, runs "Prescott", SSE3, on Sapphire/Emerald Rapids).
  static const char* const kPreAvx2[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                         "Sandybridge", "Atom", "Barcelona", "Bobcat", "Bulldozer"};
  bool old_kernels = false;
  for (const char* name : kPreAvx2) old_kernels = old_kernels || std::strcmp(detected, name) == 0;
  if (!old_kernels) return nullptr;
  if (cpu_has_avx512) return "SkylakeX";
  if (cpu_has_avx2) return "Haswell";
  return nullptr;
}

bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

const char* apply_runtime_policy(char** argv) {
  bool restart = false;
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr) {
    if (const char* core = blas_core_override(openblas_get_corename(), cpu_has_avx2(), cpu_has_avx512())) {
      setenv("OPENBLAS_CORETYPE", core, 1);
      restart = true;
    }
  }
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  if (policy == nullptr && std::getenv("GOMP_SPINCOUNT") == nullptr) {
    setenv("GOMP_SPINCOUNT", "10000", 1);
    restart = true;
  }
  if (restart) {
    execv("/proc/self/exe", argv);  // returns only on failure: then run as the environment was
    return "default (re-exec failed)";
  }
  return policy ? policy : "GOMP_SPINCOUNT";
}

const char* blas_config() { return openblas_get_config(); }

const char* blas_core() { return openblas_get_corename(); }

}  // namespace inq
