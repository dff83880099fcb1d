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
// libgomp reads its spin policy from the environment when it loads, before main. Its default
// busy-waits long after each parallel region, which on a 2-core machine steals the cores from
// OpenBLAS's GEMMs and the data-loading threads (measured: LeNet-5 training at 2 threads ran at 95
// images/s instead of ~6000, ResNet-20 conv layers 10-50x slower). Unless the user chose a policy
// (OMP_WAIT_POLICY or GOMP_SPINCOUNT), this sets a short spin and re-executes the program once;
// call it first thing in main. Returns the policy in effect, for reports.
// In the same re-execution it corrects OpenBLAS's kernel choice, which is also read from the
// environment at load time: where OpenBLAS fell back to kernels without AVX2 on a processor that
// has AVX2 or AVX-512 (blas_core_override) and the user did not set OPENBLAS_CORETYPE, it sets it.
// Debian 12's OpenBLAS 0.3.21 runs its SSE3 "Prescott" kernels on Sapphire/Emerald Rapids Xeons;
// with "SkylakeX" the fully-connected layers' sgemm calls run on AVX-512.
const char* use_short_openmp_spin(char** argv);
// The OPENBLAS_CORETYPE to run instead of the `detected` kernel set, or null to keep it: a kernel
// set without AVX2 on a processor with AVX-512 -> "SkylakeX", with AVX2 -> "Haswell".
const char* blas_core_override(const char* detected, bool cpu_has_avx2, bool cpu_has_avx512);
// OpenBLAS's build configuration string, and the kernel set it runs (a DYNAMIC_ARCH build picks it
// from the processor, or from OPENBLAS_CORETYPE), for benchmark reports.
const char* blas_config();
const char* blas_core();

}  // namespace inq
