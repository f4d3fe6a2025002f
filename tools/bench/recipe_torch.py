"""The recipe's PyTorch loop, timed end to end: the reference side of
tools/bench/head_only.sh and tools/bench/memory.sh.

    /tmp/ref/bin/python tools/bench/recipe_torch.py DATA_DIR WEIGHTS EPOCHS [--train head|all] [--batch N] [--no-eval]

As in the article: torchvision STL10 + DataLoader (num_workers=2), VGG16 with a
new Linear(4096, 10), SGD(lr=1e-3, momentum 0.9, weight_decay 5e-4) +
CosineAnnealingLR, train (batch 128, shuffled, no augmentation) then evaluate
(batch 256) each epoch. With --train head every layer but classifier.6 is
frozen (requires_grad False) and, as in the recipe, the frozen backbone is
recomputed every epoch.
"""
import argparse
import time

import torch
import torch.nn as nn
import torchvision
import torchvision.transforms as T
from safetensors.torch import load_file

MEAN = (0.44671103, 0.43980882, 0.40664575)
STD = (0.2603408, 0.25657743, 0.2712671)


class LocalSTL10(torchvision.datasets.STL10):
    """STL10 from a directory of STL10-format files that are not the official
    ones (torchvision would refuse them by md5)."""

    def _check_integrity(self):
        return True


def main():
    start = time.perf_counter()
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("weights")
    ap.add_argument("epochs", type=int)
    ap.add_argument("--train", default="head", choices=["head", "all"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "adamw"])
    args = ap.parse_args()
    data, weights, epochs = args.data, args.weights, args.epochs
    torch.set_num_threads(2)
    tf = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    train = torch.utils.data.DataLoader(
        LocalSTL10(data, split="train", transform=tf), batch_size=args.batch, shuffle=True, num_workers=2)
    test = torch.utils.data.DataLoader(
        LocalSTL10(data, split="test", transform=tf), batch_size=256, shuffle=False, num_workers=2)
    model = torchvision.models.vgg16()
    model.load_state_dict(load_file(weights))
    model.classifier[6] = nn.Linear(4096, 10)
    for name, p in model.named_parameters():
        p.requires_grad = args.train == "all" or name.startswith("classifier.6.")
    if args.optimizer == "adamw":
        # finetune's --optimizer adamw with its defaults: beta1 = --momentum 0.9.
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=5e-4)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    crit = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        for x, y in train:
            opt.zero_grad()
            loss = crit(model(x), y)
            loss.backward()
            opt.step()
        if args.no_eval:
            print(f"epoch {epoch + 1}/{epochs}: {time.perf_counter() - t0:.1f} s", flush=True)
            continue
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in test:
                correct += (model(x).argmax(1) == y).sum().item()
                total += len(y)
        sched.step()
        print(f"epoch {epoch + 1}/{epochs}: test top1 {100 * correct / total:.2f}%  {time.perf_counter() - t0:.1f} s",
              flush=True)
    print(f"pytorch total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
