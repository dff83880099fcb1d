#pragma once
// One threading policy for the whole program (after ggml's ith/nth): OpenMP parallelizes our own
// loops with static partitioning, OpenBLAS threads parallelize GEMM, and BLAS is never called from
// inside an OpenMP region, so the two pools never nest. set_num_threads sets both.
// Same seed + same thread count => bit-identical results (static schedules, no atomics on floats).
namespace inq {

// Sets OpenMP's and OpenBLAS's thread counts. n <= 0 means "all hardware threads".
void set_num_threads(int n);
int get_num_threads();
// OpenBLAS's build configuration string (for benchmark reports).
const char* blas_config();

}  // namespace inq
