#!/usr/bin/env python3
"""Golden fixtures for crates/train: PyTorch's optimisers and LR schedulers.

Writes
  crates/train/tests/fixtures/optim.safetensors   params, grads and expected params per step
  crates/train/tests/fixtures/schedules.json      lr (and momentum) sequences

Run with the reference venv:  /tmp/ref/bin/python tools/golden/train.py
Parameters and gradients come from closed formulas (sin(0.37*i + k)) so the
Rust tests could recompute them, but they are stored too, which keeps the
fixture self-describing. Everything is float32 on CPU, as in our CPU runs.
"""
import json
import math
import os

import torch
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "crates", "train", "tests", "fixtures")
STEPS = 5

SHAPES = {"layer.weight": (3, 4), "layer.bias": (4,)}


def formula(shape, k, scale):
    n = 1
    for s in shape:
        n *= s
    i = torch.arange(n, dtype=torch.float64)
    return (torch.sin(0.37 * i + k) * scale).reshape(shape).to(torch.float32)


def params0():
    return {name: formula(shape, 1.0 + j, 0.5) for j, (name, shape) in enumerate(SHAPES.items())}


def grad(step, j, name):
    return formula(SHAPES[name], 10.0 + 3.0 * step + j, 0.2)


# Each case: optimiser, its group options, and the per-step lr (None = constant).
# Mirrored exactly in crates/train/tests/golden_optim.rs.
CASES = {
    "sgd_plain": dict(kind="sgd", lr=0.1, momentum=0.0, dampening=0.0, nesterov=False, wd=0.0),
    "sgd_momentum_wd": dict(kind="sgd", lr=0.1, momentum=0.9, dampening=0.0, nesterov=False, wd=5e-4),
    "sgd_nesterov": dict(kind="sgd", lr=0.1, momentum=0.9, dampening=0.0, nesterov=True, wd=5e-4),
    "sgd_dampening": dict(kind="sgd", lr=0.1, momentum=0.9, dampening=0.5, nesterov=False, wd=1e-2),
    # Bias in its own group: no weight decay and a tenth of the learning rate.
    "sgd_groups": dict(kind="sgd", lr=0.1, momentum=0.9, dampening=0.0, nesterov=False, wd=5e-4,
                       bias_group=dict(lr_scale=0.1, wd=0.0)),
    "adamw": dict(kind="adamw", lr=0.01, betas=(0.9, 0.999), eps=1e-8, wd=1e-2),
    "adamw_groups_lr": dict(kind="adamw", lr=0.01, betas=(0.8, 0.99), eps=1e-6, wd=0.1,
                            bias_group=dict(lr_scale=0.5, wd=0.0),
                            lrs=[0.01, 0.02, 0.015, 0.005, 0.001]),
}


def run_case(case):
    p0 = params0()
    params = {n: torch.nn.Parameter(t.clone()) for n, t in p0.items()}
    base_lr = case["lr"]
    bg = case.get("bias_group")
    if bg is None:
        groups = [{"params": list(params.values()), "lr": base_lr, "weight_decay": case["wd"]}]
        scales = [1.0]
    else:
        groups = [
            {"params": [params["layer.weight"]], "lr": base_lr, "weight_decay": case["wd"]},
            {"params": [params["layer.bias"]], "lr": base_lr * bg["lr_scale"], "weight_decay": bg["wd"]},
        ]
        scales = [1.0, bg["lr_scale"]]
    if case["kind"] == "sgd":
        opt = torch.optim.SGD(groups, lr=base_lr, momentum=case["momentum"], dampening=case["dampening"],
                              nesterov=case["nesterov"], weight_decay=case["wd"], foreach=False)
    else:
        opt = torch.optim.AdamW(groups, lr=base_lr, betas=case["betas"], eps=case["eps"],
                                weight_decay=case["wd"], foreach=False)
    out = {}
    for step in range(STEPS):
        if "lrs" in case:
            for g, s in zip(opt.param_groups, scales):
                g["lr"] = case["lrs"][step] * s
        for j, (name, p) in enumerate(params.items()):
            p.grad = grad(step, j, name).clone()
        opt.step()
        for name, p in params.items():
            out[f"param.{step}.{name}"] = p.detach().clone()
    return out


def optim_fixture():
    tensors = {}
    for name, t in params0().items():
        tensors[f"params0.{name}"] = t
    for step in range(STEPS):
        for j, name in enumerate(SHAPES):
            tensors[f"grad.{step}.{name}"] = grad(step, j, name)
    for case_name, case in CASES.items():
        for k, v in run_case(case).items():
            tensors[f"{case_name}.{k}"] = v
    save_file(tensors, os.path.join(OUT, "optim.safetensors"),
              metadata={"torch": torch.__version__, "cases": json.dumps(CASES)})


def lrs_of(make_sched, steps, base_lr=0.1, momentum=0.9, with_momentum=False):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base_lr, momentum=momentum)
    sched = make_sched(opt)
    lrs, moms = [], []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    return (lrs, moms) if with_momentum else lrs


def schedule_fixture():
    S = torch.optim.lr_scheduler
    out = {"torch": torch.__version__}
    # Per epoch: the lr in force during epoch e (scheduler stepped at each epoch's end).
    out["cosine_t10_min1e-3"] = dict(base_lr=0.1, t_max=10, eta_min=1e-3,
                                     lrs=lrs_of(lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=1e-3), 15))
    out["cosine_t200_recipe"] = dict(base_lr=1e-5, t_max=200, eta_min=0.0,
                                     lrs=lrs_of(lambda o: S.CosineAnnealingLR(o, T_max=200), 20, base_lr=1e-5))
    out["step_3_0.1"] = dict(base_lr=0.1, step_size=3, gamma=0.1,
                             lrs=lrs_of(lambda o: S.StepLR(o, step_size=3, gamma=0.1), 10))
    # Per batch: epochs * steps_per_epoch steps.
    for name, kw in {"onecycle_default": dict(pct_start=0.3),
                     "onecycle_pct0.25": dict(pct_start=0.25, div_factor=10.0, final_div_factor=100.0)}.items():
        epochs, spe = 3, 7
        lrs, moms = lrs_of(lambda o: S.OneCycleLR(o, max_lr=0.1, epochs=epochs, steps_per_epoch=spe, **kw),
                           epochs * spe, with_momentum=True)
        out[name] = dict(max_lr=0.1, epochs=epochs, steps_per_epoch=spe,
                         pct_start=kw.get("pct_start", 0.3), div_factor=kw.get("div_factor", 25.0),
                         final_div_factor=kw.get("final_div_factor", 1e4), lrs=lrs, momentums=moms)
    with open(os.path.join(OUT, "schedules.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    optim_fixture()
    schedule_fixture()
    print("wrote", OUT)
