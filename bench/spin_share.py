#!/usr/bin/env python3
"""How much of a 2-thread run the OpenMP threads spend waiting, and what the other thread does then.

Reads `perf script` output of a cpu-clock profile (one line per sample: tid, time, ip, symbol, dso)
and, for the two busiest threads, counts the samples inside libgomp (spinning or scheduling) and
classifies each by the other thread's nearest sample (within 0.6 ms): also waiting, inside one of
this project's parallel kernels (the waiting thread is at that kernel's barrier: imbalance), or in
other code (a serial section the waiting thread cannot help with).

  INQ_THREADS=2 perf record -e cpu-clock -F 2000 -o perf.data build/bench_train_step \\
      --benchmark_filter=resnet20 --benchmark_min_time=8
  perf script -i perf.data -F tid,time,ip,sym,dso -G | bench/spin_share.py

Prints per thread: the share of its samples per class, and the other thread's symbols for the
imbalance and serial classes.
"""
import bisect
import collections
import re
import sys

# Symbols of kernels that run inside an OpenMP parallel region (a thread waiting while the other is
# in one of these waits at that region's barrier).
PARALLEL_KERNELS = ("input_chunk", "dot_block", "dot_tile", "dy_chunk", "panel_tile", "output_chunk", "scatter_tiles",
                    "batch_norm2d", "weight_chunk", "run<", "run_weight_grad", "weight_grad_chunk",
                    "forward_chunk", "weight_task", "gather", "im2col", "col2im", "sgemm_", "direct", "relu_",
                    "add_relu", "ops::add", "max_pool", "avg_pool", "plane_moments", "plane_gradient_sums",
                    "combine_lanes", "transform_filter_panel_layout")
SAMPLE = re.compile(r"\s*(\d+)\s+([\d.]+):\s+\S+\s+(.*)")
WINDOW_S = 0.0006


def symbol(text):
    return re.sub(r"\s*\([^()]*\)$", "", text).strip()


def waiting(text):
    return "libgomp" in text


def classify(other):
    if other is None:
        return "other thread: no sample nearby"
    if waiting(other):
        return "both waiting"
    if any(k in other for k in PARALLEL_KERNELS):
        return "other thread in a parallel kernel (imbalance)"
    return "other thread in other code (serial section)"


def analyze(lines):
    """Per thread of the two busiest: (tid, samples, classes, imbalance symbols, serial symbols)."""
    samples = collections.defaultdict(list)  # tid -> [(time, text)]
    for line in lines:
        m = SAMPLE.match(line)
        if m:
            samples[int(m.group(1))].append((float(m.group(2)), m.group(3)))
    busiest = sorted(samples, key=lambda t: -len(samples[t]))[:2]
    if len(busiest) < 2:
        raise ValueError("expected samples of two threads (perf script -F tid,time,ip,sym,dso -G)")
    out = []
    for me, other in (busiest, busiest[::-1]):
        mine, theirs = samples[me], sorted(samples[other])
        times = [t for t, _ in theirs]
        classes, serial, imbalance = collections.Counter(), collections.Counter(), collections.Counter()
        for t, text in mine:
            if not waiting(text):
                continue
            i = bisect.bisect_left(times, t)
            near = min((j for j in (i - 1, i) if 0 <= j < len(theirs)), key=lambda j: abs(times[j] - t))
            o = theirs[near][1] if abs(times[near] - t) < WINDOW_S else None
            c = classify(o)
            classes[c] += 1
            if c.endswith("(serial section)"):
                serial[symbol(o)] += 1
            elif c.endswith("(imbalance)"):
                imbalance[symbol(o)] += 1
        out.append((me, len(mine), classes, imbalance, serial))
    return out


def main():
    try:
        threads = analyze(sys.stdin)
    except ValueError as e:
        sys.exit(f"spin_share.py: {e}")
    for me, n, classes, imbalance, serial in threads:
        print(f"thread {me}: {n} samples, waiting in libgomp {100.0 * sum(classes.values()) / n:.1f}%")
        for c, v in classes.most_common():
            print(f"  {100.0 * v / n:5.1f}%  {c}")
        for title, counts in (("imbalance, the other thread in", imbalance), ("serial, the other thread in", serial)):
            print(f"  {title}:")
            for s, v in counts.most_common(6):
                print(f"     {100.0 * v / n:5.2f}%  {s}")


if __name__ == "__main__":
    main()
