#!/usr/bin/env python3
"""Fixtures for the PyTorch parity tests (tests/parity/test_torchvision_parity.cpp).

For each paper model this builds the torchvision model with a fixed seed (random initialization,
nothing downloaded) and writes, into OUT/<arch>/:

  weights.safetensors    the state_dict the C++ side loads by name (BatchNorm running statistics
                         calibrated on a separate batch and affine parameters perturbed, so that
                         eval mode and the BatchNorm gradients are not trivial)
  io.safetensors         input (N, 3, H, W) F32, target (N) I64, eval_logits, train_loss (rank 0),
                         input_grad; __metadata__ holds every setting the C++ side must reproduce
  grads.safetensors      the gradient of train_loss for every parameter, by parameter name
  layers.safetensors     for every Conv2d, BatchNorm2d and Linear layer L of the training pass:
                         L.input (what L received), L.grad_output (the gradient of train_loss with
                         respect to L's output) and L.input_grad (L's own backward of grad_output);
                         the gradients of L's parameters are those in grads.safetensors
  after_sgd.safetensors  every parameter after SGD_STEPS optimizer steps on those gradients, and
                         every buffer after the training forward pass (running statistics,
                         num_batches_tracked)

Training mode here means BatchNorm with batch statistics and dropout off (the Dropout modules are
put in eval mode), so the comparison is deterministic. GoogLeNet's loss adds its two auxiliary
losses with weight 0.3.

Why layers.safetensors: in a deep network with BatchNorm, float32 rounding differences of ~1e-6 in
the forward pass move a few ReLU inputs across zero, and each such flip changes the gradient of
every earlier layer by up to ~20% of its largest entry (PyTorch's own float32 gradients of
ResNet-50 differ that much from its float64 ones). Per layer, with PyTorch's input and output
gradient, no ReLU is involved and the comparison can be tight.

The fixtures are reused when OUT/manifest.json names this script's hash and the same torch and
torchvision versions; otherwise everything is rebuilt and the manifest is written last.
"""
import argparse
import copy
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch"))
from safetensors_out import write_safetensors  # noqa: E402  (the shared fixture writer)

INSTALL_HINT = "run `tools/install_deps.sh` (installs python3-torch and python3-torchvision)"

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torchvision
except ImportError as error:
    sys.exit(f"torchvision_parity.py: error: the PyTorch parity fixtures need PyTorch and torchvision, "
             f"but importing them failed ({error}); {INSTALL_HINT}")

# Optimizer settings shared with the C++ side through io.safetensors' metadata.
LR = 0.01
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
# Two steps reusing the same gradients: on the first step the momentum buffer is just the update
# direction, so momentum changes nothing; the second step is where it acts.
SGD_STEPS = 2
AUX_WEIGHT = 0.3
BATCH = 2

# Per model: input size (H, W), class count, seed. Sizes are reduced to keep the suite fast, except
# ResNet-18's 224x224: AlexNet's is non-square, AlexNet and VGG-16 reach their adaptive pools with
# 3x3 and 2x2 maps (which the pools spread over 6x6 and 7x7), and the BatchNorm models keep enough
# values per channel in their last stages (at least N * 4 * 4) for stable batch statistics.
CASES = {
    "alexnet": dict(size=(127, 143), num_classes=10, seed=1),
    "vgg16": dict(size=(64, 64), num_classes=10, seed=2),
    "googlenet": dict(size=(160, 160), num_classes=10, seed=3),
    "resnet18": dict(size=(224, 224), num_classes=10, seed=4),
    "resnet50": dict(size=(128, 128), num_classes=10, seed=5),
}


def write_tensors(path, tensors, metadata):
    """Writes `tensors` (name -> torch.Tensor, float32 or int64) with the shared fixture writer."""
    write_safetensors(path, {name: t.detach().cpu().numpy() for name, t in tensors.items()}, metadata)


def build(arch, num_classes):
    models = torchvision.models
    if arch == "googlenet":
        # Both optional parts on, so the auxiliary heads and the input transform are compared too.
        return models.GoogLeNet(num_classes=num_classes, aux_logits=True, transform_input=True, init_weights=True)
    return getattr(models, arch)(weights=None, num_classes=num_classes)


def batch_norms(model):
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def dropouts_off(model):
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()


def calibrate(model, x):
    """Gives BatchNorm realistic running statistics (those of `x`) and non-trivial affine parameters;
    leaves num_batches_tracked at 1 and the momentum at its default."""
    norms = batch_norms(model)
    if not norms:
        return
    model.train()
    dropouts_off(model)
    for m in norms:
        m.momentum = 1.0
    with torch.no_grad():
        model(x)
        for m in norms:
            m.momentum = 0.1
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0.0, 0.1)


def loss_of(arch, model, output, target):
    ce = nn.functional.cross_entropy
    if arch != "googlenet":
        return ce(output, target)
    # torchvision returns the aux heads swapped: its aux_logits2 field holds aux1's output.
    aux1, aux2 = output.aux_logits2, output.aux_logits1
    assert torch.equal(aux1, model.captured_aux1), "aux1's output is not where it was expected"
    return ce(output.logits, target) + AUX_WEIGHT * ce(aux1, target) + AUX_WEIGHT * ce(aux2, target)


def sgd_groups(model):
    """The split of optim/optimizer.h make_param_groups (defaults): weight decay on conv and linear
    weights only, none on biases or BatchNorm parameters."""
    decay, no_decay = [], []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            decay.append(m.weight)
            if m.bias is not None:
                no_decay.append(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            no_decay += [m.weight, m.bias]
    assert len(decay) + len(no_decay) == len(list(model.parameters())), "a parameter is in no group"
    return [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]


def capture_layers(model):
    """Records, for every Conv2d, BatchNorm2d and Linear module, its input in the next forward pass
    and the gradient that reaches its output in the backward pass after it."""
    records = {}

    def hook(module, inputs, output, name):
        record = records.setdefault(name, {})
        assert "input" not in record, f"{name} ran twice in one pass"
        record["input"] = inputs[0].detach().clone()
        # Attached to the node that produced `output`, so later in-place ops (ReLU, +=) on it do
        # not change which gradient arrives here.
        output.register_hook(lambda grad: record.__setitem__("grad_output", grad.detach().clone()))

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.BatchNorm2d, nn.Linear)):
            module.register_forward_hook(lambda m, i, o, name=name: hook(m, i, o, name))
    return records


def layer_fixtures(replica, records, grads):
    """Each layer's own backward of its recorded output gradient, on `replica` (a copy of the model
    before the training pass, in training mode). Checks that the layer's parameter gradients equal
    those of the whole-model backward, which proves the records are what the layer saw."""
    tensors = {}
    for name, record in records.items():
        layer = replica.get_submodule(name)
        x = record["input"].clone().requires_grad_(True)
        params = list(layer.named_parameters())
        local = torch.autograd.grad(layer(x), [x] + [p for _, p in params], record["grad_output"])
        for (param_name, _), g in zip(params, local[1:]):
            expected = grads[f"{name}.{param_name}"]
            # The same kernels on the same values: equal, bit for bit (the fast check), or nearly so.
            assert torch.equal(g, expected) or (g - expected).abs().max() <= 1e-6 * expected.abs().max(), \
                f"{name}.{param_name}: the layer's own gradient differs from the whole model's"
        tensors[f"{name}.input"] = record["input"]
        tensors[f"{name}.grad_output"] = record["grad_output"]
        tensors[f"{name}.input_grad"] = local[0]
    return tensors


def make_fixture(arch, case, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(case["seed"])
    h, w = case["size"]
    model = build(arch, case["num_classes"])
    if arch == "googlenet":
        model.aux1.register_forward_hook(lambda module, args, result: setattr(model, "captured_aux1", result))
    x = torch.randn(BATCH, 3, h, w)
    target = torch.randint(0, case["num_classes"], (BATCH,), dtype=torch.int64)
    calibrate(model, torch.randn(BATCH, 3, h, w))
    write_tensors(os.path.join(out_dir, "weights.safetensors"), model.state_dict(), {"arch": arch})

    model.eval()
    with torch.no_grad():
        eval_logits = model(x)

    replica = copy.deepcopy(model)
    replica.train()
    dropouts_off(replica)
    records = capture_layers(model)
    model.train()
    dropouts_off(model)
    x_train = x.clone().requires_grad_(True)
    loss = loss_of(arch, model, model(x_train), target)
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None for g in grads.values()), "a parameter got no gradient"
    layers = layer_fixtures(replica, records, grads)

    optimizer = torch.optim.SGD(sgd_groups(model), lr=LR, momentum=MOMENTUM)
    for _ in range(SGD_STEPS):
        optimizer.step()

    metadata = {
        "arch": arch, "num_classes": case["num_classes"], "aux_logits": int(arch == "googlenet"),
        "transform_input": int(arch == "googlenet"), "aux_weight": AUX_WEIGHT, "lr": LR, "momentum": MOMENTUM,
        "weight_decay": WEIGHT_DECAY, "sgd_steps": SGD_STEPS, "seed": case["seed"],
        "torch": torch.__version__, "torchvision": torchvision.__version__,
    }
    write_tensors(os.path.join(out_dir, "io.safetensors"), {
        "input": x, "target": target, "eval_logits": eval_logits, "train_loss": loss.detach(),
        "input_grad": x_train.grad}, metadata)
    write_tensors(os.path.join(out_dir, "grads.safetensors"), grads, {"arch": arch})
    write_tensors(os.path.join(out_dir, "layers.safetensors"), layers, {"arch": arch})
    write_tensors(os.path.join(out_dir, "after_sgd.safetensors"), model.state_dict(), {"arch": arch})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for the fixtures (in the build tree)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the manifest matches")
    args = parser.parse_args()

    # This script and the writer it shares decide the fixtures' bytes.
    script_hash = hashlib.sha256()
    for source in (__file__, sys.modules[write_safetensors.__module__].__file__):
        with open(os.path.abspath(source), "rb") as f:
            script_hash.update(f.read())
    script_hash = script_hash.hexdigest()
    key = {"script_sha256": script_hash, "torch": torch.__version__, "torchvision": torchvision.__version__,
           "models": sorted(CASES)}
    manifest = os.path.join(args.out, "manifest.json")
    if not args.force and os.path.exists(manifest):
        with open(manifest) as f:
            if json.load(f) == key:
                print(f"[parity] fixtures in {args.out} are up to date")
                return
    os.makedirs(args.out, exist_ok=True)
    if os.path.exists(manifest):
        os.remove(manifest)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    for arch, case in CASES.items():
        start = time.time()
        make_fixture(arch, case, os.path.join(args.out, arch))
        print(f"[parity] {arch}: {time.time() - start:.1f} s")
    with open(manifest + ".tmp", "w") as f:
        json.dump(key, f)
    os.replace(manifest + ".tmp", manifest)


if __name__ == "__main__":
    main()
