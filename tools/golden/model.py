"""Golden fixtures for crates/model, computed with torchvision.

Run:  /tmp/ref/bin/python tools/golden/model.py
Writes crates/model/tests/fixtures/model_golden.safetensors and model_tiny.pth.

Weights and inputs come from deterministic formulas that the Rust tests
compute too (crates/model/tests/common/mod.rs), so only outputs are stored.
References are computed in float64 so that the Rust f32 results are compared
with the exact answer, not with another f32 rounding.

Verify a checkpoint written by the Rust tests loads into torchvision:
    /tmp/ref/bin/python tools/golden/model.py --check-saved PATH [NUM_CLASSES]
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file, load_file
from torchvision.models import vgg16
from torchvision.models.vgg import VGG, cfgs, make_layers

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "model", "tests", "fixtures")


def hash_uniform(k, n):
    """n values uniform in [-1, 1) from the splitmix64 finaliser of (k, i).

    Integer-only, so Python and Rust produce the same bits; 24-bit results make
    2u - 1 exact in float32.
    """
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + np.uint64(k + 1) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)
    return 2.0 * u - 1.0


def formula_tensor(k, name, shape):
    """The weight formula shared with Rust: entry k of the state dict, named `name`."""
    n = int(np.prod(shape)) if len(shape) else 1
    if name.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    s = hash_uniform(k, n)
    if len(shape) >= 2:
        # Uniform with He variance 2/fan_in keeps activations O(1) through 13 convs.
        fan_in = int(np.prod(shape[1:]))
        v = s * math.sqrt(6.0 / fan_in)
    elif name.endswith("running_var"):
        v = 1.0 + 0.5 * s * s
    elif name.endswith("weight"):
        v = 1.0 + 0.1 * s
    else:
        v = 0.1 * s
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def formula_input(shape, stream=1000):
    n = int(np.prod(shape))
    v = hash_uniform(stream, n) * 1.5
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def fill(model):
    sd = model.state_dict()
    new = {name: formula_tensor(k, name, tuple(t.shape)) for k, (name, t) in enumerate(sd.items())}
    model.load_state_dict(new)
    return model


def narrow_vgg(cfg_key, batch_norm, divisor, hidden, num_classes, dropout):
    cfg = [v if v == "M" else v // divisor for v in cfgs[cfg_key]]
    model = VGG(make_layers(cfg, batch_norm=batch_norm), num_classes=num_classes, init_weights=False)
    c = 512 // divisor
    model.classifier = nn.Sequential(
        nn.Linear(c * 49, hidden), nn.ReLU(True), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )
    return model


def main():
    os.makedirs(OUT, exist_ok=True)
    out = {}

    # (a) full-width VGG16, 10 classes, eval, float64 reference.
    model = fill(vgg16(weights=None, num_classes=10)).double().eval()
    for tag, shape in [("fwd96", (2, 3, 96, 96)), ("fwd224", (1, 3, 224, 224)), ("fwd64x96", (2, 3, 64, 96))]:
        with torch.no_grad():
            y = model(formula_input(shape).double())
        out[f"{tag}.logits"] = y.float()
        print(tag, "logits std", y.std().item(), "max", y.abs().max().item())
    del model

    # (b) narrow VGG16 backward, train mode, dropout 0, cross-entropy (mean).
    for tag, key, bn in [("bwd16", "D", False), ("bwd11bn", "A", True)]:
        model = fill(narrow_vgg(key, bn, 16, 32, 10, 0.0)).double().train()
        x = formula_input((2, 3, 64, 64)).double()
        target = torch.tensor([3, 7])
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, target)
        loss.backward()
        out[f"{tag}.logits"] = logits.detach().float()
        out[f"{tag}.loss"] = loss.detach().float().reshape(1)
        for name, p in model.named_parameters():
            out[f"{tag}.grad.{name}"] = p.grad.float()
        if bn:
            for name, b in model.named_buffers():
                if "running" in name:
                    out[f"{tag}.after.{name}"] = b.float()
        print(tag, "loss", loss.item())

    # (c) adaptive average pooling forward and backward.
    for tag, shape in [("pool3", (2, 3, 3, 3)), ("pool5", (1, 2, 5, 5)), ("pool7", (1, 2, 7, 7)),
                       ("pool4x9", (2, 2, 4, 9)), ("pool10x13", (1, 1, 10, 13))]:
        x = formula_input(shape, 2000).double().requires_grad_(True)
        y = nn.functional.adaptive_avg_pool2d(x, (7, 7))
        g = formula_input(tuple(y.shape), 3000).double()
        y.backward(g)
        out[f"{tag}.y"] = y.detach().float()
        out[f"{tag}.dx"] = x.grad.float()

    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(OUT, "model_golden.safetensors"))

    # (d) a tiny zip .pth checkpoint with torchvision names.
    tiny = fill(narrow_vgg("D", False, 64, 8, 10, 0.5))
    torch.save(tiny.state_dict(), os.path.join(OUT, "model_tiny.pth"))
    print("wrote", OUT)


def check_saved(path, num_classes):
    """Loads a Rust-written checkpoint into torchvision's vgg16 exactly as a user would."""
    model = vgg16(weights=None, num_classes=num_classes)
    result = model.load_state_dict(load_file(path))
    print("load_state_dict:", result)
    # Formula weights of torchvision's 1000-class vgg16; a replaced head differs in shape and is skipped.
    ref = fill(vgg16(weights=None, num_classes=1000)).state_dict()
    saved = model.state_dict()
    same = [k for k in ref if saved[k].shape == ref[k].shape]
    worst = max((saved[k] - ref[k]).abs().max().item() for k in same)
    print(f"max |saved - formula| over {len(same)} of {len(saved)} tensors:", worst)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--check-saved":
        check_saved(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 10)
    else:
        main()
