"""The safetensors writer shared by the Python fixture generators of the tests (tests/parity,
tests/image_parity). tools/convert_torchvision.py keeps its own: it is a stand-alone tool for the
user's machine and must not depend on the tests folder.

Layout (docs/FORMATS_AND_RELIABILITY.md): an 8-byte little-endian header length, a JSON header padded
with spaces to a multiple of 8, then the tensors' bytes packed in order. Written to a temporary file
and renamed, so an interrupted run leaves no half file behind.
"""
import json
import os
import struct

import numpy as np

_DTYPES = {np.dtype(np.float32): ("F32", "<f4"), np.dtype(np.int64): ("I64", "<i8")}


def write_safetensors(path, tensors, metadata=None):
    """tensors: name -> numpy array of float32 or int64 (any rank, rank 0 included)."""
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}} if metadata else {}
    arrays, offset = [], 0
    for name, array in tensors.items():
        array = np.asarray(array)
        code, stored = _DTYPES[array.dtype]
        # The shape comes from the original: ascontiguousarray turns a rank-0 array into rank 1.
        a = np.ascontiguousarray(array, dtype=stored)
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        arrays.append(a)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for a in arrays:
            f.write(a.tobytes())
    os.replace(tmp, path)
