#!/usr/bin/env python3
"""Per-shape conv/sgemm GFLOP/s ratios from a bench_conv JSON file.

  INQ_THREADS=2 build/bench_conv --benchmark_filter='^(Conv|Sgemm)' --benchmark_min_time=0.1 \
      --benchmark_repetitions=9 --benchmark_enable_random_interleaving=true \
      --benchmark_report_aggregates_only=true --benchmark_out=conv.json --benchmark_out_format=json
  tools/conv_bench_ratio.py conv.json

Uses the median aggregate of each benchmark (falls back to the mean of the plain runs).
"""
import json
import statistics
import sys
from collections import defaultdict


def main(path):
    with open(path) as f:
        data = json.load(f)
    runs = defaultdict(list)
    medians = {}
    for b in data["benchmarks"]:
        name = b["run_name"]
        rate = b.get("GFLOP/s")
        if rate is None:
            continue
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = rate
        else:
            runs[name].append(rate)
    for name, rates in runs.items():
        medians.setdefault(name, statistics.median(rates))

    def rate(kind, shape):
        for name, r in medians.items():
            if name.startswith(kind + "/" + shape + "/") or name == kind + "/" + shape:
                return r
        return None

    shapes = sorted({n.split("/")[1] for n in medians if n.startswith("ConvForward/")})
    print(f"{'shape':30s} {'fwd conv':>9s} {'sgemm':>9s} {'ratio':>6s}   {'bwd conv':>9s} {'sgemm':>9s} {'ratio':>6s}")
    for s in shapes:
        cf, sf = rate("ConvForward", s), rate("SgemmForward", s)
        cb, sb = rate("ConvBackward", s), rate("SgemmBackward", s)
        row = f"{s:30s}"
        for c, g in ((cf, sf), (cb, sb)):
            if c is None or g is None:
                row += f" {'-':>9s} {'-':>9s} {'-':>6s}  "
            else:
                row += f" {c:9.1f} {g:9.1f} {c / g:6.2f}  "
        print(row)
    ctx = data.get("context", {})
    print(f"threads {ctx.get('inq_threads')}, OpenMP spin policy {ctx.get('openmp_spin_policy')}, {ctx.get('inq_bench_time')}, "
          f"{ctx.get('blas_config')}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "conv.json")
