#pragma once
// One threading policy for the whole program (after ggml's ith/nth): OpenMP parallelizes our own
// loops with static partitioning, OpenBLAS threads parallelize GEMM, and the two pools never nest:
// BLAS called from inside an OpenMP region (a small convolution's images in parallel,
// choose_parallel_images in im2col.h) runs on the calling thread alone, as OpenBLAS's OpenMP build
// does whenever omp_in_parallel(). set_num_threads sets both.
// Same seed + same thread count => bit-identical results (static schedules, no atomics on floats).
namespace inq {

// Sets OpenMP's and OpenBLAS's thread counts. n <= 0 means "all hardware threads".
void set_num_threads(int n);
int get_num_threads();
// The process-wide settings two libraries read from the environment when they load, before main;
// call this first thing in main. Where either needs changing it sets the variable and re-executes
// the program once (execv of /proc/self/exe). Returns the OpenMP wait policy in effect, for reports.
// - libgomp's spin: its default busy-waits long after each parallel region, which on a 2-core
//   machine steals the cores from OpenBLAS's GEMMs and the data-loading threads (measured: LeNet-5
//   training at 2 threads ran at 95 images/s instead of ~6000, ResNet-20 conv layers 10-50x
//   slower). Unless the user chose a policy (OMP_WAIT_POLICY or GOMP_SPINCOUNT), a short spin:
//   GOMP_SPINCOUNT=10000.
// - OpenBLAS's kernels: where it fell back to a kernel set without AVX2 on a processor that has
//   AVX2 or AVX-512 (blas_core_override) and the user did not set OPENBLAS_CORETYPE, it is set.
//   Debian 12's OpenBLAS 0.3.21 runs its SSE3 "Prescott" kernels on Sapphire/Emerald Rapids
//   Xeons; with "SkylakeX" the fully-connected layers' sgemm calls run on AVX-512.
const char* apply_runtime_policy(char** argv);
// The OPENBLAS_CORETYPE to run instead of the `detected` kernel set, or null to keep it: a kernel
// set without AVX2 on a processor with AVX-512 -> "SkylakeX", with AVX2 -> "Haswell".
const char* blas_core_override(const char* detected, bool cpu_has_avx2, bool cpu_has_avx512);
// What this processor runs, as blas_core_override asks it: AVX2, and the AVX-512 subsets OpenBLAS's
// SkylakeX kernels use (F, BW, VL, DQ).
bool cpu_has_avx2();
bool cpu_has_avx512();
// OpenBLAS's build configuration string, and the kernel set it runs (a DYNAMIC_ARCH build picks it
// from the processor, or from OPENBLAS_CORETYPE), for benchmark reports.
const char* blas_config();
const char* blas_core();

}  // namespace inq
