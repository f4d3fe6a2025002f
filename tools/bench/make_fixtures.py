"""Inputs for the side-by-side benchmarks in tools/bench/: an STL10-format
directory of random images and a full-size VGG16 checkpoint (torchvision's
own random init, 1000 classes), so both sides read the same bytes.

    /tmp/ref/bin/python tools/bench/make_fixtures.py OUT_DIR [N_TRAIN] [N_TEST]

Writes OUT_DIR/stl10_binary/ and OUT_DIR/vgg16.safetensors.
"""
import os
import sys

import numpy as np
import torch
import torchvision
from safetensors.torch import save_file

CLASSES = "airplane bird car cat deer dog horse monkey ship truck".split()


def main():
    out = sys.argv[1]
    n_train = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    n_test = int(sys.argv[3]) if len(sys.argv) > 3 else 128
    d = os.path.join(out, "stl10_binary")
    os.makedirs(d, exist_ok=True)
    rng = np.random.RandomState(0)
    for split, n in [("train", n_train), ("test", n_test)]:
        rng.randint(0, 256, size=n * 27648).astype(np.uint8).tofile(os.path.join(d, f"{split}_X.bin"))
        rng.randint(1, 11, size=n).astype(np.uint8).tofile(os.path.join(d, f"{split}_y.bin"))
    with open(os.path.join(d, "class_names.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")
    with open(os.path.join(d, "fold_indices.txt"), "w") as f:
        for k in range(10):
            f.write(" ".join(str((k * 10 + i) % n_train) for i in range(10)) + "\n")
    weights = os.path.join(out, "vgg16.safetensors")
    if not os.path.exists(weights):
        torch.manual_seed(0)
        sd = torchvision.models.vgg16().state_dict()
        save_file({k: v.contiguous() for k, v in sd.items()}, weights)
    print(out)


if __name__ == "__main__":
    main()
