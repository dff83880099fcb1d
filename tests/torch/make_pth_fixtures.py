#!/usr/bin/env python3
"""Writes the .pth inputs of tests/test_convert_torchvision.cpp into DIR, named as torchvision
names its downloads (<name>-<first 10 hex digits of the SHA-256>.pth), plus DIR/expected.json:
for each fixture, its file name and, for the convertible ones, every tensor's safetensors dtype,
shape and little-endian bytes (hex) as the C++ reader must find them.

  /usr/bin/python3 tests/torch/make_pth_fixtures.py DIR
"""
import collections
import hashlib
import json
import os
import sys

import torch


class RunsCommandWhenUnpickled:
    """A pickle payload: full unpickling would run `touch <marker>`; weights_only must refuse it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def save_hash_named(directory, stem, obj):
    tmp = os.path.join(directory, stem + ".pth.tmp")
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    name = f"{stem}-{digest[:10]}.pth"
    os.replace(tmp, os.path.join(directory, name))
    return name


def expected_tensors(state):
    out = {}
    for name, t in state.items():
        if t.dtype == torch.int64:
            dtype, little_endian = "I64", t.numpy().astype("<i8")
        else:
            dtype, little_endian = "F32", t.to(torch.float32).numpy().astype("<f4")
        out[name] = {"dtype": dtype, "shape": list(t.shape), "hex": little_endian.tobytes().hex()}
    return out


def main(directory):
    torch.manual_seed(0)
    # A real module's state_dict: an OrderedDict carrying _metadata, like torchvision's files.
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.Linear(4, 2))
    state = model.state_dict()
    state["1.num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)  # I64, rank 0
    state["1.running_mean"] = torch.randn(4)
    state["extra.float64"] = torch.randn(2, 3, dtype=torch.float64) * 1e20  # converted to F32
    state["extra.float16"] = torch.randn(5).half()
    state["extra.transposed"] = torch.arange(6.0).reshape(2, 3).t()  # not contiguous
    state["extra.empty"] = torch.zeros(0, 5)
    state["extra.special"] = torch.tensor([float("inf"), float("-inf"), -0.0, 1e-45])
    assert isinstance(state, collections.OrderedDict) and hasattr(state, "_metadata")

    fixtures = {
        "state_dict": {"file": save_hash_named(directory, "tiny", state), "tensors": expected_tensors(state)},
        "wrapped": {"file": save_hash_named(directory, "wrapped", {"model": state, "epoch": 90}),
                    "tensors": expected_tensors(state)},
        "not_a_tensor": {"file": save_hash_named(directory, "strings", {"w": torch.ones(2), "note": "x"})},
        "float64_overflow": {"file": save_hash_named(
            directory, "huge", {"w": torch.tensor([1e300], dtype=torch.float64)})},
        "int32": {"file": save_hash_named(directory, "ints", {"w": torch.ones(2, dtype=torch.int32)})},
        "code_on_unpickle": {"file": save_hash_named(
            directory, "evil", {"w": torch.ones(2), "x": RunsCommandWhenUnpickled(os.path.join(directory, "pwned"))}),
         "marker": "pwned"},
    }
    with open(os.path.join(directory, "expected.json"), "w") as f:
        json.dump(fixtures, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
