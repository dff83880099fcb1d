#!/usr/bin/env python3
"""Golden INQ trajectory for tests/test_inq_sgd.cpp, computed independently of the C++ code.

Run from the repository root:  python3 tests/golden/inq_golden.py > tests/golden/inq_golden.h

Plain Python (float64, fractions for the exact parts), written from docs/INQ_SPEC.md, not from the C++:
  - codebook: n1 = the largest integer with 2^n1 <= 4s/3 (exact rational comparison), n2 = n1 + 1 - 2^(b-1)/2;
  - quantizer: paper Eq. 4 literally over adjacent non-negative levels alpha < beta
    (sign * beta when (alpha + beta)/2 <= |w| < 3beta/2), saturating to 2^n1 above 1.5 * 2^n1;
  - partition: magnitude (largest |w| first, ties by lower index) among still-float weights, frozen count
    floor(sigma_k * N) with sigma_k read as the decimal it is written as;
  - masked SGD with torch.optim.SGD's update rule (d = g + wd*p; buf = d on the first step, else
    mu*buf + (1 - dampening)*d; p -= lr*buf) where frozen weights get d = 0 and are never written;
    momentum forgotten at every quantization step.

Scenario (mirrored exactly by the C++ test): parameters "conv.weight" (6,) and "fc.weight" (2, 4)
(role Weight, group 0, weight decay WD) and "fc.bias" (3,) (role Bias, group 1, no decay, lr_scale 0.5,
never quantized). For k = 1..K: begin_step(k), then RETRAIN SGD steps. The gradient at SGD step t
(0-based, counted over the whole run) is g_i = 0.7 * (p_i - target_i) + 0.1 * (t + 1) * (-1)^i from the
current values. The script refuses scenarios where float32 rounding could change a decision: every
quantized value must be at least MARGIN (relative) away from a quantizer boundary and magnitude ranks
must not be closer than MARGIN.
"""
import math
import struct
from fractions import Fraction

BITS = 4
PORTIONS = ["0.5", "0.75", "1"]
RETRAIN = 3
LR, MOMENTUM, DAMPENING, WD, BIAS_LR_SCALE = 0.1, 0.9, 0.0, 0.01, 0.5
MARGIN = 1e-3

CONV0 = [0.31, -0.12, 0.05, -0.22, 0.17, 0.008]
FC0 = [0.9, -0.3, 0.05, -1.1, 0.45, 0.7, -0.02, 0.2]
BIAS0 = [0.3, -0.2, 0.05]
CONV_T = [0.1, -0.4, 0.3, 0.0, 0.2, -0.1]
FC_T = [0.1, 0.2, -0.3, 0.4, -0.5, 0.6, 0.0, -0.2]
BIAS_T = [-0.5, 0.0, 0.5]


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def codebook(values):
    s = Fraction(max(abs(v) for v in values))
    n1 = 0
    if s > 0:
        n1 = math.floor(math.log2(s * 4 / 3))
        while Fraction(2) ** n1 > s * 4 / 3:
            n1 -= 1
        while Fraction(2) ** (n1 + 1) <= s * 4 / 3:
            n1 += 1
    n2 = n1 + 1 - 2 ** (BITS - 1) // 2
    return n1, n2


def quantize(w, n1, n2):
    a = Fraction(abs(w))
    levels = [Fraction(0)] + [Fraction(2) ** k for k in range(n2, n1 + 1)]
    sign = -1 if w < 0 else 1
    bounds = []
    for alpha, beta in zip(levels, levels[1:]):
        lo, hi = (alpha + beta) / 2, 3 * beta / 2
        bounds += [lo, hi]
        if lo <= a < hi:
            q = sign * float(beta)
            break
    else:
        q = sign * float(levels[-1]) if a >= 3 * levels[-1] / 2 else 0.0
    for b in bounds:
        assert abs(a - b) > MARGIN * b, "value %r too close to quantizer boundary %r" % (w, float(b))
    return q


def grad(p, target, t):
    return [0.7 * (p[i] - target[i]) + 0.1 * (t + 1) * (-1) ** i for i in range(len(p))]


class Param:
    def __init__(self, values, target, wd, lr_scale, quantized):
        self.p = [f32(v) for v in values]
        self.target = target
        self.wd, self.lr_scale, self.quantized = wd, lr_scale, quantized
        self.mask = [1] * len(values)  # 1 = float (re-trained), 0 = frozen
        self.buf = None
        self.cb = None

    def inq_step(self, sigma):
        if self.cb is None:
            self.cb = codebook(self.p)
        n = len(self.p)
        target = math.floor(Fraction(sigma) * n)
        free = [i for i in range(n) if self.mask[i]]
        free.sort(key=lambda i: (-abs(self.p[i]), i))
        need = target - (n - len(free))
        ranked = [abs(self.p[i]) for i in free]
        if 0 < need < len(free):
            assert ranked[need - 1] - ranked[need] > MARGIN * ranked[need - 1], "magnitude tie at the cut"
        for i in free[:need]:
            self.p[i] = quantize(self.p[i], *self.cb)
            self.mask[i] = 0

    def sgd(self, t, lr):
        g = grad(self.p, self.target, t)
        d = [(g[i] + self.wd * self.p[i]) if self.mask[i] else 0.0 for i in range(len(g))]
        if MOMENTUM:
            if self.buf is None:
                self.buf = list(d)
            else:
                self.buf = [MOMENTUM * b + (1 - DAMPENING) * x for b, x in zip(self.buf, d)]
            d = self.buf
        step = lr * self.lr_scale
        self.p = [self.p[i] - step * d[i] if self.mask[i] else self.p[i] for i in range(len(d))]


def lit(xs):
    return "{" + ", ".join(repr(float(x)) for x in xs) + "}"


def main():
    conv = Param(CONV0, CONV_T, WD, 1.0, True)
    fc = Param(FC0, FC_T, WD, 1.0, True)
    bias = Param(BIAS0, BIAS_T, 0.0, BIAS_LR_SCALE, False)
    snapshots, masks = [], []
    t = 0
    for k, sigma in enumerate(PORTIONS, start=1):
        for p in (conv, fc):
            p.inq_step(sigma)
        for p in (conv, fc, bias):
            p.buf = None  # momentum reset per step
        snapshots.append(("begin_step(%d)" % k, list(conv.p), list(fc.p), list(bias.p)))
        masks.append((list(conv.mask), list(fc.mask)))
        for _ in range(RETRAIN):
            for p in (conv, fc, bias):
                p.sgd(t, LR)
            snapshots.append(("sgd step %d" % t, list(conv.p), list(fc.p), list(bias.p)))
            t += 1

    print("// Generated by tests/golden/inq_golden.py (plain Python, float64 and fractions). Do not edit.")
    print("#pragma once")
    print("namespace inq_golden {")
    print("constexpr int kBits = %d;" % BITS)
    print("constexpr int kSteps = %d;" % len(PORTIONS))
    print("constexpr double kPortions[kSteps] = %s;" % lit(Fraction(s) for s in PORTIONS))
    print("constexpr int kRetrain = %d;  // SGD steps after every quantization step" % RETRAIN)
    print("constexpr double kLr = %r, kMomentum = %r, kDampening = %r, kWeightDecay = %r, kBiasLrScale = %r;"
          % (LR, MOMENTUM, DAMPENING, WD, BIAS_LR_SCALE))
    print("constexpr double kConv0[6] = %s;" % lit(CONV0))
    print("constexpr double kFc0[8] = %s;" % lit(FC0))
    print("constexpr double kBias0[3] = %s;" % lit(BIAS0))
    print("constexpr double kConvTarget[6] = %s;" % lit(CONV_T))
    print("constexpr double kFcTarget[8] = %s;" % lit(FC_T))
    print("constexpr double kBiasTarget[3] = %s;" % lit(BIAS_T))
    print("constexpr int kConvN1 = %d, kConvN2 = %d;" % conv.cb)
    print("constexpr int kFcN1 = %d, kFcN2 = %d;" % fc.cb)
    print("struct Snapshot {")
    print("  const char* what;")
    print("  double conv[6], fc[8], bias[3];")
    print("};")
    print("// After begin_step(1), each SGD step, begin_step(2), ...")
    print("constexpr Snapshot kTrajectory[] = {")
    for what, c, f, b in snapshots:
        print('    {"%s", %s, %s, %s},' % (what, lit(c), lit(f), lit(b)))
    print("};")
    print("// Masks (1 = float, 0 = frozen) after each begin_step.")
    print("constexpr double kConvMask[kSteps][6] = {%s};" % ", ".join(lit(m[0]) for m in masks))
    print("constexpr double kFcMask[kSteps][8] = {%s};" % ", ".join(lit(m[1]) for m in masks))
    print("}  // namespace inq_golden")


if __name__ == "__main__":
    main()
