#!/usr/bin/env python3
"""Writes the image parity fixture: JPEG and PNG files in an ImageFolder, and what torchvision
makes of them, for tests/image_parity/test_image_parity.cpp to compare against.

    make_fixture.py OUT_DIR

OUT_DIR/folder/val/<class>/<image>  the images: varied sizes (smaller and larger than 256,
                                    non-square), JPEG (4:2:0, 4:2:2, 4:4:4, progressive, grey,
                                    CMYK) and PNG (RGB, grey, grey+alpha, RGBA, palette, a PNG named
                                    .JPEG), content from Fashion-MNIST (upscaled and coloured) when
                                    Debian's dataset-fashion-mnist is installed, and synthetic
                                    gradients, shapes and noise
OUT_DIR/listing.json                torchvision's ImageFolder classes and samples, and per sample
                                    its format and the window used for resized_crop
OUT_DIR/reference.safetensors       per sample i (F32): decoded.i = PIL open + convert('RGB'),
                                    (H, W, 3) in 0..255; eval.i = Resize(256), CenterCrop(224),
                                    ToTensor(), (3, 224, 224); resized_crop.i = F.resized_crop to
                                    224x224 of the window (RandomResizedCrop's resize), ToTensor()

Needs Debian's python3 with PIL, torch and torchvision (tools/install_deps.sh).
"""
import gzip
import json
import os
import shutil
import struct
import sys

try:
    import numpy as np
    import torch
    import torchvision
    from PIL import Image
    from torchvision import datasets, transforms
    import torchvision.transforms.functional as F
except ImportError as e:
    sys.exit(f"image parity fixture: {sys.executable} lacks PIL, torch or torchvision ({e}); "
             "install them with: tools/install_deps.sh")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch"))
from safetensors_out import write_safetensors  # noqa: E402  (the shared fixture writer)

FASHION_MNIST = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def fashion_mnist_images(count):
    """The first `count` 28x28 test images, or [] without the dataset."""
    if not os.path.exists(FASHION_MNIST):
        return []
    with gzip.open(FASHION_MNIST, "rb") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 2051 and rows == 28 and cols == 28
        data = np.frombuffer(f.read(count * 28 * 28), dtype=np.uint8)
    return list(data.reshape(count, 28, 28))


def coloured(grey, height, width, rng):
    """A Fashion-MNIST image upscaled to height x width (bicubic), coloured with a random tint over
    a smooth background gradient, with a little noise: photo-like edges and flat areas."""
    big = np.asarray(Image.fromarray(grey).resize((width, height), Image.BICUBIC), dtype=np.float64) / 255.0
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 17.0 + yy / 23.0)], axis=-1)
    tint = rng.uniform(0.2, 1.0, size=3)
    rgb = background * (1 - big[..., None]) * 0.6 + big[..., None] * tint
    rgb += rng.normal(0, 0.02, size=rgb.shape)
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def synthetic(height, width, rng):
    """Gradients, a few filled shapes and noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    rgb = np.stack([xx / max(width - 1, 1), yy / max(height - 1, 1), 0.5 + 0.5 * np.cos((xx + yy) / 9.0)], axis=-1)
    for _ in range(4):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(0.1, 0.4) * min(height, width)
        rgb[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 1, size=3)
    rgb += rng.normal(0, 0.04, size=rgb.shape)
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def save(rgb, path, kind):
    """Saves an RGB array in one of the fixture's variants; returns the format actually stored."""
    image = Image.fromarray(rgb, "RGB")
    if kind == "jpeg420":
        image.save(path, "JPEG", quality=90)
    elif kind == "jpeg422":
        image.save(path, "JPEG", quality=85, subsampling=1)
    elif kind == "jpeg444":
        image.save(path, "JPEG", quality=95, subsampling=0)
    elif kind == "jpeg_progressive":
        image.save(path, "JPEG", quality=90, progressive=True, optimize=True)
    elif kind == "jpeg_grey":
        image.convert("L").save(path, "JPEG", quality=90)
    elif kind == "jpeg_cmyk":
        image.convert("CMYK").save(path, "JPEG", quality=92)
    elif kind == "png_rgb":
        image.save(path, "PNG")
    elif kind == "png_grey":
        image.convert("L").save(path, "PNG")
    elif kind == "png_grey_alpha":
        alpha = Image.fromarray(rgb[..., 0])
        grey_alpha = image.convert("L")
        grey_alpha.putalpha(alpha)
        grey_alpha.save(path, "PNG")
    elif kind == "png_rgba":
        rgba = image.copy()
        rgba.putalpha(Image.fromarray(rgb[..., 1]))
        rgba.save(path, "PNG")
    elif kind == "png_palette":
        image.quantize(colors=64).save(path, "PNG")
    elif kind == "png_palette_transparent":
        image.quantize(colors=32).save(path, "PNG", transparency=3)
    else:
        raise ValueError(kind)
    return "PNG" if kind.startswith("png") else "JPEG"


# (class, file name, height, width, variant, source). Shorter sides below, at and above 256.
SAMPLES = [
    ("class_a", "a01.JPEG", 375, 500, "jpeg420", "fashion"),
    ("class_a", "a02.JPEG", 500, 333, "jpeg444", "synthetic"),
    ("class_a", "a03.jpg", 256, 311, "jpeg422", "fashion"),
    ("class_a", "a04.jpeg", 180, 140, "jpeg_progressive", "synthetic"),
    ("class_a", "a05.JPEG", 23, 17, "jpeg420", "fashion"),  # upscaled about 15x
    ("class_b", "b01.JPEG", 241, 257, "jpeg_grey", "fashion"),
    ("class_b", "b02.JPEG", 300, 1000, "jpeg_cmyk", "synthetic"),
    ("class_b", "b03.JPEG", 640, 480, "jpeg420", "synthetic"),
    ("class_b", "b04.png", 256, 256, "png_rgb", "fashion"),
    ("class_b", "b05.PNG", 333, 500, "png_grey", "synthetic"),
    ("class_c", "c01.png", 123, 457, "png_rgba", "synthetic"),
    ("class_c", "c02.png", 400, 300, "png_grey_alpha", "fashion"),
    ("class_c", "c03.png", 1000, 120, "png_palette", "synthetic"),
    ("class_c", "c04.png", 64, 90, "png_palette_transparent", "fashion"),
    ("class_c", "c05.JPEG", 270, 360, "png_rgb", "synthetic"),  # a PNG named .JPEG, as in ImageNet
    ("class_c", "c06.jpg", 5, 3, "jpeg420", "synthetic"),  # chroma 2 samples wide: plain replication
    ("class_c", "c07.jpg", 9, 4, "jpeg422", "synthetic"),
    (".hidden", "h01.jpg", 260, 300, "jpeg420", "synthetic"),  # torchvision lists hidden folders
]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    root = os.path.join(out, "folder", "val")
    shutil.rmtree(os.path.join(out, "folder"), ignore_errors=True)
    rng = np.random.RandomState(2024)
    fashion = fashion_mnist_images(len(SAMPLES))
    formats = {}
    for k, (cls, name, height, width, kind, source) in enumerate(SAMPLES):
        os.makedirs(os.path.join(root, cls), exist_ok=True)
        rgb = coloured(fashion[k], height, width, rng) if source == "fashion" and fashion else synthetic(height, width, rng)
        formats[os.path.join(cls, name)] = (save(rgb, os.path.join(root, cls, name), kind), kind)

    folder = datasets.ImageFolder(root)  # torchvision's own listing and loader (pil_loader)
    eval_transform = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])
    tensors, samples = {}, []
    for i, (path, class_index) in enumerate(folder.samples):
        image = folder.loader(path)  # Image.open + convert("RGB")
        width, height = image.size
        # A window like RandomResizedCrop's, placed deterministically.
        box = [height // 5, width // 7, max(1, height // 2), max(1, width // 3)]
        tensors[f"decoded.{i}"] = np.asarray(image, dtype=np.float32)
        tensors[f"eval.{i}"] = eval_transform(image).numpy()
        tensors[f"resized_crop.{i}"] = F.to_tensor(F.resized_crop(image, *box, [224, 224])).numpy()
        rel = os.path.relpath(path, root)
        samples.append({"path": rel, "class_index": class_index, "format": formats[rel][0],
                        "variant": formats[rel][1], "resized_crop_box": box})
    write_safetensors(os.path.join(out, "reference.safetensors"), tensors)
    with open(os.path.join(out, "listing.json"), "w") as f:
        json.dump({"classes": folder.classes, "samples": samples, "fashion_mnist": bool(fashion),
                   "torchvision": torchvision.__version__, "pil": Image.__version__}, f, indent=1)
    print(f"image parity fixture: {len(samples)} images in {root}, torchvision {torchvision.__version__}, "
          f"PIL {Image.__version__}")


if __name__ == "__main__":
    main()
