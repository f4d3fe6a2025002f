"""The comparison behind tools/bench/bf16_drift.sh: DIR holds vgg16.safetensors
(the starting weights) and the run directories run-f32/ and run-bf16/.

Prints each epoch's train and test loss and top-1 of both runs with the
relative difference of the losses, then, per tensor, the largest difference
between the two runs' final weights divided by the largest change f32
training made to that tensor (the new head, which has no starting value, is
left out), and the largest such ratio.

    /tmp/ref/bin/python tools/bench/bf16_drift.py DIR
"""
import json
import os
import sys

import numpy as np
from safetensors.numpy import load_file


def epochs(run):
    with open(os.path.join(run, "log.jsonl")) as f:
        return [r for r in map(json.loads, f) if r.get("type") == "epoch"]


def main():
    d = sys.argv[1]
    a, b = epochs(os.path.join(d, "run-f32")), epochs(os.path.join(d, "run-bf16"))
    print("epoch | train loss f32, bf16, rel. diff | test loss f32, bf16, rel. diff | top1 f32, bf16 (train; test)")
    for x, y in zip(a, b):
        cells = []
        for split in ("train", "test"):
            lx, ly = x[split]["loss"], y[split]["loss"]
            cells.append(f"{lx:.6f}, {ly:.6f}, {abs(lx - ly) / abs(lx):.1e}")
        tops = f"{x['train']['top1']:.3f}, {y['train']['top1']:.3f}; {x['test']['top1']:.3f}, {y['test']['top1']:.3f}"
        print(f"{x['epoch']} | {cells[0]} | {cells[1]} | {tops}")
    w0 = load_file(os.path.join(d, "vgg16.safetensors"))
    wa = load_file(os.path.join(d, "run-f32", "last.safetensors"))
    wb = load_file(os.path.join(d, "run-bf16", "last.safetensors"))
    worst = (0.0, "")
    for name in wa:
        if name not in w0 or w0[name].shape != wa[name].shape:
            continue
        apart = np.abs(wa[name].astype(np.float64) - wb[name]).max()
        moved = np.abs(wa[name].astype(np.float64) - w0[name]).max()
        ratio = apart / moved
        print(f"{name}: max |bf16 - f32| {apart:.2e}, max |f32 - start| {moved:.2e}, ratio {ratio:.3f}")
        worst = max(worst, (ratio, name))
    print(f"largest ratio: {worst[0]:.3f} ({worst[1]})")


if __name__ == "__main__":
    main()
