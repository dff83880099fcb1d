#!/usr/bin/env python3
"""The PyTorch twin of bench/bench_model.cpp: one workload in one process, same flags, same output
line, so that `make bench-compare` (bench/bench_compare.py) can run the two frameworks alternately.

  /usr/bin/python3 bench/pytorch_model.py --mode train --arch resnet20 --batch 128 --channels 1 \
      --size 28 --classes 10 --threads 2 --warmup 1 --min-time 2

  train  forward, cross-entropy, backward, SGD (lr 0.01, momentum 0.9, weight decay 5e-4)
  eval   one eval-mode forward pass under torch.no_grad()

LeNet-5 and ResNet-20 are built here exactly as models/lenet5.cpp and models/resnet20.cpp build
them; the paper models are torchvision's (random weights, nothing is downloaded), GoogLeNet without
its auxiliary heads as in bench/bench_workloads.h. Prints
  result framework=torch mode=... arch=... batch=... threads=... steps=... seconds=...
         images_per_s=... peak_rss_kb=...
(peak_rss_kb: getrusage's ru_maxrss of the whole process, Python and the torch import included).
Needs Debian's python3-torch and python3-torchvision.
"""
import argparse
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def lenet5(num_classes, in_channels):
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet20(nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for stage, width in enumerate((16, 32, 64)):
            layer = []
            for b in range(3):
                layer.append(BasicBlock(cin, width, 2 if stage > 0 and b == 0 else 1))
                cin = width
            blocks.append(nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3 = blocks
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def build(arch, num_classes, in_channels):
    if arch == "lenet5":
        return lenet5(num_classes, in_channels)
    if arch == "resnet20":
        return ResNet20(num_classes, in_channels)
    import torchvision
    if in_channels != 3:
        raise SystemExit(f"{arch}: torchvision's models take 3 input channels")
    if arch == "googlenet":
        return torchvision.models.googlenet(num_classes=num_classes, aux_logits=False, init_weights=True)
    return getattr(torchvision.models, arch)(num_classes=num_classes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("train", "eval"), default="train")
    ap.add_argument("--arch", default="resnet20")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--min-steps", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=2.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(args.arch, args.classes, args.channels)
    x = torch.randn(args.batch, args.channels, args.size, args.size)
    y = torch.randint(0, args.classes, (args.batch,))

    if args.mode == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
    else:
        model.eval()

        def step():
            with torch.no_grad():
                model(x)

    for _ in range(args.warmup):
        step()
    steps, start = 0, time.perf_counter()
    elapsed = 0.0
    while steps < args.min_steps or elapsed < args.min_time:
        step()
        steps += 1
        elapsed = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"# torch {torch.__version__}")
    print(f"result framework=torch mode={args.mode} arch={args.arch} batch={args.batch} "
          f"threads={torch.get_num_threads()} steps={steps} seconds={elapsed:.3f} "
          f"images_per_s={args.batch * steps / elapsed:.2f} peak_rss_kb={rss}")


if __name__ == "__main__":
    main()
