"""Golden fixtures for crates/data, produced with torchvision.

Writes crates/data/tests/fixtures/:
  stl10.safetensors   - synthetic STL10 images decoded by torchvision's STL10,
                        transformed with fixed crop offsets and flips, and
                        resized by torchvision's Resize (Pillow bilinear);
  folder/             - a small ImageFolder of PNGs (several modes and sizes);
  folder.safetensors  - those images as torchvision's ImageFolder +
                        Resize((40, 32)) yields them, with the file order.

The STL10 bytes come from the formula in crates/data/src/synthetic.rs
(`stl10_byte`, `stl10_class`); keep the two in step.

Run: /tmp/ref/bin/python tools/golden/data.py
"""

import json
import os
import tempfile

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "crates", "data", "tests", "fixtures")
IMAGE_BYTES = 3 * 96 * 96
STL10_MEAN = (0.44671103, 0.43980882, 0.40664575)
STL10_STD = (0.2603408, 0.25657743, 0.2712671)
SALT = {"train": 0, "test": 101, "unlabeled": 202}


def stl10_class(split, n):
    return {"train": n % 10, "test": (n * 3 + 1) % 10, "unlabeled": 0}[split]


def stl10_image(split, n):
    k = np.arange(IMAGE_BYTES, dtype=np.int64)
    base = (k * 7 + (k // 96) * 3 + n * 41 + k * k // 97 + SALT[split]) % 56
    return (base + 20 * stl10_class(split, n)).astype(np.uint8)


class LocalSTL10(torchvision.datasets.STL10):
    """torchvision's STL10 without the md5 check (the bytes are synthetic)."""

    def _check_integrity(self):
        return True


def write_stl10(root, count):
    d = os.path.join(root, "stl10_binary")
    os.makedirs(d)
    with open(os.path.join(d, "train_X.bin"), "wb") as f:
        for n in range(count):
            f.write(stl10_image("train", n).tobytes())
    with open(os.path.join(d, "train_y.bin"), "wb") as f:
        f.write(bytes(stl10_class("train", n) + 1 for n in range(count)))
    names = "airplane bird car cat deer dog horse monkey ship truck".split()
    with open(os.path.join(d, "class_names.txt"), "w") as f:
        f.write("\n".join(names) + "\n")


# (top, left, flip) into the 104x104 padded image; (4, 4, False) is the
# identity crop, i.e. the recipe's test transform.
CHOICES = [(0, 0, False), (8, 8, True), (3, 5, True), (4, 4, False)]
# Sizes where Pillow 13 still runs the horizontal pass first (see
# horizontal_first below); 96 -> 224 is the recipe's larger training size.
RESIZES = [(40, 40), (72, 60), (224, 224), (30, 96)]
FOLDER_SIZE = (40, 32)


def horizontal_first(im, size):
    """Pillow <= 12 always resamples horizontally, then vertically. Pillow 13
    (python-pillow/Pillow#9549) runs the vertical pass first when the height
    shrinks much more than the width, which can move some bytes by 1. This
    crate implements the classic order, so fixtures only use sizes where both
    agree; this checks it by composing two single-axis resizes."""
    h, w = size
    two_pass = im.resize((w, im.height), Image.BILINEAR).resize((w, h), Image.BILINEAR)
    full = im.resize((w, h), Image.BILINEAR)
    assert np.array_equal(np.array(two_pass), np.array(full)), (im.size, size)
    return np.array(full)


def stl10_fixture():
    tensors = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_stl10(tmp, len(CHOICES))
        ds = LocalSTL10(tmp, split="train", download=False)
        images = [ds[i][0] for i in range(len(CHOICES))]
        tensors["labels"] = np.array([ds[i][1] for i in range(len(CHOICES))], dtype=np.int64)
    tensors["hwc"] = np.stack([np.array(im) for im in images])
    normalize = T.Normalize(STL10_MEAN, STL10_STD)
    out = []
    for im, (top, left, flip) in zip(images, CHOICES):
        # RandomCrop.forward: F.pad(img, padding, fill, padding_mode) then F.crop.
        x = F.crop(F.pad(im, 4, fill=0, padding_mode="constant"), top, left, 96, 96)
        if flip:
            x = F.hflip(x)
        out.append(normalize(T.ToTensor()(x)).numpy())
    tensors["train_transformed"] = np.stack(out).astype(np.float32)
    tensors["choices"] = np.array([[t, l, int(f)] for t, l, f in CHOICES], dtype=np.int64)
    for h, w in RESIZES:
        out = np.array(T.Resize((h, w))(images[0]))
        assert np.array_equal(out, horizontal_first(images[0], (h, w)))
        tensors[f"resize_{h}x{w}"] = out
    return tensors


def folder_images():
    """Writes the PNG folder (classes deliberately out of order on disk)."""
    rng = np.random.default_rng(7)
    specs = [
        ("b_dog", "x.png", "RGB", (50, 70)),
        ("b_dog", "a.png", "L", (33, 21)),
        ("a_cat", "img1.png", "RGBA", (64, 64)),
        ("a_cat", "nested/deep.png", "RGB", (120, 80)),
        ("a_cat", "Z.PNG", "RGB", (16, 16)),
    ]
    d = os.path.join(FIXTURES, "folder")
    for cls, name, mode, (h, w) in specs:
        path = os.path.join(d, cls, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
        # Smooth gradients plus noise: realistic enough for the resampler,
        # and it keeps the PNGs small.
        yy, xx = np.mgrid[0:h, 0:w]
        base = (xx * 255 // max(w - 1, 1) + yy * 3) % 256
        data = np.stack([(base + 40 * c) % 256 for c in range(channels)], axis=-1)
        data = (data + rng.integers(0, 8, size=data.shape)).clip(0, 255).astype(np.uint8)
        if channels == 1:
            data = data[..., 0]
        Image.fromarray(data, mode).save(path)
    with open(os.path.join(d, "a_cat", "notes.txt"), "w") as f:
        f.write("not an image: ImageFolder skips it\n")
    ds = torchvision.datasets.ImageFolder(d, transform=T.Resize(FOLDER_SIZE))
    images = np.stack([np.array(ds[i][0]) for i in range(len(ds))])
    raw = torchvision.datasets.ImageFolder(d)
    for i in range(len(raw)):
        assert np.array_equal(images[i], horizontal_first(raw[i][0], FOLDER_SIZE))
    targets = np.array([t for _, t in ds.samples], dtype=np.int64)
    files = [os.path.relpath(p, d) for p, _ in ds.samples]
    meta = {"classes": json.dumps(ds.classes), "files": json.dumps(files)}
    return {"images": images, "targets": targets}, meta


def main():
    os.makedirs(FIXTURES, exist_ok=True)
    save_file(stl10_fixture(), os.path.join(FIXTURES, "stl10.safetensors"),
              metadata={"torch": torch.__version__, "torchvision": torchvision.__version__})
    tensors, meta = folder_images()
    meta.update({"torch": torch.__version__, "torchvision": torchvision.__version__})
    save_file(tensors, os.path.join(FIXTURES, "folder.safetensors"), metadata=meta)
    print("wrote", FIXTURES)


if __name__ == "__main__":
    main()
