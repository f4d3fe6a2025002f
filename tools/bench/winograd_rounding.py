"""Rounding of Winograd convolutions against float64, beside PyTorch's f32.

For each 3x3 convolution shape of VGG16 at 96x96 (batch 1), with ReLU-like
inputs and He-scaled weights, prints the error of the f32 result against a
float64 convolution of the same f32 inputs, relative to the largest output:
PyTorch's own f32 `conv2d` (oneDNN's direct convolution on the CPU), and
Winograd F(2x2, 3x3) and F(4x4, 3x3) (two choices of interpolation points)
computed in f32 with NumPy: filters transformed in float64 and rounded once,
as `crates/model/src/ops/winograd.rs` could do at best, the input and output
transforms and the channel sums in f32.

The matrices come from the Cook-Toom construction (Lavin & Gray, "Fast
Algorithms for Convolutional Neural Networks", 2015) in exact fractions and
are checked against a direct 1-D convolution before use.

    /tmp/ref/bin/python tools/bench/winograd_rounding.py

Needs numpy and torch (see tools/golden/ for the environment).
"""

from fractions import Fraction

import numpy as np
import torch


def poly_from_roots(roots):
    """Coefficients, lowest power first, of prod (x - r)."""
    coeffs = [Fraction(1)]
    for r in roots:
        nxt = [Fraction(0)] * (len(coeffs) + 1)
        for i, c in enumerate(coeffs):
            nxt[i + 1] += c
            nxt[i] -= r * c
        coeffs = nxt
    return coeffs


def cook_toom(m, points):
    """Aᵀ (m x a), G (a x 3), Bᵀ (a x a) of F(m, 3), a = m + 2, for m + 1
    finite points and the point at infinity."""
    pts = [Fraction(p) for p in points]
    a = m + 2
    n = len(pts)
    assert n == a - 1
    at = [[Fraction(0)] * a for _ in range(m)]
    for i in range(m):
        for j in range(n):
            at[i][j] = pts[j] ** i
    at[m - 1][a - 1] = Fraction(1)
    g = [[Fraction(0)] * 3 for _ in range(a)]
    for i in range(n):
        den = Fraction(1)
        for j in range(n):
            if j != i:
                den *= pts[i] - pts[j]
        for k in range(3):
            g[i][k] = pts[i] ** k / den
    g[a - 1][2] = Fraction(1)
    bt = [[Fraction(0)] * a for _ in range(a)]
    for i in range(n):
        for k, c in enumerate(poly_from_roots(pts[:i] + pts[i + 1:])):
            bt[i][k] = c
    for k, c in enumerate(poly_from_roots(pts)):
        bt[a - 1][k] = c
    f64 = lambda rows: np.array([[float(v) for v in r] for r in rows])
    return f64(at), f64(g), f64(bt)


def check_exact(at, g, bt):
    rng = np.random.default_rng(0)
    m, a = at.shape
    w, d = rng.standard_normal(3), rng.standard_normal(a)
    y = at @ ((g @ w) * (bt @ d))
    direct = np.array([sum(d[i + k] * w[k] for k in range(3)) for i in range(m)])
    assert np.abs(y - direct).max() < 1e-12, "not a convolution"


def winograd_f32(x, w, mats):
    """conv2d(x, w, padding 1) for x [C, H, W], w [K, C, 3, 3], in f32."""
    at, g, bt = mats
    m, a = at.shape
    c, h, wd = x.shape
    th, tw = -(-h // m), -(-wd // m)
    xp = np.zeros((c, th * m + 2, tw * m + 2), np.float32)
    xp[:, 1 : h + 1, 1 : wd + 1] = x
    u = np.einsum("ij,kcjl,ml->kcim", g, w.astype(np.float64), g).astype(np.float32)
    tiles = np.stack(
        [
            np.stack([xp[:, ty * m : ty * m + a, tx * m : tx * m + a] for tx in range(tw)], 1)
            for ty in range(th)
        ],
        1,
    )
    bt32, at32 = bt.astype(np.float32), at.astype(np.float32)
    v = np.einsum("ij,cyxjl,ml->cyxim", bt32, tiles, bt32)
    prod = np.einsum("kcij,cyxij->kyxij", u, v)
    y = np.einsum("ij,kyxjl,ml->kyxim", at32, prod, at32)
    k = w.shape[0]
    return y.transpose(0, 1, 3, 2, 4).reshape(k, th * m, tw * m)[:, :h, :wd]


def main():
    torch.set_num_threads(2)
    variants = {
        "F(2x2,3x3)": cook_toom(2, [0, 1, -1]),
        "F(4x4,3x3) 0,±1,±2": cook_toom(4, [0, 1, -1, 2, -2]),
        "F(4x4,3x3) 0,±1,±½": cook_toom(4, [0, 1, -1, Fraction(1, 2), Fraction(-1, 2)]),
    }
    for mats in variants.values():
        check_exact(*mats)
    print("relative to the largest output: max | rms error against float64")
    print("layer                 PyTorch f32         " + "".join(f"{k:24}" for k in variants))
    rng = np.random.default_rng(1)
    for c, k, side in [(64, 64, 96), (128, 128, 48), (256, 256, 24), (512, 512, 12), (512, 512, 6)]:
        x = np.maximum(rng.standard_normal((c, side, side)), 0).astype(np.float32)
        w = (rng.standard_normal((k, c, 3, 3)) * np.sqrt(2 / (9 * c))).astype(np.float32)
        conv = lambda xs, ws: torch.nn.functional.conv2d(
            torch.from_numpy(xs)[None], torch.from_numpy(ws), padding=1
        )[0].numpy()
        exact = conv(x.astype(np.float64), w.astype(np.float64))
        scale = np.abs(exact).max()

        def err(y):
            d = (y.astype(np.float64) - exact) / scale
            return f"{np.abs(d).max():.2e} | {np.sqrt((d * d).mean()):.2e}"

        line = f"{c:3} -> {k:3} at {side:2}x{side:<2}  {err(conv(x, w)):20}"
        for mats in variants.values():
            line += f"{err(winograd_f32(x, w, mats)):24}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
