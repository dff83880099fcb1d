#!/usr/bin/env bash
# Training-step throughput of this framework and of PyTorch (Debian's python3-torch) on the same
# machine, same thread count, same models and batch, measured alternately so that load drifts hit
# both. Usage: bench/compare_pytorch.sh [threads] [rounds]   (from the repository root, after make)
set -euo pipefail
threads=${1:-2}
rounds=${2:-3}
build=${BUILD:-build}
for r in $(seq "$rounds"); do
  echo "## round $r"
  INQ_THREADS=$threads "$build/bench_train_step" --benchmark_min_time=0.5 --benchmark_repetitions=5 \
    --benchmark_report_aggregates_only=true 2>/dev/null | grep -E "median" | \
    awk '{for (i = 1; i <= NF; i++) if ($i ~ /images_per_s=/) { v = $i; sub("images_per_s=", "", v); print "inq", $1, v } }'
  /usr/bin/python3 bench/pytorch_train_step.py --threads "$threads" --repeats 5 | grep -v "^#" | \
    awk '{print "torch", $1, $2}'
done
