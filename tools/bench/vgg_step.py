"""PyTorch side of the VGG16 training-step benchmark (issue 6).

VGG16 (torchvision layout, 10 classes, random weights), 96x96 input, batch 16,
two threads, one optimisation step per iteration:

- full: every layer trainable; forward in train mode, cross-entropy, backward,
  plain SGD update.
- head: only classifier.6 trainable; forward through the frozen rest (autograd
  builds no graph there), backward and SGD on the head only.

Prints one line per mode: `torch <mode> <images/s median> (min .. max) over N`.
The Rust counterpart is crates/model/examples/vgg_step.rs; tools/bench/vgg_step.sh
runs both.
"""

import argparse
import statistics
import time

import torch
import torchvision


def step_fn(model, params, x, y):
    opt = torch.optim.SGD(params, lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--side", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--modes", default="full,head")
    ap.add_argument("--split", action="store_true", help="accepted for symmetry with the Rust side; ignored")
    ap.add_argument("--plain-malloc", action="store_true", help="accepted for symmetry with the Rust side; ignored")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.vgg16(num_classes=10)
    model.train()
    x = torch.randn(args.batch, 3, args.side, args.side)
    y = torch.randint(0, 10, (args.batch,))

    for mode in args.modes.split(","):
        for name, p in model.named_parameters():
            p.requires_grad_(mode == "full" or name.startswith("classifier.6."))
        params = [p for p in model.parameters() if p.requires_grad]
        step = step_fn(model, params, x, y)
        for _ in range(args.warmup):
            step()
        rates = []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            step()
            rates.append(args.batch / (time.perf_counter() - t0))
        print(
            f"torch {mode} {statistics.median(rates):.2f} img/s "
            f"({min(rates):.2f} .. {max(rates):.2f}) over {args.iters}",
            flush=True,
        )


if __name__ == "__main__":
    main()
