"""Golden fixture for crates/train's loop: one epoch of PyTorch fine-tuning.

Run:  /tmp/ref/bin/python tools/golden/train_loop.py
Writes crates/train/tests/fixtures/loop.safetensors with
  images   u8 [16, 32, 32, 3]   (HWC, as finetune-data's Dataset yields them)
  labels   i64 [16]
  init.*   the narrow VGG16's initial weights (torchvision names)
  all.*    weights after one epoch with every layer trainable
  head.*   weights after one epoch with only classifier.6 trainable
The recipe's settings: SGD(lr, momentum 0.9, weight_decay 5e-4), constant lr,
batch 4, no shuffle, no augmentation (ToTensor + Normalize(STL10)), dropout 0,
cross-entropy with mean reduction. Float32 throughout, as a user's run is.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from model import fill, narrow_vgg  # noqa: E402  (same formula weights as crates/model)

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "train", "tests", "fixtures")
MEAN = torch.tensor([0.44671103, 0.43980882, 0.40664575]).view(1, 3, 1, 1)
STD = torch.tensor([0.2603408, 0.25657743, 0.2712671]).view(1, 3, 1, 1)
LR = 0.01
BATCH = 4


def one_epoch(model, images, labels, trainable):
    for name, p in model.named_parameters():
        p.requires_grad_(trainable(name))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=LR, momentum=0.9, weight_decay=5e-4)
    model.train()
    x_all = (images.permute(0, 3, 1, 2).float() / 255.0 - MEAN) / STD
    for start in range(0, len(labels), BATCH):
        x = x_all[start:start + BATCH]
        y = labels[start:start + BATCH]
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.RandomState(0)
    images = torch.from_numpy(rng.randint(0, 256, size=(16, 32, 32, 3)).astype(np.uint8))
    labels = torch.from_numpy(rng.randint(0, 10, size=16).astype(np.int64))
    out = {"images": images, "labels": labels}
    torch.manual_seed(0)
    init = fill(narrow_vgg("D", False, 32, 16, 10, 0.0)).state_dict()
    out.update({f"init.{k}": v.clone() for k, v in init.items()})
    for tag, trainable in [("all", lambda n: True), ("head", lambda n: n.startswith("classifier.6."))]:
        model = narrow_vgg("D", False, 32, 16, 10, 0.0)
        model.load_state_dict(init)
        final = one_epoch(model, images, labels, trainable)
        out.update({f"{tag}.{k}": v for k, v in final.items()})
        moved = max((final[k] - init[k]).abs().max().item() for k in init)
        print(f"{tag}: largest weight change {moved:.3e}")
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(OUT, "loop.safetensors"))


if __name__ == "__main__":
    main()
