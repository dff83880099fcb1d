#!/usr/bin/env python3
"""`make bench-compare`: this framework against PyTorch, side by side on this machine.

For every workload, thread count and round it starts one process per framework, bench/bench_model
(C++) and bench/pytorch_model.py (PyTorch), rotating which goes first from round to round so that
load drifts hit all alike. PyTorch runs with glibc's malloc told to keep freed memory
("torch-kept": MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ raised, the effect of the
jemalloc/tcmalloc that PyTorch's CPU tuning guides recommend), and with --torch-malloc both also as
a user gets it ("torch"). PyTorch allocates fresh activations every step; by default glibc
returns large blocks to the kernel and the next step page-faults them back in, which on a VM with
costly page faults halves PyTorch's speed. The stricter ratio, against torch-kept, is the
yardstick; this framework keeps its memory (a caching allocator). Each process prints one
"result key=value ..." line (images/s, peak resident memory). Then, per thread count,
bench/bench_conv measures the machine's sgemm peak and this framework's convolutions on
bench_conv's shapes, and bench/pytorch_conv.py PyTorch's on the same shapes. The report (markdown) goes to stdout and to --out:

  workloads   the five paper models (224x224, 1000 classes): training step at batch 8, inference
              at batch 1 and 8; LeNet-5 and ResNet-20 (1x28x28, 10 classes) training step at batch 128
  columns     img/s of every round, median per framework, ratios of medians against each PyTorch
              (>1: this framework is faster), peak RSS (the largest ru_maxrss over the rounds) of
              each framework's process
  conv        GFLOP/s per shape, forward and backward, and as a share of the machine's sgemm peak
              at the same thread count: the best of OpenBLAS's kernels in use and, on a processor
              with AVX-512 whose kernels in use lack it, of its SkylakeX kernels

  bench/bench_compare.py                       # the full table (about 25 minutes on 2 cores)
  bench/bench_compare.py --torch-malloc both   # PyTorch also as installed (about 35 minutes)
  bench/bench_compare.py --quick               # smoke test: 1 round, 2 threads, 3 models (~2 min)
  bench/bench_compare.py --models resnet20 --threads 2 --rounds 5

Timing per process: `--warmup` untimed steps, then steps until the workload's minimum time has
passed (at least one step). Minimum times are chosen so the full run stays under 30 minutes on the
2-core machine this was written on; --time-scale multiplies them all.
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

PAPER_MODELS = ("alexnet", "vgg16", "googlenet", "resnet18", "resnet50")
SMALL_MODELS = ("lenet5", "resnet20")
QUICK_MODELS = ("lenet5", "resnet20", "resnet18")


def read_env_file(path):
    """NAME=VALUE lines of `path` as a dict (blank lines and # comments skipped)."""
    env = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, value = line.partition("=")
            if not sep or not name:
                raise ValueError(f"{path}:{number}: expected NAME=VALUE, got {line!r}")
            env[name] = value
    return env


# glibc malloc settings for "torch-kept" (why: bench/torch_kept.env), shared with the shell scripts.
TORCH_KEPT_ENV = read_env_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_kept.env"))
TORCH_VARIANTS = {"both": ("torch", "torch-kept"), "default": ("torch",), "kept": ("torch-kept",)}


class Workload:
    """One row of the table: what is run, on what input, and for how long each process times it."""

    def __init__(self, mode, arch, batch, channels, size, classes, min_time, warmup):
        self.mode, self.arch, self.batch = mode, arch, batch
        self.channels, self.size, self.classes = channels, size, classes
        self.min_time, self.warmup = min_time, warmup

    @property
    def label(self):
        what = "training step" if self.mode == "train" else "inference"
        return f"{self.arch} {what}, batch {self.batch}, {self.channels}x{self.size}x{self.size}"

    def flags(self, threads, time_scale):
        return ["--mode", self.mode, "--arch", self.arch, "--batch", str(self.batch),
                "--channels", str(self.channels), "--size", str(self.size), "--classes", str(self.classes),
                "--threads", str(threads), "--warmup", str(self.warmup),
                "--min-time", f"{self.min_time * time_scale:g}"]


def workloads(models):
    """The table's rows for the chosen models, in the issue's order (small models first)."""
    out = []
    for arch in models:
        if arch in SMALL_MODELS:
            # PyTorch needs several steps to reach its steady speed on these (measured 2026-11-30:
            # ResNet-20 at 2 threads, 330-460 img/s over 2 s after 2 warm-up steps, 500-595 over
            # 8 s after 3): 5 warm-up steps and 5 s, so neither side is timed while warming up.
            out.append(Workload("train", arch, 128, 1, 28, 10, min_time=5.0, warmup=5))
        elif arch in PAPER_MODELS:
            # A paper-model training step takes 0.5-5 s here: one warm-up step, then at least 2 s.
            out.append(Workload("train", arch, 8, 3, 224, 1000, min_time=2.0, warmup=1))
            out.append(Workload("eval", arch, 1, 3, 224, 1000, min_time=1.0, warmup=2))
            out.append(Workload("eval", arch, 8, 3, 224, 1000, min_time=1.0, warmup=1))
        else:
            raise SystemExit(f"unknown model {arch}; known: {', '.join(SMALL_MODELS + PAPER_MODELS)}")
    return out


# ---- parsing and statistics (tests/test_bench_compare.py checks these) ----

def parse_result_line(text):
    """The key=value pairs of the first line starting with `result ` (numbers converted), or None."""
    for line in text.splitlines():
        if line.startswith("result "):
            fields = {}
            for item in line.split()[1:]:
                key, _, value = item.partition("=")
                fields[key] = _number(value)
            return fields
    return None


def _number(value):
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            pass
    return value


def median(values):
    """Median of the values that are numbers; None when there are none (every round failed)."""
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def ratio(ours, theirs):
    """ours / theirs, None when either is missing or theirs is 0."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def conv_medians(report):
    """{benchmark run name: GFLOP/s} from a bench_conv JSON report (median aggregates; without
    aggregates, the median of the plain repetitions)."""
    medians, plain = {}, {}
    for b in report.get("benchmarks", []):
        rate = b.get("GFLOP/s")
        if rate is None:
            continue
        name = b["run_name"]
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = rate
        else:
            plain.setdefault(name, []).append(rate)
    for name, rates in plain.items():
        medians.setdefault(name, statistics.median(rates))
    return medians


def conv_rate(medians, kind, shape):
    """GFLOP/s of `kind`/`shape` (ConvForward, ConvBackward, SgemmPeak) whatever suffixes Google
    Benchmark added (/real_time, /2048)."""
    for name, rate in medians.items():
        if name == f"{kind}/{shape}" or name.startswith(f"{kind}/{shape}/"):
            return rate
    return None


def sgemm_peak(medians):
    """The best GFLOP/s over the SgemmPeak sizes in a conv_medians result, None when absent."""
    rates = [rate for name, rate in medians.items() if name.startswith("SgemmPeak/")]
    return max(rates) if rates else None


AVX512_BLAS_KERNELS = ("SkylakeX", "Cooperlake", "SapphireRapids")


def cpu_has_avx512():
    """Whether the processor has the AVX-512 subsets OpenBLAS's SkylakeX kernels use (F, BW, VL, DQ),
    as framework/threading.cpp's cpu_has_avx512 asks it."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return all(flag in flags for flag in ("avx512f", "avx512bw", "avx512vl", "avx512dq"))


def avx512_peak_kernels(blas_kernels):
    """The OPENBLAS_CORETYPE whose sgemm peak is also measured, or None: "SkylakeX" where the processor
    has AVX-512 but the kernels in use lack it (an environment may pin OPENBLAS_CORETYPE=Haswell; on
    the Zen 5 VM that halves sgemm's speed). The machine's peak is the best its OpenBLAS reaches:
    the convolution shares are stated against the higher of the two."""
    if not cpu_has_avx512() or (blas_kernels or "") in AVX512_BLAS_KERNELS:
        return None
    return "SkylakeX"


def parse_torch_conv(text):
    """{(kind, shape): GFLOP/s} from bench/pytorch_conv.py's output."""
    out = {}
    for line in text.splitlines():
        if line.startswith("conv "):
            f = dict(item.partition("=")[::2] for item in line.split()[1:])
            out[(f["kind"], f["shape"])] = float(f["gflops"])
    return out


def fmt(value, digits=1):
    if value is None:
        return "failed"
    return f"{value:,.{digits}f}"


# ---- running ----

def run(cmd, env, timeout):
    """Runs one process; returns (stdout, error text or None)."""
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "", f"timed out after {timeout} s"
    if p.returncode != 0:
        return p.stdout, f"exit {p.returncode}: {p.stderr.strip()[-300:]}"
    return p.stdout, None


def model_command(framework, workload, threads, args):
    flags = workload.flags(threads, args.time_scale)
    if framework == "inq":
        return [os.path.join(args.build, "bench_model")] + flags
    return [args.python, os.path.join(args.bench_dir, "pytorch_model.py")] + flags


def framework_env(framework, threads, blas_kernels=None):
    env = base_env(threads)
    if framework == "torch-kept":
        env.update(TORCH_KEPT_ENV)
    # The same OpenBLAS kernels for both: where this framework's start-up replaced a fallback kernel
    # set (framework/threading.h: Debian's OpenBLAS runs SSE3 kernels on recent Xeons), PyTorch's
    # processes get the same OPENBLAS_CORETYPE; a user's own setting reaches both unchanged.
    if framework != "inq" and blas_kernels and "OPENBLAS_CORETYPE" not in os.environ:
        env["OPENBLAS_CORETYPE"] = blas_kernels
    return env


def inq_blas_kernels(build):
    """The OpenBLAS kernel set bench_model runs with (its report line's "kernels X"), or None."""
    try:
        out = subprocess.run([os.path.join(build, "bench_model"), "--mode", "eval", "--arch", "lenet5", "--batch",
                              "1", "--min-time", "0", "--warmup", "0"], env=base_env(1), stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, timeout=60).stdout
    except Exception:
        return None
    m = re.search(r"kernels (\S+)", out)
    return m.group(1) if m else None


def base_env(threads):
    env = dict(os.environ)
    # Both frameworks see the same thread count through their own setting; these keep either from
    # reading a stray OMP_NUM_THREADS differently.
    env["OMP_NUM_THREADS"] = str(threads)
    env["INQ_THREADS"] = str(threads)
    return env


def framework_order(frameworks, k):
    """The processes of one cell in the order they run: rotated by k (round + row), so that each
    framework goes first as often as the others."""
    k %= len(frameworks)
    return list(frameworks[k:]) + list(frameworks[:k])


def measure_models(args, log):
    """{(label, threads): {framework: [result dict or None per round]}}, errors in `log`."""
    results = {}
    rows = workloads(args.models)
    for threads in args.threads:
        for r in range(args.rounds):
            for i, w in enumerate(rows):
                for framework in framework_order(args.frameworks, r + i):
                    t0 = time.time()
                    env = framework_env(framework, threads, args.blas_kernels)
                    out, err = run(model_command(framework, w, threads, args), env, args.timeout)
                    res = parse_result_line(out) if err is None else None
                    if res is None:
                        log.append(f"{framework} {w.label} {threads} thr round {r + 1}: {err or 'no result line'}")
                    results.setdefault((w.label, threads), {}).setdefault(framework, []).append(res)
                    rate = f"{res['images_per_s']:.1f} img/s" if res else "failed"
                    print(f"[{elapsed()}] {threads} thr round {r + 1}/{args.rounds} {framework:10s} {w.label}: "
                          f"{rate} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    return rows, results


def measure_conv(args, log):
    """{threads: (peak GFLOP/s with the kernels in use, peak with the AVX-512 kernels or None,
    {shape: {(framework, kind): GFLOP/s}})}, medians over the rounds."""
    out = {}
    peak_kernels = avx512_peak_kernels(args.blas_kernels)
    conv_filter = "^(ConvForward|ConvBackward|SgemmPeak)/"
    if args.quick:
        conv_filter = "^(ConvForward|ConvBackward)/(r20_3x3_16c|r50_3x3_128c)|^SgemmPeak/"
    for threads in args.threads:
        env = base_env(threads)
        peaks, avx512_peaks, rates = [], [], {}
        for r in range(args.conv_rounds):
            with tempfile.TemporaryDirectory() as tmp:
                json_path = os.path.join(tmp, "conv.json")
                inq_cmd = [os.path.join(args.build, "bench_conv"), f"--benchmark_filter={conv_filter}",
                           f"--benchmark_min_time={args.conv_min_time:g}", "--benchmark_repetitions=3",
                           "--benchmark_enable_random_interleaving=true",
                           "--benchmark_report_aggregates_only=true",
                           f"--benchmark_out={json_path}", "--benchmark_out_format=json"]
                _, err = run(inq_cmd, env, args.timeout)
                if err:
                    log.append(f"bench_conv {threads} thr round {r + 1}: {err}")
                    continue
                with open(json_path) as f:
                    report = json.load(f)
                medians = conv_medians(report)
                peaks.append(sgemm_peak(medians))
                if peak_kernels:
                    peak_cmd = [c if not c.startswith("--benchmark_filter=") else "--benchmark_filter=^SgemmPeak/"
                                for c in inq_cmd]
                    _, err = run(peak_cmd, dict(env, OPENBLAS_CORETYPE=peak_kernels), args.timeout)
                    if err:
                        log.append(f"bench_conv SgemmPeak ({peak_kernels}) {threads} thr round {r + 1}: {err}")
                    else:
                        with open(json_path) as f:
                            avx512_peaks.append(sgemm_peak(conv_medians(json.load(f))))
                shapes = sorted(n.split("/")[1] for n in medians if n.startswith("ConvForward/"))
                # PyTorch only on the shapes this run measured.
                report["context"] = {k: v for k, v in report["context"].items()
                                     if not k.startswith("conv_shape ") or k.split(" ", 1)[1] in shapes}
                with open(json_path, "w") as f:
                    json.dump(report, f)
                torch_out, err = run([args.python, os.path.join(args.bench_dir, "pytorch_conv.py"),
                                      "--shapes", json_path, "--threads", str(threads),
                                      "--min-time", f"{args.conv_min_time:g}", "--repeats", "3"],
                                     framework_env(args.frameworks[-1], threads, args.blas_kernels), args.timeout)
                if err:
                    log.append(f"pytorch_conv {threads} thr round {r + 1}: {err}")
                torch_rates = parse_torch_conv(torch_out)
                for shape in shapes:
                    cell = rates.setdefault(shape, {})
                    for kind, name in (("forward", "ConvForward"), ("backward", "ConvBackward")):
                        cell.setdefault(("inq", kind), []).append(conv_rate(medians, name, shape))
                        cell.setdefault(("torch", kind), []).append(torch_rates.get((kind, shape)))
            print(f"[{elapsed()}] conv shapes, {threads} thr, round {r + 1}/{args.conv_rounds} done",
                  file=sys.stderr, flush=True)
        out[threads] = (median(peaks), median(avx512_peaks) if avx512_peaks else None,
                        {s: {k: median(v) for k, v in cell.items()} for s, cell in rates.items()})
    return out


_start = time.time()


def elapsed():
    s = int(time.time() - _start)
    return f"{s // 60:02d}:{s % 60:02d}"


# ---- the report ----

def machine_lines(args):
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True, timeout=60).stdout.strip()
        except Exception:  # a missing tool leaves its line empty, it does not stop the report
            return ""
    cpu = sh("lscpu | sed -n 's/^Model name: *//p'")
    torch_v = sh(f"{args.python} -c 'import torch, torchvision; print(torch.__version__, torchvision.__version__)'")
    blas = sh(f"INQ_THREADS=1 {os.path.join(args.build, 'bench_model')} --mode eval --arch lenet5 --batch 1 "
              "--min-time 0 --warmup 0 | sed -n 's/^# openmp spin policy [^,]*, blas //p'")
    return [f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- machine: {cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}",
            f"- PyTorch / torchvision: {torch_v} ({args.python}); this framework's BLAS: {blas}",
            f"- OpenBLAS kernels for PyTorch: {torch_blas_line(args)}",
            f"- load average at start: {args.load_start}; at end: {os.getloadavg()[0]:.2f}"]


def torch_blas_line(args):
    if "OPENBLAS_CORETYPE" in os.environ:
        return f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} (set by the caller, for both frameworks)"
    if args.blas_kernels:
        return f"OPENBLAS_CORETYPE={args.blas_kernels}, the set this framework runs"
    return "as OpenBLAS detects them"


def table_row(label, threads, cell, frameworks):
    """One workload's row: per framework its img/s per round, then the medians, the ratios of this
    framework's median to each PyTorch's, and the peak RSS; cell = {framework: [result or None]}."""
    per = {}
    for fw in frameworks:
        rs = cell.get(fw, [])
        rates = [x["images_per_s"] if x else None for x in rs]
        rss = [x["peak_rss_kb"] for x in rs if x]
        per[fw] = (" / ".join(fmt(v) for v in rates), median(rates),
                   f"{max(rss) / 1024:,.0f} MiB" if rss else "failed")
    ratios = []
    for t in frameworks[1:]:
        q = ratio(per["inq"][1], per[t][1])
        ratios.append("**" + fmt(q, 2) + "**" if q is not None else "failed")
    return (f"| {label} | {threads} | " + " | ".join(per[fw][0] for fw in frameworks) + " | "
            + " | ".join(fmt(per[fw][1]) for fw in frameworks) + " | " + " | ".join(ratios) + " | "
            + " | ".join(per[fw][2] for fw in frameworks) + " |")


def report(args, rows, results, conv, log):
    lines = ["# bench-compare: this framework (inq) vs PyTorch", ""] + machine_lines(args)
    torches = [fw for fw in args.frameworks if fw != "inq"]
    lines += [f"- {args.rounds} round(s) per cell, one process per (framework, workload, round, threads), "
              "framework order rotating; img/s per round, median, ratio of medians (inq / torch, "
              ">1 means this framework is faster); peak RSS = max ru_maxrss over the rounds (MiB; "
              "PyTorch's includes the Python interpreter and the torch import)"]
    if "torch-kept" in torches:
        lines += ["- torch-kept: PyTorch with glibc's malloc keeping freed memory ("
                  + ", ".join(f"{k}={v}" for k, v in TORCH_KEPT_ENV.items()) + "); torch: as installed"]
    lines += [""]
    lines += ["| workload | thr | inq img/s per round | " + " | ".join(f"{t} img/s per round" for t in torches)
              + " | inq median | " + " | ".join(f"{t} median" for t in torches) + " | "
              + " | ".join(f"inq / {t}" for t in torches) + " | inq peak RSS | "
              + " | ".join(f"{t} peak RSS" for t in torches) + " |",
              "|" + "---|" * (5 + 4 * len(torches))]
    for threads in args.threads:
        for w in rows:
            lines.append(table_row(w.label, threads, results.get((w.label, threads), {}), args.frameworks))
    if args.conv_rounds == 0:
        lines += ["", "Convolutions: not measured (--conv-rounds 0)."]
    else:
        lines += conv_section(args, conv)
    if log:
        lines += ["", "## Failures", ""] + [f"- {entry}" for entry in log]
    lines += ["", f"Command: `{' '.join(sys.argv)}`, {elapsed()} (mm:ss) in all."]
    return "\n".join(lines) + "\n"


def conv_section(args, conv):
    """The per-shape convolution table: GFLOP/s and share of the sgemm peak, ours and PyTorch's."""
    lines = ["", "## Convolutions (bench_conv shapes)", "",
             f"GFLOP/s per shape (median over {args.conv_rounds} round(s) of the median of 3 repetitions) "
             "and as a share of the machine's sgemm peak at the same thread count (the best of one 512^3, 1024^3 "
             "and 2048^3 OpenBLAS sgemm, with the kernels in use and, where the processor has AVX-512 and "
             "those kernels do not use it, with OpenBLAS's SkylakeX kernels: the higher is the yardstick); "
             f"backward = input and weight gradients; PyTorch: {args.frameworks[-1]}.", ""]

    def yardstick(peak, avx512_peak):
        return max(p for p in (peak, avx512_peak, 0.0) if p is not None) or None

    for threads in args.threads:
        peak, avx512_peak, _ = conv.get(threads, (None, None, {}))
        line = f"sgemm peak, {threads} thread(s): **{fmt(yardstick(peak, avx512_peak))} GFLOP/s**"
        if avx512_peak is not None:
            line += (f" (OpenBLAS's SkylakeX kernels: {fmt(avx512_peak)}; the kernels in use, "
                     f"{args.blas_kernels or 'as detected'}: {fmt(peak)})")
        lines += [line, ""]
    lines += ["| shape | thr | inq fwd | torch fwd | inq bwd | torch bwd |", "|---|---|---|---|---|---|"]
    for threads in args.threads:
        peak, avx512_peak, shapes = conv.get(threads, (None, None, {}))
        peak = yardstick(peak, avx512_peak)
        for shape, cell in sorted(shapes.items()):
            row = f"| {shape} | {threads} |"
            for kind in ("forward", "backward"):
                for fw in ("inq", "torch"):
                    g = cell.get((fw, kind))
                    share = f" ({100 * g / peak:.0f}%)" if g is not None and peak else ""
                    row += f" {fmt(g)}{share} |"
            lines.append(row)
    return lines


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--python", default="/usr/bin/python3", help="the interpreter with torch (Debian's)")
    ap.add_argument("--quick", action="store_true", help="1 round, 2 threads, LeNet-5, ResNet-20, ResNet-18")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conv-rounds", type=int, default=1)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--models", default=",".join(SMALL_MODELS + PAPER_MODELS))
    ap.add_argument("--torch-malloc", choices=sorted(TORCH_VARIANTS), default="kept",
                    help="PyTorch with malloc keeping freed memory (kept, the yardstick), as installed "
                         "(default), or both (a third process per cell: about 35 minutes in all)")
    ap.add_argument("--time-scale", type=float, default=1.0, help="multiplies every minimum time")
    ap.add_argument("--conv-min-time", type=float, default=0.1)
    ap.add_argument("--timeout", type=int, default=600, help="per process, seconds")
    ap.add_argument("--out", default=None, help="default: <build>/bench-compare.md")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.threads, args.time_scale = 1, "2", 0.5 * args.time_scale
        args.models = ",".join(m for m in args.models.split(",") if m in QUICK_MODELS)
    args.threads = [int(t) for t in str(args.threads).split(",")]
    args.models = [m for m in args.models.split(",") if m]
    args.bench_dir = here
    args.frameworks = ["inq"] + list(TORCH_VARIANTS[args.torch_malloc])
    args.out = args.out or os.path.join(args.build, "bench-compare.md")
    args.load_start = f"{os.getloadavg()[0]:.2f}"
    for binary in ("bench_model", "bench_conv"):
        if not os.access(os.path.join(args.build, binary), os.X_OK):
            raise SystemExit(f"{os.path.join(args.build, binary)} is missing: build first (make build)")

    args.blas_kernels = inq_blas_kernels(args.build)
    log = []
    rows, results = measure_models(args, log)
    conv = measure_conv(args, log)
    text = report(args, rows, results, conv, log)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    print(f"(written to {args.out})", file=sys.stderr)


if __name__ == "__main__":
    main()
