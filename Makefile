# Entry points. `make demo` and `make test` work on a fresh Debian 12 machine: each installs any
# missing Debian packages, configures, builds, and then runs.
BUILD   ?= build
JOBS    ?= $(shell nproc)
THREADS ?= $(shell nproc)

.PHONY: all deps configure build test test-sanitize fuzz-smoke demo bench bench-compare bench-packed clean

all: build

deps:
	@tools/install_deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release > /dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900

# Unit tests under AddressSanitizer + UndefinedBehaviorSanitizer (no benchmarks, -O2 -g).
test-sanitize: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DINQ_SANITIZE=ON -DINQ_BUILD_BENCH=OFF > /dev/null
	@cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) --timeout 1800

# Every parser under libFuzzer with ASan + UBSan (tests/fuzz/README.md): builds the fuzz targets
# with clang-14 in their own folder, replays each committed corpus, then fuzzes each target for
# FUZZ_SECONDS from a scratch copy of its corpus. Fails on any crash or sanitizer report.
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 20
fuzz-smoke: deps
	@CC=clang-14 CXX=clang++-14 cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DINQ_FUZZ=ON > /dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)
	tests/fuzz/smoke.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# The main job: the INQ pipeline in miniature (docs/REPRODUCTION.md section 1, quick variant): train
# LeNet-5 on Fashion-MNIST, run 5-bit and 3-bit INQ on it (and 5-bit with the random partition),
# one-shot quantization for comparison, verify every quantized model, print the table, then pack the
# 5-bit model (b-bit codes, docs/INQ_SPEC.md section 7) and evaluate the packed file.
demo: build
	@echo "[demo] inq reproduce --quick ($(THREADS) threads) -> runs/demo"
	$(BUILD)/inq reproduce --quick --threads $(THREADS) --out runs/demo
	$(BUILD)/inq verify runs/demo/inq5-magnitude-s1/final.safetensors
	$(BUILD)/inq pack runs/demo/inq5-magnitude-s1/final.safetensors -o runs/demo/lenet5-inq5.packed.safetensors
	$(BUILD)/inq eval --arch lenet5 --threads $(THREADS) --weights runs/demo/lenet5-inq5.packed.safetensors \
	  --results runs/demo/eval_results.csv
	@echo "[demo] done: runs/demo/results.md, results.json, the figures steps.png, bits.png, histogram.png" \
	  "and the packed 5-bit model lenet5-inq5.packed.safetensors"

# Convolution vs raw sgemm (GFLOP/s per shape and their ratio), then INQ's own cost (partition +
# quantize + freeze + verification). The comparison with PyTorch is `make bench-compare`.
bench: build
	INQ_THREADS=$(THREADS) $(BUILD)/bench_conv --benchmark_filter='^(Conv|Sgemm)' --benchmark_min_time=0.1 \
	  --benchmark_repetitions=9 --benchmark_enable_random_interleaving=true \
	  --benchmark_report_aggregates_only=true --benchmark_out=$(BUILD)/conv.json --benchmark_out_format=json
	python3 tools/conv_bench_ratio.py $(BUILD)/conv.json
	INQ_THREADS=1 $(BUILD)/bench_inq --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

# This framework vs PyTorch (Debian's python3-torch), side by side: every model's training step and
# inference at 1 and 2 threads, 3 alternating rounds, one process each, peak memory, and the
# convolution shapes as a share of the measured sgemm peak (docs/BENCHMARKS.md). Estimated 20-30 minutes;
# QUICK=1 runs 1 round of 3 models at 2 threads (a few minutes). Writes $(BUILD)/bench-compare.md.
bench-compare: build
	/usr/bin/python3 bench/bench_compare.py --build $(BUILD) $(if $(QUICK),--quick)

# Inference from packed low-bit weights (docs/PACKED_INFERENCE.md): memory bandwidth and the GB/s of
# AlexNet's and VGG-16's fully-connected layers at batch 1, then the five ImageNet models from 5- and
# 4-bit packed files against this framework's float32 path and PyTorch float32, batch 1 and 8.
bench-packed: build
	INQ_THREADS=$(THREADS) $(BUILD)/bench_packed_gemv 20
	BUILD=$(BUILD) bench/compare_packed_inference.sh $(THREADS) 3

clean:
	rm -rf $(BUILD) build-asan $(FUZZ_BUILD)
