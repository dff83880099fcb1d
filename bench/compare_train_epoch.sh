#!/usr/bin/env bash
# One training epoch of ResNet-20 on Fashion-MNIST (docs/REPRODUCTION.md section 1 recipe: batch 128,
# augmentation, SGD with momentum and weight decay), this framework against PyTorch, alternating:
#   inq    `inq train --arch resnet20 --epochs 1`: the epoch's training time as the run's log states it
#          ("(<seconds>s train, <img/s> img/s)", data loading included, evaluation excluded)
#   torch  bench/pytorch_train_epoch.py: the same epoch in PyTorch (its docstring says what it does)
#          with glibc's malloc keeping freed memory (TORCH_MALLOC=kept, the default, as
#          bench/bench_compare.py's torch-kept; docs/BENCHMARKS.md says why) or as installed
#          (TORCH_MALLOC=default)
# Prints a markdown table: seconds per round, medians and the ratio of speeds (> 1: this framework is
# faster). Run it on an otherwise idle machine.
#
# Usage (from the repository root, after make): bench/compare_train_epoch.sh [threads] [rounds] [data]
set -euo pipefail
threads=${1:-2}
rounds=${2:-3}
data=${3:-/usr/share/datasets/fashion-mnist}
build=${BUILD:-build}
python=${PYTHON:-/usr/bin/python3}
torch_env=()
case ${TORCH_MALLOC:-kept} in
  kept) mapfile -t kept < <(grep -E '^[A-Za-z_]+=' "$(dirname "$0")/torch_kept.env"); torch_env=(env "${kept[@]}") ;;
  default) ;;
  *) echo "compare_train_epoch.sh: TORCH_MALLOC must be kept or default, not '$TORCH_MALLOC'" >&2; exit 2 ;;
esac
# The same OpenBLAS kernels for both: where this framework's start-up replaced a fallback kernel set
# (framework/threading.h), PyTorch gets the same OPENBLAS_CORETYPE; a caller's own reaches both.
kernels=""
if [[ -z ${OPENBLAS_CORETYPE:-} ]]; then
  kernels=$(INQ_THREADS=1 "$build/bench_model" --mode eval --arch lenet5 --batch 1 --min-time 0 --warmup 0 |
            sed -n 's/^# openmp spin policy .*, kernels \([A-Za-z0-9]*\)$/\1/p')
  if [[ -n $kernels ]]; then
    if [[ ${#torch_env[@]} -eq 0 ]]; then torch_env=(env); fi
    torch_env+=("OPENBLAS_CORETYPE=$kernels")
  fi
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ours=() theirs=()
for r in $(seq 1 "$rounds"); do
  for side in inq torch; do
    # alternate which side goes first from round to round
    if (( r % 2 == 0 )); then side=$([[ $side == inq ]] && echo torch || echo inq); fi
    if [[ $side == inq ]]; then
      log=$("$build/inq" train --arch resnet20 --epochs 1 --threads "$threads" --data "$data" \
            --out "$work/run$r" 2>&1) || { printf '%s\n' "$log" >&2; exit 1; }
      s=$(sed -n 's/^ \* Epoch 1 .*(\([0-9.]*\)s train.*/\1/p' <<<"$log")
      [[ -n $s ]] || { printf 'compare_train_epoch.sh: no epoch time in the log:\n%s\n' "$log" >&2; exit 1; }
      ours+=("$s")
    else
      out=$("${torch_env[@]}" "$python" bench/pytorch_train_epoch.py --data "$data" --threads "$threads") || exit 1
      s=$(sed -n 's/.* seconds=\([0-9.]*\) .*/\1/p' <<<"$out")
      theirs+=("$s")
    fi
    echo "round $r $side: ${s} s" >&2
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
mo=$(median "${ours[@]}") mt=$(median "${theirs[@]}")
echo "# ResNet-20, one training epoch of Fashion-MNIST (60,000 images), $threads thread(s), $rounds rounds, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "OpenBLAS kernels: this framework ${kernels:-as detected}, PyTorch ${OPENBLAS_CORETYPE:-${kernels:-as detected}}"
echo "| side | seconds per round | median | img/s |"
echo "|---|---|---|---|"
echo "| inq | ${ours[*]} | $mo | $(awk -v s="$mo" 'BEGIN {printf "%.0f", 60000 / s}') |"
echo "| torch (malloc ${TORCH_MALLOC:-kept}) | ${theirs[*]} | $mt | $(awk -v s="$mt" 'BEGIN {printf "%.0f", 60000 / s}') |"
echo "speed ratio (torch seconds / inq seconds): $(awk -v a="$mo" -v b="$mt" 'BEGIN {printf "%.2f", b / a}')"
