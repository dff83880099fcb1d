#!/usr/bin/env python3
"""One training epoch of ResNet-20 on Fashion-MNIST in PyTorch, timed: the twin of one epoch of
`inq train --arch resnet20` (docs/REPRODUCTION.md section 1 recipe), for bench/compare_train_epoch.sh.

  /usr/bin/python3 bench/pytorch_train_epoch.py --data /usr/share/datasets/fashion-mnist --threads 2

The same work per epoch as the recipe: 60,000 training images in a fresh random order, batches of
128 (the last one partial), zero padding 2 then a random 28x28 crop and a random horizontal flip per
image, normalization by the training set's mean and standard deviation, forward, cross-entropy,
backward, SGD (momentum 0.9, weight decay 5e-4, lr 0.1 on the cosine schedule). The model is
bench/pytorch_model.py's ResNet-20, built as models/resnet20.cpp builds it. The data are decoded
into memory before the clock starts, as `inq train` does before its first epoch; the timed loop
includes the augmentation (done on whole batches with tensor ops). Prints
  result framework=torch arch=resnet20 threads=... images=... seconds=... images_per_s=...
"""
import argparse
import gzip
import math
import os
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F

from pytorch_model import build


def read_idx(folder, stem):
    """An IDX file of the dataset folder, plain or gzipped, as a numpy array."""
    for name in (stem, stem + ".gz"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as f:
                data = f.read()
            dims = data[3]
            shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
            return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
    raise SystemExit(f"pytorch_train_epoch.py: no {stem}[.gz] in {folder}")


def augment(batch, gen):
    """Zero padding 2, a random 28x28 crop and a random horizontal flip for each image of (n, 1, 28, 28)."""
    n = batch.shape[0]
    padded = F.pad(batch, (2, 2, 2, 2))
    dy = torch.randint(0, 5, (n,), generator=gen)
    dx = torch.randint(0, 5, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(28)[None, :])[:, None, :, None].expand(n, 1, 28, 32)
    cols = (dx[:, None] + torch.arange(28)[None, :])[:, None, None, :].expand(n, 1, 28, 28)
    out = padded.gather(2, rows)  # (n, 1, 28, 32): the crop's rows
    out = out.gather(3, cols)
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=15, help="length of the cosine schedule (one epoch runs)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training images (smoke tests)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    images = torch.from_numpy(read_idx(args.data, "train-images-idx3-ubyte").astype(np.float32) / 255.0)
    labels = torch.from_numpy(read_idx(args.data, "train-labels-idx1-ubyte").astype(np.int64))
    if args.limit > 0:
        images, labels = images[:args.limit], labels[:args.limit]
    images = ((images - images.mean()) / images.std()).unsqueeze(1)  # (60000, 1, 28, 28)
    model = build("resnet20", 10, 1)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    steps_per_epoch = math.ceil(len(images) / args.batch)
    total = steps_per_epoch * args.epochs
    gen = torch.Generator().manual_seed(1)

    start = time.perf_counter()
    order = torch.randperm(len(images), generator=gen)
    for step, b0 in enumerate(range(0, len(images), args.batch)):
        idx = order[b0:b0 + args.batch]
        x, y = augment(images[idx], gen), labels[idx]
        for group in opt.param_groups:
            group["lr"] = 0.05 * (1 + math.cos(math.pi * step / total))
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"result framework=torch arch=resnet20 threads={args.threads} images={len(images)} "
          f"seconds={seconds:.3f} images_per_s={len(images) / seconds:.2f} peak_rss_kb={rss}")


if __name__ == "__main__":
    main()
