#!/usr/bin/env bash
# Evaluation throughput of ResNet-18 (224x224, batch 32, eval mode, no autograd) in this framework
# and in PyTorch (Debian's python3-torch + torchvision) on the same machine and thread count,
# measured alternately so that load drifts hit both. Prints one "inq"/"torch" line per round with
# images/s (median of 5 timed repetitions each) and, at the end, the median of the per-round ratios.
# Usage: bench/compare_eval_pytorch.sh [threads] [rounds]   (from the repository root, after make)
set -euo pipefail
threads=${1:-2}
rounds=${2:-3}
build=${BUILD:-build}
ratios=()
for r in $(seq "$rounds"); do
  ours=$(INQ_THREADS=$threads "$build/bench_eval" --benchmark_min_time=1 --benchmark_repetitions=5 \
    --benchmark_report_aggregates_only=true 2>/dev/null | grep -E "_median" | \
    awk '{for (i = 1; i <= NF; i++) if ($i ~ /images_per_s=/) { v = $i; sub("images_per_s=", "", v); print v } }')
  # Google Benchmark prints rates like 41.2/s.
  ours=${ours%/s}
  theirs=$(/usr/bin/python3 bench/pytorch_eval.py --threads "$threads" --repeats 5 | grep -v "^#" | awk '{print $2}')
  echo "round $r: inq resnet18 $ours images/s, torch resnet18 $theirs images/s"
  ratios+=("$(python3 -c "print(f'{$ours / $theirs:.3f}')")")
done
echo "inq/torch ratio per round: ${ratios[*]} -> median $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')"
