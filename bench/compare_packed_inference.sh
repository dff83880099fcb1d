#!/usr/bin/env bash
# Inference from packed low-bit weights against float32, on the same machine, thread count and batch:
#   packed  `inq bench-model` on a b-bit packed file (runs from the codes)
#   fp32    `inq bench-model` on the same weights as a float32 file (this framework's float path)
#   torch   bench/pytorch_infer.py: PyTorch float32, torchvision's model (random weights)
#   torch-kept  the same with glibc's malloc keeping freed memory (MALLOC_MMAP_THRESHOLD_,
#           MALLOC_TRIM_THRESHOLD_; docs/BENCHMARKS.md: where page faults are costly, PyTorch as
#           installed re-faults its activations on every pass). The packed/torch ratio is taken
#           against the faster of the two PyTorch medians, the memory ratio against the smaller of
#           their peaks (the "torch MiB" column).
# One process per (side, model, bit-width, batch, round), the four sides alternating within each
# round so that load drifts hit all of them. Prints a markdown table: median img/s over the rounds
# and the largest peak resident memory of each side, and packed / torch ratios.
#
# The weights are the models' random initializations quantized one-shot (build/make_quantized_weights)
# and packed with `inq pack --bits b`: right sizes, untrained values (speed and memory do not depend on
# them). They are made once into build/packed_models/ (about 2.5 GB for the five models at two bit-widths).
#
# Usage (from the repository root, after make):
#   bench/compare_packed_inference.sh [threads] [rounds] [models] [bits] [batches]
#   e.g. bench/compare_packed_inference.sh 2 3 "alexnet vgg16" "5" "1"
set -euo pipefail
threads=${1:-2}
rounds=${2:-3}
models=${3:-"alexnet vgg16 googlenet resnet18 resnet50"}
bit_widths=${4:-"5 4"}
batches=${5:-"1 8"}
build=${BUILD:-build}
cache=$build/packed_models
mapfile -t kept_env < <(grep -E '^[A-Za-z_]+=' "$(dirname "$0")/torch_kept.env")  # torch-kept's malloc settings
passes=${PASSES:-10}
mkdir -p "$cache"

# Runs one side ("$@") and prints "<img/s> <peak MiB>" from its report. A run that fails or prints no
# rate stops the whole comparison with its output on stderr: a blank cell would hide it.
measure() {
  local out
  if ! out=$("$@" 2>&1) || ! grep -q " img/s " <<<"$out"; then
    printf 'compare_packed_inference.sh: failed: %s\n%s\n' "$*" "$out" >&2
    exit 1
  fi
  awk '/ img\/s / {r = $1} /^peak resident memory:/ {m = $4} END {print r, m}' <<<"$out"
}

for m in $models; do
  for b in $bit_widths; do
    [ -f "$cache/$m-q$b.safetensors" ] || "$build/make_quantized_weights" "$m" "$b" "$cache/$m-q$b.safetensors" >/dev/null
    [ -f "$cache/$m-$b""bit.safetensors" ] ||
      "$build/inq" pack --bits "$b" --arch "$m" "$cache/$m-q$b.safetensors" -o "$cache/$m-$b""bit.safetensors" >/dev/null
  done
done

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $threads threads, $rounds rounds of $passes passes"
echo "| model | bits | batch | packed img/s | fp32 img/s | torch img/s | torch-kept img/s | packed/torch | packed MiB | fp32 MiB | torch MiB | packed/torch memory |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
maximum() { sort -n | tail -1; }
for m in $models; do
  for b in $bit_widths; do
    for n in $batches; do
      P=() F=() T=() K=() PM=() FM=() TM=() KM=()
      for r in $(seq "$rounds"); do
        result=$(measure "$build/inq" bench-model --arch "$m" --weights "$cache/$m-$b""bit.safetensors" --batch "$n" \
          --threads "$threads" --rounds "$passes")
        read -r v mem <<<"$result"
        P+=("$v"); PM+=("$mem")
        result=$(measure "$build/inq" bench-model --arch "$m" --weights "$cache/$m-q$b.safetensors" --batch "$n" \
          --threads "$threads" --rounds "$passes")
        read -r v mem <<<"$result"
        F+=("$v"); FM+=("$mem")
        result=$(measure /usr/bin/python3 bench/pytorch_infer.py --arch "$m" --batch "$n" --threads "$threads" \
          --rounds "$passes")
        read -r v mem <<<"$result"
        T+=("$v"); TM+=("$mem")
        result=$(measure env "${kept_env[@]}" /usr/bin/python3 bench/pytorch_infer.py --arch "$m" --batch "$n" \
          --threads "$threads" --rounds "$passes")
        read -r v mem <<<"$result"
        K+=("$v"); KM+=("$mem")
      done
      p=$(printf '%s\n' "${P[@]}" | median); f=$(printf '%s\n' "${F[@]}" | median); t=$(printf '%s\n' "${T[@]}" | median)
      k=$(printf '%s\n' "${K[@]}" | median); best=$(awk "BEGIN {print ($k > $t) ? $k : $t}")
      pm=$(printf '%s\n' "${PM[@]}" | maximum); fm=$(printf '%s\n' "${FM[@]}" | maximum); tm=$(printf '%s\n' "${TM[@]}" | maximum)
      km=$(printf '%s\n' "${KM[@]}" | maximum); tm=$(awk "BEGIN {print ($km < $tm) ? $km : $tm}")
      echo "| $m | $b | $n | $p | $f | $t | $k | $(awk "BEGIN {printf \"%.2fx\", $p / $best}") | $pm | $fm | $tm | $(awk "BEGIN {printf \"%.2f\", $pm / $tm}") |"
    done
  done
done
