// framework/threading.h's start-up policy: which OpenBLAS kernel set replaces a fallback one, and
// that the `inq` tool really runs with it (its results.json names the kernel set in effect).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "app_testing.h"
#include "framework/gemm.h"
#include "framework/threading.h"
#include <nlohmann/json.hpp>

using namespace inq;

namespace {

std::string or_none(const char* s) { return s ? s : "(keep)"; }

TEST(BlasCoreOverride, ReplacesKernelSetsWithoutAvx2OnlyWhereTheCpuHasBetter) {
  // The fallback Debian 12's OpenBLAS picks on a Sapphire/Emerald Rapids Xeon.
  EXPECT_EQ(or_none(blas_core_override("Prescott", true, true)), "SkylakeX");
  EXPECT_EQ(or_none(blas_core_override("Prescott", true, false)), "Haswell");
  EXPECT_EQ(or_none(blas_core_override("Nehalem", true, false)), "Haswell");
  EXPECT_EQ(or_none(blas_core_override("Sandybridge", true, true)), "SkylakeX");
  // Nothing better on this processor: keep what OpenBLAS chose.
  EXPECT_EQ(or_none(blas_core_override("Prescott", false, false)), "(keep)");
  // A kernel set with AVX2 or AVX-512 is OpenBLAS's own good choice (Zen, Haswell, ...): kept.
  for (const char* good : {"Haswell", "SkylakeX", "Cooperlake", "Zen", "SapphireRapids"})
    EXPECT_EQ(or_none(blas_core_override(good, true, true)), "(keep)") << good;
  EXPECT_EQ(or_none(blas_core_override(nullptr, true, true)), "(keep)");
}

TEST(BlasCoreOverride, Avx512KernelSetsAreRecognizedByNameInAnyCase) {
  for (const char* name : {"SkylakeX", "SKYLAKEX", "Cooperlake", "SapphireRapids"}) EXPECT_TRUE(is_avx512_blas_core(name)) << name;
  for (const char* name : {"Haswell", "Zen", "Prescott", "Skylake", "", "SkylakeXX"})
    EXPECT_FALSE(is_avx512_blas_core(name)) << name;
  EXPECT_FALSE(is_avx512_blas_core(nullptr));
  EXPECT_EQ(sgemm_runs_avx512(), is_avx512_blas_core(blas_core()));
}

TEST(BlasCoreOverride, TheToolRunsWithTheKernelSetTheEnvironmentOrThePolicyGives) {
  if (!test::have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  __builtin_cpu_init();
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2: OpenBLAS's Haswell kernels cannot run here";
  const std::string out = test::temp_path("blas_core");
  const std::string run = "train --arch lenet5 --epochs 1 --train-limit 128 --test-limit 100 -b 64 --threads 1 --out ";
  // A user's OPENBLAS_CORETYPE is left as it is.
  ASSERT_EQ(0, test::run_cli(run + out + "/haswell", nullptr, "OPENBLAS_CORETYPE=Haswell"));
  const auto results = nlohmann::json::parse(read_file(out + "/haswell/results.json"));
  EXPECT_EQ(results.at("blas_kernels").get<std::string>(), "Haswell");
  // Without it, the kernels in effect are never a fallback without AVX2 on a processor with AVX2.
  ASSERT_EQ(0, test::run_cli(run + out + "/default", nullptr, "-u OPENBLAS_CORETYPE"));
  const std::string kernels =
      nlohmann::json::parse(read_file(out + "/default/results.json")).at("blas_kernels").get<std::string>();
  EXPECT_EQ(blas_core_override(kernels.c_str(), cpu_has_avx2(), cpu_has_avx512()), nullptr) << kernels;
  std::filesystem::remove_all(out);
}

}  // namespace
