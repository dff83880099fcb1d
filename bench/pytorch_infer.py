#!/usr/bin/env python3
"""The PyTorch float32 side of bench/compare_packed_inference.sh, measured as `inq bench-model`
measures this framework: torchvision's model (random weights; nothing is downloaded) in eval mode
under torch.no_grad(), a fixed random batch, `--warmup` untimed forward passes, then `--rounds`
timed ones; prints the median as "<number> img/s" and the process's peak resident memory
(getrusage ru_maxrss), in the same words as `inq bench-model`. Needs Debian's python3-torch and
python3-torchvision (run it with /usr/bin/python3).

  /usr/bin/python3 bench/pytorch_infer.py --arch alexnet --batch 1 --threads 2
"""
import argparse
import resource
import statistics
import time

import torch
import torchvision


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kwargs = {"aux_logits": False, "init_weights": False} if args.arch == "googlenet" else {}
    model = getattr(torchvision.models, args.arch)(num_classes=1000, **kwargs).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    seconds = []
    with torch.no_grad():
        for _ in range(args.warmup):
            model(x)
        for _ in range(args.rounds):
            start = time.perf_counter()
            model(x)
            seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"pytorch {torch.__version__}: {args.arch} float32, batch {args.batch}, {args.threads} threads, "
          f"median of {args.rounds} passes after {args.warmup} warm-up")
    print(f"{args.batch / median:.2f} img/s ({median * 1e3:.3f} ms per pass)")
    print(f"peak resident memory: {peak_mib:.1f} MiB")


if __name__ == "__main__":
    main()
