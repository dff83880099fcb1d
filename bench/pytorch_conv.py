#!/usr/bin/env python3
"""PyTorch's convolution (oneDNN on this CPU) on exactly bench_conv's shapes, for `make bench-compare`.

  /usr/bin/python3 bench/pytorch_conv.py --shapes conv.json --threads 2 --min-time 0.2 --repeats 3

--shapes is a bench_conv JSON report: its context holds "conv_shape <name>" = "N C H W K R S stride
pad" for every shape. Forward is F.conv2d without bias; backward is aten's convolution_backward for
the input and weight gradients (no bias), what autograd runs and what bench_conv's ConvBackward
does. GFLOP/s counts 2 x multiply-adds of the forward (twice that for the backward), as bench_conv.
Prints one line per shape and direction:
  conv framework=torch kind=forward shape=<name> threads=2 gflops=<median of repeats>
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


def rate(fn, flops, min_time, repeats):
    fn()  # warm-up: oneDNN primitive creation, first-touch allocations
    rates = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        rates.append(flops * n / elapsed * 1e-9)
    return statistics.median(rates)


def shapes_from_report(path):
    with open(path) as f:
        context = json.load(f)["context"]
    out = []
    for key, value in context.items():
        if key.startswith("conv_shape "):
            n, c, h, w, k, r, s, stride, pad = (int(v) for v in value.split())
            out.append((key[len("conv_shape "):], n, c, h, w, k, r, s, stride, pad))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for name, n, c, h, w, k, r, s, stride, pad in shapes_from_report(args.shapes):
        x = torch.rand(n, c, h, w) - 0.5
        weight = torch.rand(k, c, r, s) - 0.5
        with torch.no_grad():
            y = F.conv2d(x, weight, None, stride, pad)
        dy = torch.rand_like(y) - 0.5
        flops = 2.0 * n * k * c * r * s * y.shape[2] * y.shape[3]

        def forward():
            with torch.no_grad():
                F.conv2d(x, weight, None, stride, pad)

        def backward():
            torch.ops.aten.convolution_backward(dy, x, weight, None, [stride, stride], [pad, pad], [1, 1],
                                                False, [0, 0], 1, [True, True, False])

        for kind, fn, f in (("forward", forward, flops), ("backward", backward, 2 * flops)):
            g = rate(fn, f, args.min_time, args.repeats)
            print(f"conv framework=torch kind={kind} shape={name} threads={torch.get_num_threads()} gflops={g:.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
