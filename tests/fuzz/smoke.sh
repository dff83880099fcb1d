#!/usr/bin/env bash
# The run behind `make fuzz-smoke`. For every target tests/fuzz/fuzz_<name>.cpp (built in the fuzz
# build folder): replay its committed corpus tests/fuzz/corpus/<name>, then fuzz it for SECONDS
# starting from a scratch copy of that corpus, so the committed files are never modified.
# Stops at the first crash, sanitizer report, escaped exception, timeout or out-of-memory, printing
# the end of libFuzzer's log; the input that caused it is saved under <build>/fuzz-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:?usage: tests/fuzz/smoke.sh <fuzz build folder> [seconds per target]}
seconds=${2:-20}
logs=$build/fuzz-logs
artifacts=$build/fuzz-artifacts
mkdir -p "$logs" "$artifacts"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# Stack traces for UBSan reports too (ASan prints them anyway).
export UBSAN_OPTIONS=print_stacktrace=1

# run_fuzzer <log> <binary> <libFuzzer arguments...>: runs it, and on failure shows the log's end.
run_fuzzer() {
  local log=$1
  shift
  if ! "$@" > "$log" 2>&1; then
    echo "[fuzz] FAILED: $*"
    tail -n 60 "$log"
    echo "[fuzz] full log: $log; crashing inputs: $artifacts/"
    exit 1
  fi
}

for src in tests/fuzz/fuzz_*.cpp; do
  name=$(basename "$src" .cpp)
  name=${name#fuzz_}
  bin=$build/fuzz_$name
  corpus=tests/fuzz/corpus/$name
  [[ -x $bin ]] || { echo "[fuzz] $bin is missing: build $build first"; exit 1; }
  [[ -d $corpus ]] || { echo "[fuzz] target $name has no seed corpus $corpus"; exit 1; }
  common=(-timeout=10 -rss_limit_mb=2048 -artifact_prefix="$artifacts/$name-")
  # A dictionary of the format's tokens, when the target has one.
  if [[ -f tests/fuzz/$name.dict ]]; then common+=(-dict="tests/fuzz/$name.dict"); fi

  run_fuzzer "$logs/$name-replay.log" "$bin" "${common[@]}" -runs=0 "$corpus"
  echo "[fuzz] $name: replayed $(find "$corpus" -type f | wc -l) committed inputs"

  mkdir "$scratch/$name"
  cp "$corpus"/* "$scratch/$name/"
  run_fuzzer "$logs/$name.log" "$bin" "${common[@]}" -max_total_time="$seconds" -print_final_stats=1 \
    "$scratch/$name"
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$name.log")
  coverage=$(grep -o 'cov: [0-9]*' "$logs/$name.log" | tail -n 1)
  echo "[fuzz] $name: ${seconds}s, $runs inputs, $coverage, no findings"
done
