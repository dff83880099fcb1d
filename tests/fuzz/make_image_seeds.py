#!/usr/bin/env python3
"""Writes the seed corpus of the image-decoding fuzz target (tests/fuzz/corpus/image): tiny JPEG and
PNG files in the variants the decoder handles differently (baseline 4:2:0 / 4:4:4, progressive,
grey and CMYK JPEG; RGB, grey, grey + alpha, RGBA and palette PNG), each under 4 KiB, plus a few
the decoder must refuse. Needs PIL (Debian's python3-pil, a dependency of python3-torchvision).

  /usr/bin/python3 tests/fuzz/make_image_seeds.py tests/fuzz/corpus/image
"""
import io
import os
import sys

from PIL import Image


def pattern(mode, width, height):
    """A deterministic image with edges and gradients, so every decoder stage sees real data."""
    img = Image.new("RGB", (width, height))
    img.putdata([((x * 37 + y * 11) % 256, (x * 5 + y * 29) % 256, (x * y * 3) % 256)
                 for y in range(height) for x in range(width)])
    if mode == "RGBA":
        img.putalpha(Image.new("L", (width, height), 200))
        return img
    return img.convert(mode)


def encode(img, fmt, **options):
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def main():
    root = sys.argv[1]
    os.makedirs(root, exist_ok=True)
    seeds = {
        "valid-baseline-420.jpg": encode(pattern("RGB", 17, 13), "JPEG", quality=75, subsampling=2),
        "valid-baseline-444.jpg": encode(pattern("RGB", 9, 8), "JPEG", quality=90, subsampling=0),
        "valid-progressive.jpg": encode(pattern("RGB", 16, 16), "JPEG", quality=70, progressive=True),
        "valid-grey.jpg": encode(pattern("L", 12, 7), "JPEG", quality=80),
        "valid-cmyk.jpg": encode(pattern("CMYK", 8, 8), "JPEG", quality=80),
        "valid-rgb.png": encode(pattern("RGB", 11, 6), "PNG"),
        "valid-grey.png": encode(pattern("L", 7, 9), "PNG"),
        "valid-grey-alpha.png": encode(pattern("LA", 5, 5), "PNG"),
        "valid-rgba.png": encode(pattern("RGBA", 6, 4), "PNG"),
        "valid-palette.png": encode(pattern("RGB", 8, 8).convert("P", palette=Image.ADAPTIVE, colors=16), "PNG"),
        "invalid-bmp.bmp": encode(pattern("RGB", 4, 4), "BMP"),
    }
    seeds["invalid-truncated.jpg"] = seeds["valid-baseline-420.jpg"][:200]
    seeds["invalid-truncated.png"] = seeds["valid-rgb.png"][:60]
    for name, data in seeds.items():
        assert len(data) < 4096, (name, len(data))
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds)} seeds into {root}")


if __name__ == "__main__":
    main()
