#!/usr/bin/env python3
"""Figures for `inq reproduce`, drawn only from its JSON files (Debian's python3-matplotlib).

  python3 tools/plot_results.py RUN_DIR

Reads RUN_DIR/results.json (and histogram.json if present) and writes:
  steps.png      accuracy after quantizing and after re-training at each step, per bit-width
  bits.png       final accuracy vs bit-width: INQ (magnitude, random) and one-shot, FP32 as a line
  histogram.png  one layer's weights before and after INQ
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(run_dir):
    with open(os.path.join(run_dir, "results.json")) as f:
        results = json.load(f)
    rows = results["rows"]
    arch = results.get("arch", "")
    first_seed = rows[0]["seed"]
    fp32 = [r["acc1"] for r in rows if r["strategy"] == "fp32"]
    fp32_mean = 100 * sum(fp32) / len(fp32)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        if r["seed"] != first_seed or not r["steps"] or r["strategy"] == "oneshot":
            continue
        portions = [s["portion"] for s in r["steps"]]
        quantized = [100 * s["acc1_quantized"] for s in r["steps"]]
        retrained = [100 * (s["acc1_retrained"] if s["acc1_retrained"] is not None else s["acc1_quantized"])
                     for s in r["steps"]]
        line, = ax.plot(portions, retrained, marker="o", label=f"{r['bits']}-bit {r['strategy']}: after re-training")
        ax.plot(portions, quantized, marker="x", linestyle=":", color=line.get_color(),
                label=f"{r['bits']}-bit {r['strategy']}: right after quantizing")
    ax.axhline(fp32_mean, color="black", linewidth=1, label="FP32")
    ax.set_xlabel("accumulated portion of quantized weights")
    ax.set_ylabel("test top-1 accuracy (%)")
    ax.set_title(f"INQ step by step ({arch}, Fashion-MNIST)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(run_dir, "steps.png"), dpi=120)

    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, marker in (("magnitude", "o"), ("random", "s"), ("oneshot", "^")):
        by_bits = {}
        for r in rows:
            if r["strategy"] == strategy:
                by_bits.setdefault(r["bits"], []).append(100 * r["acc1"])
        if by_bits:
            bits = sorted(by_bits)
            ax.plot(bits, [sum(by_bits[b]) / len(by_bits[b]) for b in bits], marker=marker,
                    label={"magnitude": "INQ (magnitude)", "random": "INQ (random)",
                           "oneshot": "one-shot, no re-training"}[strategy])
    ax.axhline(fp32_mean, color="black", linewidth=1, label="FP32")
    ax.set_xlabel("bit-width")
    ax.set_ylabel("test top-1 accuracy (%)")
    ax.set_title(f"Accuracy vs bit-width ({arch})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(run_dir, "bits.png"), dpi=120)

    hist_path = os.path.join(run_dir, "histogram.json")
    if os.path.exists(hist_path):
        with open(hist_path) as f:
            h = json.load(f)
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
        axes[0].hist(h["fp32"], bins=80)
        axes[0].set_title(f"{h['layer']}: FP32")
        values = sorted(set(h["inq"]))
        counts = [h["inq"].count(v) for v in values]
        axes[1].bar(range(len(values)), counts)
        axes[1].set_xticks(range(len(values)))
        axes[1].set_xticklabels([f"{v:g}" for v in values], rotation=90, fontsize=6)
        axes[1].set_title(f"after {h['bits']}-bit INQ ({len(values)} distinct values)")
        fig.tight_layout()
        fig.savefig(os.path.join(run_dir, "histogram.png"), dpi=120)
    print(f"figures written to {run_dir}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
