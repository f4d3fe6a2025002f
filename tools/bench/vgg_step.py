"""PyTorch side of the VGG16 training-step benchmark.

VGG16 (torchvision layout, 10 classes, random weights), 96x96 input, batch 16,
two threads, one optimisation step per iteration:

- full: every layer trainable; forward in train mode, cross-entropy, backward,
  plain SGD update.
- head: only classifier.6 trainable; forward through the frozen rest (autograd
  builds no graph there), backward and SGD on the head only.

Prints one line per mode: `torch <mode> <images/s median> (min .. max) over N`.
`--split` first prints the forward speed of each conv block and of
classifier.0-4 under `torch.no_grad()`, eval mode, the fastest of 9 runs
after one untimed run, as the Rust side's `--split` does (same lines, same
GFLOP counts), so the two compare block by block.
With `--device cuda` (default `cpu`) model and data live on the GPU and each
timed step ends with `torch.cuda.synchronize()`; the line then names the
device and batch, and PyTorch's defaults are kept (cuDNN may use TF32 for
convolutions; `--no-tf32` turns that off).
The Rust counterpart is crates/model/examples/vgg_step.rs; tools/bench/vgg_step.sh
runs both.
"""

import argparse
import statistics
import time

import torch
import torchvision


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_fn(model, params, x, y):
    opt = torch.optim.SGD(params, lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def fastest(f):
    """The fastest of 9 timed runs of f (seconds) after one untimed run, and its last result."""
    out = f()
    best = float("inf")
    for _ in range(9):
        t0 = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t0)
    return best, out


@torch.no_grad()
def block_rates(model, x):
    """Forward time of each conv block (convolutions, ReLUs, max-pool) and of classifier.0-4."""
    model.eval()
    n, side = x.shape[0], x.shape[-1]
    pools = [i for i, m in enumerate(model.features) if isinstance(m, torch.nn.MaxPool2d)]
    h, start = x, 0
    for b, end in enumerate(pools):
        block = model.features[start : end + 1]
        s = (side >> b) ** 2
        flops = sum(
            2 * n * m.out_channels * m.in_channels * 9 * s
            for m in block
            if isinstance(m, torch.nn.Conv2d)
        )
        t, h = fastest(lambda: block(h))
        print(f"  block {b + 1} forward: {t * 1e3:.1f} ms, {flops / t / 1e9:.0f} GFLOP/s", flush=True)
        start = end + 1
    pooled = torch.flatten(model.avgpool(h), 1)
    head = model.classifier[:5]
    t, _ = fastest(lambda: head(pooled))
    flops = 2 * n * 4096 * (25088 + 4096)
    print(f"  classifier.0-4 forward: {t * 1e3:.1f} ms, {flops / t / 1e9:.0f} GFLOP/s", flush=True)
    model.train()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--side", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--modes", default="full,head")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--no-tf32", action="store_true", help="cuda: full f32 convolutions and matmuls")
    ap.add_argument("--split", action="store_true", help="also time each conv block's forward (see above)")
    ap.add_argument("--plain-malloc", action="store_true", help="accepted for symmetry with the Rust side; ignored")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    if device.type == "cuda":
        if args.no_tf32:
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        print(
            f"torch {torch.__version__} on {torch.cuda.get_device_name(device)}, "
            f"cudnn {torch.backends.cudnn.version()}, "
            f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, "
            f"matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}",
            flush=True,
        )
    model = torchvision.models.vgg16(num_classes=10)
    model.train()
    x = torch.randn(args.batch, 3, args.side, args.side)
    y = torch.randint(0, 10, (args.batch,))
    if device.type != "cpu":
        model, x, y = model.to(device), x.to(device), y.to(device)
    label = "torch" if device.type == "cpu" else f"torch {device.type} batch {args.batch}"

    if args.split:
        block_rates(model, x)
    for mode in args.modes.split(","):
        for name, p in model.named_parameters():
            p.requires_grad_(mode == "full" or name.startswith("classifier.6."))
        params = [p for p in model.parameters() if p.requires_grad]
        step = step_fn(model, params, x, y)
        for _ in range(args.warmup):
            step()
        rates = []
        for _ in range(args.iters):
            sync(device)
            t0 = time.perf_counter()
            step()
            sync(device)
            rates.append(args.batch / (time.perf_counter() - t0))
        print(
            f"{label} {mode} {statistics.median(rates):.2f} img/s "
            f"({min(rates):.2f} .. {max(rates):.2f}) over {args.iters}",
            flush=True,
        )


if __name__ == "__main__":
    main()
