"""Times torchvision's DataLoader on an STL10-sized train split, for the
comparison in crates/data/README.md.

Writes 5 000 STL10-format images (random bytes; decoding cost does not depend
on content) into a temp dir, then iterates DataLoader(STL10, batch 128,
shuffle, num_workers=2) with the recipe's train transforms (RandomCrop(96, 4),
RandomHorizontalFlip, ToTensor, Normalize) and prints images/s per epoch
(worker start-up included, as with DataLoader's defaults).

Run: /tmp/ref/bin/python tools/bench/torchvision_loader.py [epochs]
"""

import os
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision
import torchvision.transforms as T

N = 5000
MEAN = (0.44671103, 0.43980882, 0.40664575)
STD = (0.2603408, 0.25657743, 0.2712671)


class LocalSTL10(torchvision.datasets.STL10):
    """torchvision's STL10 without the md5 check (the bytes are synthetic)."""

    def _check_integrity(self):
        return True


def main():
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "stl10_binary")
        os.makedirs(d)
        rng = np.random.default_rng(0)
        rng.integers(0, 256, N * 3 * 96 * 96, dtype=np.uint8).tofile(os.path.join(d, "train_X.bin"))
        rng.integers(1, 11, N, dtype=np.uint8).tofile(os.path.join(d, "train_y.bin"))
        with open(os.path.join(d, "class_names.txt"), "w") as f:
            f.write("\n".join(f"c{i}" for i in range(10)) + "\n")
        transform = T.Compose([
            T.RandomCrop(96, padding=4),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(MEAN, STD),
        ])
        ds = LocalSTL10(tmp, split="train", download=False, transform=transform)
        loader = torch.utils.data.DataLoader(ds, batch_size=128, shuffle=True, num_workers=2)
        for epoch in range(epochs):
            start = time.perf_counter()
            n = 0
            for x, _ in loader:
                n += x.shape[0]
            dt = time.perf_counter() - start
            print(f"epoch {epoch}: {n} images in {dt:.3f} s = {n / dt:.0f} images/s")
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
