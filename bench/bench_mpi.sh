#!/usr/bin/env bash
# Data-parallel throughput of ResNet-20 training (docs/DISTRIBUTED.md "Measured"): images/s of
#   1p x 2t   one process, 2 compute threads
#   2r x 1t   mpirun -np 2, 1 thread per rank (each rank bound to a core)
#   1p x 1t   one process, 1 thread (the scaling reference)
# on Fashion-MNIST (the dataset this machine has; 28x28x1 inputs, so a step is ~0.77x a CIFAR
# one), global batch 64, over STEPS steps per run. The three configurations alternate for ROUNDS
# rounds, so that a load change on the machine hits all of them, and the medians are printed with
# the share of the 2-rank step time spent waiting for gradient all-reduces that backward did not
# hide (results.json "distributed").
#   usage: bench/bench_mpi.sh [BUILD=build] [ROUNDS=5] [STEPS=40]
set -euo pipefail
BUILD=${1:-build}
ROUNDS=${2:-5}
STEPS=${3:-40}
INQ=$BUILD/inq
DATA=/usr/share/datasets/fashion-mnist
[[ -x $INQ ]] || { echo "bench_mpi: $INQ not built (make build)" >&2; exit 1; }
[[ -f $DATA/train-images-idx3-ubyte.gz ]] || { echo "bench_mpi: $DATA missing (tools/install_deps.sh)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(train --arch resnet20 --data "$DATA" --train-limit $((64 * STEPS)) --test-limit 64 --batch-size 64
        --epochs 1 --lr 0.01 --no-augment --print-freq 1000000 --seed 1)

images_per_s() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["train_images_per_s"])' "$1"; }
exposed_share() {
  /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["distributed"]
print(d["exposed_communication_seconds"] / d["step_seconds"])' "$1"
}

declare -a one_two two_one one_one shares
for ((r = 1; r <= ROUNDS; r++)); do
  "$INQ" "${common[@]}" --threads 2 --out "$work/a$r" 2> "$work/a$r.log"
  one_two+=("$(images_per_s "$work/a$r/results.json")")
  mpirun -np 2 --bind-to core "$INQ" "${common[@]}" --threads 1 --out "$work/b$r" 2> "$work/b$r.log"
  two_one+=("$(images_per_s "$work/b$r/results.json")")
  shares+=("$(exposed_share "$work/b$r/results.json")")
  "$INQ" "${common[@]}" --threads 1 --out "$work/c$r" 2> "$work/c$r.log"
  one_one+=("$(images_per_s "$work/c$r/results.json")")
  echo "round $r/$ROUNDS: 1p x 2t ${one_two[-1]}  2r x 1t ${two_one[-1]}  1p x 1t ${one_one[-1]} img/s" >&2
done

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
m12=$(median "${one_two[@]}"); m21=$(median "${two_one[@]}"); m11=$(median "${one_one[@]}"); ms=$(median "${shares[@]}")
echo "ResNet-20 training, Fashion-MNIST, global batch 64, $STEPS steps per run, median of $ROUNDS rounds ($(date -u +%F)):"
echo "| configuration | images/s |"
echo "|---|---|"
printf '| 1 process x 2 threads | %.1f |\n' "$m12"
printf '| 2 ranks x 1 thread (mpirun) | %.1f |\n' "$m21"
printf '| 1 process x 1 thread | %.1f |\n' "$m11"
awk -v a="$m21" -v b="$m12" -v s="$ms" 'BEGIN {printf "2 ranks / (1 process x 2 threads) = %.3f; communication not hidden: %.1f%% of the 2-rank step time\n", a / b, 100 * s}'
