#!/usr/bin/env python3
"""Unit tests of bench/bench_compare.py's parsing and statistics (no benchmark is run).

  python3 tests/bench/test_bench_compare.py      (ctest runs it as bench_compare_driver)
"""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import bench_compare as bc  # noqa: E402


class ParseResultLine(unittest.TestCase):
    def test_fields_and_numbers(self):
        text = ("# openmp spin policy GOMP_SPINCOUNT, blas OpenBLAS\n"
                "result framework=inq mode=train arch=resnet20 batch=128 threads=2 steps=9 seconds=2.070 "
                "images_per_s=556.25 peak_rss_kb=181234\n")
        r = bc.parse_result_line(text)
        self.assertEqual(r["framework"], "inq")
        self.assertEqual(r["arch"], "resnet20")
        self.assertEqual(r["batch"], 128)
        self.assertIsInstance(r["batch"], int)
        self.assertAlmostEqual(r["images_per_s"], 556.25)
        self.assertEqual(r["peak_rss_kb"], 181234)

    def test_no_result_line(self):
        self.assertIsNone(bc.parse_result_line("# torch 1.13\nTraceback ...\n"))
        # "result" must start the line: a log line that mentions it is not a result.
        self.assertIsNone(bc.parse_result_line("warning: result framework=inq\n"))


class Statistics(unittest.TestCase):
    def test_median_odd_even_and_failures(self):
        self.assertEqual(bc.median([3.0, 1.0, 2.0]), 2.0)
        self.assertEqual(bc.median([4.0, 1.0, 2.0, 3.0]), 2.5)
        # A failed round (None) is left out, not counted as zero.
        self.assertEqual(bc.median([None, 5.0, 1.0]), 3.0)
        self.assertIsNone(bc.median([None, None]))

    def test_ratio(self):
        self.assertAlmostEqual(bc.ratio(300.0, 200.0), 1.5)
        self.assertIsNone(bc.ratio(None, 200.0))
        self.assertIsNone(bc.ratio(1.0, 0.0))


class Frameworks(unittest.TestCase):
    def test_order_rotates_so_each_goes_first_equally(self):
        fws = ["inq", "torch", "torch-kept"]
        self.assertEqual(bc.framework_order(fws, 0), fws)
        self.assertEqual(bc.framework_order(fws, 1), ["torch", "torch-kept", "inq"])
        self.assertEqual(bc.framework_order(fws, 5), ["torch-kept", "inq", "torch"])
        firsts = [bc.framework_order(fws, k)[0] for k in range(6)]
        self.assertEqual(sorted(firsts), sorted(fws * 2))

    def test_only_torch_kept_gets_the_malloc_settings(self):
        for key in bc.TORCH_KEPT_ENV:
            self.assertNotIn(key, bc.framework_env("torch", 2))
            self.assertNotIn(key, bc.framework_env("inq", 2))
        kept = bc.framework_env("torch-kept", 2)
        self.assertEqual(kept["MALLOC_MMAP_THRESHOLD_"], str(32 << 20))
        self.assertEqual(kept["OMP_NUM_THREADS"], "2")

    def test_pytorch_gets_the_openblas_kernels_this_framework_runs(self):
        saved = os.environ.pop("OPENBLAS_CORETYPE", None)
        try:
            self.assertEqual(bc.framework_env("torch-kept", 2, "SkylakeX")["OPENBLAS_CORETYPE"], "SkylakeX")
            self.assertEqual(bc.framework_env("torch", 1, "Haswell")["OPENBLAS_CORETYPE"], "Haswell")
            # This framework chooses its own at start-up; nothing to pass when none was reported.
            self.assertNotIn("OPENBLAS_CORETYPE", bc.framework_env("inq", 2, "SkylakeX"))
            self.assertNotIn("OPENBLAS_CORETYPE", bc.framework_env("torch", 2, None))
            # A caller's own setting reaches both frameworks unchanged.
            os.environ["OPENBLAS_CORETYPE"] = "Zen"
            self.assertEqual(bc.framework_env("torch", 2, "SkylakeX")["OPENBLAS_CORETYPE"], "Zen")
            self.assertEqual(bc.framework_env("inq", 2, "SkylakeX")["OPENBLAS_CORETYPE"], "Zen")
        finally:
            os.environ.pop("OPENBLAS_CORETYPE", None)
            if saved is not None:
                os.environ["OPENBLAS_CORETYPE"] = saved

    def test_malloc_settings_come_from_the_shared_file(self):
        # bench/torch_kept.env is also what the shell scripts pass to PyTorch.
        self.assertEqual(bc.TORCH_KEPT_ENV, {"MALLOC_MMAP_THRESHOLD_": str(32 << 20),
                                             "MALLOC_TRIM_THRESHOLD_": str(1 << 36)})
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "x.env")
            with open(path, "w") as f:
                f.write("# comment\n\nA=1\nB=two=2\n")
            self.assertEqual(bc.read_env_file(path), {"A": "1", "B": "two=2"})
            with open(path, "w") as f:
                f.write("A=1\nnot a setting\n")
            with self.assertRaisesRegex(ValueError, "x.env:2: expected NAME=VALUE"):
                bc.read_env_file(path)

    def test_row_has_a_ratio_against_each_pytorch(self):
        def res(rate, rss):
            return {"images_per_s": rate, "peak_rss_kb": rss}
        cell = {"inq": [res(600.0, 200 * 1024), res(660.0, 210 * 1024), res(640.0, 190 * 1024)],
                "torch": [res(300.0, 500 * 1024), None, res(340.0, 520 * 1024)],
                "torch-kept": [res(900.0, 510 * 1024), res(880.0, 500 * 1024), res(920.0, 505 * 1024)]}
        row = bc.table_row("resnet20", 2, cell, ["inq", "torch", "torch-kept"])
        cols = [c.strip() for c in row.strip("|").split("|")]
        self.assertEqual(len(cols), 5 + 4 * 2)
        self.assertEqual(cols[0:2], ["resnet20", "2"])
        self.assertEqual(cols[3], "300.0 / failed / 340.0")  # shown, and not counted in the median
        self.assertEqual(cols[5:8], ["640.0", "320.0", "900.0"])
        self.assertEqual(cols[8:10], ["**2.00**", "**0.71**"])
        self.assertEqual(cols[10:13], ["210 MiB", "520 MiB", "510 MiB"])


class ConvReports(unittest.TestCase):
    REPORT = {
        "context": {"conv_shape r20_a": "128 16 28 28 16 3 3 1 1"},
        "benchmarks": [
            {"run_name": "ConvForward/r20_a/real_time", "run_type": "aggregate", "aggregate_name": "mean",
             "GFLOP/s": 10.0},
            {"run_name": "ConvForward/r20_a/real_time", "run_type": "aggregate", "aggregate_name": "median",
             "GFLOP/s": 12.0},
            {"run_name": "ConvBackward/r20_a/real_time", "run_type": "iteration", "GFLOP/s": 7.0},
            {"run_name": "ConvBackward/r20_a/real_time", "run_type": "iteration", "GFLOP/s": 9.0},
            {"run_name": "ConvBackward/r20_a/real_time", "run_type": "iteration", "GFLOP/s": 8.0},
            {"run_name": "SgemmPeak/2048/real_time", "run_type": "aggregate", "aggregate_name": "median",
             "GFLOP/s": 300.0},
            {"run_name": "Im2col/r20_a/real_time", "run_type": "iteration", "GB/s": 5.0},
        ],
    }

    def test_medians_prefer_the_aggregate(self):
        m = bc.conv_medians(self.REPORT)
        self.assertEqual(bc.conv_rate(m, "ConvForward", "r20_a"), 12.0)
        # Without an aggregate, the median of the plain repetitions.
        self.assertEqual(bc.conv_rate(m, "ConvBackward", "r20_a"), 8.0)
        self.assertEqual(bc.sgemm_peak(m), 300.0)
        # A shape name that is a prefix of another does not match it.
        self.assertIsNone(bc.conv_rate(m, "ConvForward", "r20"))
        self.assertNotIn("Im2col/r20_a/real_time", m)

    def test_torch_conv_lines(self):
        out = ("conv framework=torch kind=forward shape=r20_a threads=2 gflops=250.50\n"
               "conv framework=torch kind=backward shape=r20_a threads=2 gflops=99.00\n")
        self.assertEqual(bc.parse_torch_conv(out), {("forward", "r20_a"): 250.5, ("backward", "r20_a"): 99.0})


class SgemmPeakYardstick(unittest.TestCase):
    def test_avx512_kernels_measured_only_where_they_are_not_in_use(self):
        real = bc.cpu_has_avx512
        try:
            bc.cpu_has_avx512 = lambda: True
            self.assertEqual(bc.avx512_peak_kernels("Haswell"), "SkylakeX")
            self.assertEqual(bc.avx512_peak_kernels(None), "SkylakeX")
            self.assertIsNone(bc.avx512_peak_kernels("SkylakeX"))
            self.assertIsNone(bc.avx512_peak_kernels("Cooperlake"))
            bc.cpu_has_avx512 = lambda: False
            self.assertIsNone(bc.avx512_peak_kernels("Haswell"))
        finally:
            bc.cpu_has_avx512 = real

    def section(self, peak, avx512_peak):
        class Args:
            conv_rounds, threads, frameworks, blas_kernels = 1, [2], ["inq", "torch-kept"], "Haswell"
        cell = {("inq", "forward"): 100.0, ("torch", "forward"): 50.0, ("inq", "backward"): 80.0,
                ("torch", "backward"): None}
        return "\n".join(bc.conv_section(Args, {2: (peak, avx512_peak, {"r50_a": cell})}))

    def test_shares_against_the_higher_peak(self):
        text = self.section(200.0, 400.0)
        self.assertIn("sgemm peak, 2 thread(s): **400.0 GFLOP/s** (OpenBLAS's SkylakeX kernels: 400.0; "
                      "the kernels in use, Haswell: 200.0)", text)
        self.assertIn("| r50_a | 2 | 100.0 (25%) | 50.0 (12%) | 80.0 (20%) | failed |", text)
        # Without the second measurement, the kernels in use are the yardstick.
        text = self.section(200.0, None)
        self.assertIn("sgemm peak, 2 thread(s): **200.0 GFLOP/s**\n", text)
        self.assertIn("| r50_a | 2 | 100.0 (50%) | 50.0 (25%) |", text)
        # No peak at all: no shares.
        self.assertIn("| r50_a | 2 | 100.0 | 50.0 |", self.section(None, None))


class Workloads(unittest.TestCase):
    def test_rows_per_model(self):
        rows = bc.workloads(["resnet20", "resnet18"])
        self.assertEqual([(w.mode, w.arch, w.batch) for w in rows],
                         [("train", "resnet20", 128), ("train", "resnet18", 8), ("eval", "resnet18", 1),
                          ("eval", "resnet18", 8)])
        self.assertEqual(rows[1].size, 224)
        self.assertEqual(rows[0].channels, 1)

    def test_flags_scale_the_minimum_time(self):
        w = bc.workloads(["lenet5"])[0]
        flags = w.flags(threads=2, time_scale=0.5)
        self.assertEqual(flags[flags.index("--min-time") + 1], f"{w.min_time * 0.5:g}")
        self.assertEqual(flags[flags.index("--threads") + 1], "2")

    def test_unknown_model(self):
        with self.assertRaises(SystemExit):
            bc.workloads(["resnet1000"])


if __name__ == "__main__":
    unittest.main()
