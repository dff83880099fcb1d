#!/usr/bin/env python3
"""The PyTorch twin of bench/bench_eval.cpp: eval-mode forward passes of torchvision's model (random
weights; nothing is downloaded) on a fixed random batch of 3x224x224 images under torch.no_grad().
Prints one line: "<arch> <images/s median> ...". Needs Debian's python3-torch and
python3-torchvision.

  /usr/bin/python3 bench/pytorch_eval.py --arch resnet18 --threads 2 --batch 32 --repeats 5
"""
import argparse
import statistics
import time

import torch
import torchvision


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=1.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = getattr(torchvision.models, args.arch)(num_classes=1000).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    rates = []
    with torch.no_grad():
        model(x)  # warm-up: first-call allocations and oneDNN/BLAS set-up
        for _ in range(args.repeats):
            n, start = 0, time.perf_counter()
            while True:
                model(x)
                n += 1
                elapsed = time.perf_counter() - start
                if elapsed >= args.min_time:
                    break
            rates.append(args.batch * n / elapsed)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, {args.size}x{args.size}")
    print(f"{args.arch} {statistics.median(rates):.1f} images/s (median of {len(rates)}: "
          f"min {min(rates):.1f} max {max(rates):.1f})")


if __name__ == "__main__":
    main()
