#!/usr/bin/env python3
"""Accuracy against compression ratio for `inq reproduce --prune` (train/reproduce_prune.cpp).

Reads OUT/prune_results.json and writes OUT/prune_accuracy_vs_compression.png: one curve per
method (magnitude pruning + 5-bit INQ, DNS + 5-bit INQ, DNS + INQ at each other bit-width) over the
sparsity targets, each point at the ratio measured on its packed file; 5-bit INQ alone is a single
point and FP32 a horizontal line. Rows without a packed file (float weights) are not plotted.
"""
import json
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(out):
    with open(f"{out}/prune_results.json") as f:
        results = json.load(f)
    rows = results["rows"]
    curves = defaultdict(list)
    fp32 = None
    for r in rows:
        if r["method"] == "fp32":
            fp32 = 100.0 * r["acc1"]
        if r["ratio"] is None:
            continue
        curves[f'{r["method"]} {r["bits"]}-bit'].append((r["ratio"], 100.0 * r["acc1"], r["target_sparsity"]))
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, points in sorted(curves.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
        for ratio, acc, target in points:
            if target > 0:
                ax.annotate(f"{target:g}", (ratio, acc), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if fp32 is not None:
        ax.axhline(fp32, color="gray", linestyle="--", linewidth=1, label="FP32")
    ax.set_xscale("log")
    ax.set_xlabel("compression ratio of the quantized tensors (packed file vs float32)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f'{results["arch"]} on Fashion-MNIST: pruning + INQ (labels: sparsity target)')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{out}/prune_accuracy_vs_compression.png", dpi=120)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: plot_prune.py OUT_FOLDER")
    main(sys.argv[1])
