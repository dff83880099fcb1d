#!/usr/bin/env python3
"""Convert a torchvision .pth checkpoint into a safetensors file the inq tool loads.

  tools/convert_torchvision.py resnet18-f37072fd.pth resnet18.safetensors

Needs only Debian's python3-torch (tools/install_deps.sh); the safetensors file is
written here, following docs/FORMATS_AND_RELIABILITY.md.
"""
import argparse
import hashlib
import json
import math
import os
import re
import struct
import sys
import tempfile

PROG = os.path.basename(sys.argv[0])

DESCRIPTION = """\
Convert a torchvision checkpoint (.pth) into safetensors.

The input must be named as torchvision names its downloads, <name>-<hash>.pth, where <hash> is
the start (8 or more hex digits) of the file's SHA-256; the file's hash is checked against it
before anything is loaded (--no-hash-check skips this, with a warning).

Safety: the file is loaded with torch.load(weights_only=True), which unpickles only tensors and
plain containers, never arbitrary objects, so a malicious .pth cannot run code through pickle.
Files that need full unpickling are refused; there is no option to unpickle them fully.

Accepted contents: a state_dict (names -> tensors), or a dict holding one under 'state_dict' or
'model'. Floating tensors are stored as F32 (float16, bfloat16 and float64 are converted, with a
note), int64 as I64 (e.g. BatchNorm's rank-0 num_batches_tracked); other dtypes are refused.
Tensors are packed in name order; __metadata__ records the source file name and its SHA-256.
The output is written to a temporary file and renamed into place: on any error nothing is
written and an existing output file is left as it was.
"""

# torchvision's download names: <name>-<first hex digits of the SHA-256>.pth (torch.hub checks
# the same prefix when it downloads them).
HASH_NAME = re.compile(r"^.+-(?P<prefix>[0-9a-f]{8,64})\.pth?$")


class ConversionError(Exception):
    pass


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_hash(path, sha256, skip):
    name = os.path.basename(path)
    match = HASH_NAME.match(name)
    if skip:
        print(f"{PROG}: warning: --no-hash-check: not checking '{name}' against a hash in its name",
              file=sys.stderr)
        return
    if match is None:
        raise ConversionError(
            f"given '{name}', expected a name <name>-<first 8+ hex digits of its SHA-256>.pth "
            f"(torchvision's naming) so its contents can be checked, but it has no hash prefix "
            f"(its SHA-256 is {sha256}; --no-hash-check converts it unchecked)")
    prefix = match.group("prefix")
    if not sha256.startswith(prefix):
        raise ConversionError(
            f"given '{name}', expected its SHA-256 to start with {prefix}, but it is {sha256} "
            f"(a corrupt or different file?)")


def import_torch():
    try:
        import torch
    except ImportError as e:
        raise ConversionError(
            f"PyTorch is needed to read .pth files but cannot be imported ({e}); install Debian's "
            f"python3-torch with: tools/install_deps.sh")
    return torch


def load_state_dict(torch, path):
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ... on bad files
        raise ConversionError(
            f"given '{path}', expected a checkpoint that torch.load(weights_only=True) can read "
            f"(tensors and plain containers only; this converter never unpickles fully, as that can "
            f"run code from the file), but loading failed: {type(e).__name__}: {e}")
    # Training scripts save {"state_dict": ..., "epoch": ...} or {"model": ...}; a tensor named
    # "model" in a plain state_dict is not a dict, so it is not mistaken for a wrapper.
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict) or not loaded:
        raise ConversionError(
            f"given '{path}', expected a non-empty state_dict (names -> tensors) or a dict holding one "
            f"under 'state_dict' or 'model', but got {type(loaded).__name__}")
    for name, value in loaded.items():
        if not isinstance(name, str):
            raise ConversionError(f"given '{path}', expected string tensor names, but got {name!r}")
        if not isinstance(value, torch.Tensor):
            raise ConversionError(
                f"given '{path}', expected only tensors in the state_dict, but '{name}' is "
                f"{type(value).__name__}")
    return loaded


def stored_bytes(torch, name, tensor, notes):
    """(dtype name, shape, little-endian bytes) of one tensor as the safetensors file stores it."""
    if tensor.layout != torch.strided or tensor.is_quantized:
        raise ConversionError(f"tensor '{name}' has layout {tensor.layout}, expected a dense tensor")
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.int64:
        dtype, values = "I64", tensor
    elif tensor.dtype.is_floating_point:
        values = tensor.to(torch.float32)
        if tensor.dtype != torch.float32:
            # A finite value beyond float32's range would silently become infinite.
            if bool((torch.isfinite(tensor) & ~torch.isfinite(values)).any()):
                raise ConversionError(
                    f"tensor '{name}' ({tensor.dtype}) holds finite values beyond float32's range")
            notes.append(f"'{name}': {tensor.dtype} -> float32")
        dtype = "F32"
    else:
        raise ConversionError(
            f"tensor '{name}' has dtype {tensor.dtype}, expected a floating-point type or int64")
    # numpy's "<" dtypes are little-endian whatever the host is.
    array = values.contiguous().numpy()
    data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    return dtype, list(tensor.shape), data


def safetensors_bytes(entries, metadata):
    """The file: u64 LE header length, JSON header padded with spaces to a multiple of 8, buffer."""
    header = {"__metadata__": metadata}
    offset = 0
    for name, (dtype, shape, data) in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return [struct.pack("<Q", len(text)), text] + [data for _, (_, _, data) in entries]


def write_atomically(path, pieces):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp makes the file private (0600); give it the permissions a new file normally gets.
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(f.fileno(), 0o666 & ~umask)
            for piece in pieces:
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    # The rename itself survives a crash once the directory is on disk.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def convert(src, dst, no_hash_check):
    if not os.path.isfile(src):
        raise ConversionError(f"given '{src}', expected an existing file")
    sha256 = sha256_of(src)
    check_hash(src, sha256, no_hash_check)
    torch = import_torch()
    state = load_state_dict(torch, src)
    notes = []
    entries = [(name, stored_bytes(torch, name, state[name], notes)) for name in sorted(state)]
    for note in notes:
        print(f"{PROG}: note: converted {note}", file=sys.stderr)
    metadata = {"source": os.path.basename(src), "sha256": sha256}
    write_atomically(dst, safetensors_bytes(entries, metadata))
    total = sum(math.prod(shape) for _, (_, shape, _) in entries)
    print(f"{PROG}: wrote {dst}: {len(entries)} tensors, {total} values, from {os.path.basename(src)} "
          f"(sha256 {sha256})")


def main(argv):
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="torchvision .pth file, e.g. resnet18-f37072fd.pth")
    parser.add_argument("output", help="safetensors file to write")
    parser.add_argument("--no-hash-check", action="store_true",
                        help="convert a file whose name carries no (or a wrong) SHA-256 prefix; prints a warning")
    args = parser.parse_args(argv)
    try:
        convert(args.checkpoint, args.output, args.no_hash_check)
    except (ConversionError, OSError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
