"""PyTorch's f32 rounding on the linear layer's forward, for the values of
the model crate's test `ops::dot::tests::lane_sums_are_closer_to_float64_than_a_running_sum`
(a classifier.0-long row: 16 inputs in [0, 1), 64 outputs, 25 088 terms),
against a float64 sum of the same f32 values, relative to the largest
output, rms | max: the figure to set beside the test's own (run it with
`cargo test --release -p finetune-model --lib lane_sums -- --nocapture`).

    python3 tools/bench/linear_rounding.py [--threads 2]
"""
import argparse

import numpy as np
import torch


def value(count, seed):
    """The test's `value(i, seed)` for i in 0..count, in f32 as Rust computes it."""
    i = np.arange(count, dtype=np.int64)
    v = ((i * 7919 + seed * 104_729) % 2001).astype(np.float32)
    return v / np.float32(1000.0) - np.float32(1.0)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    n, k, o = 16, 25088, 64
    x = ((value(n * k, 5) + np.float32(1.0)) / np.float32(2.0)).reshape(n, k)
    w = (value(o * k, 6) / np.float32(100.0)).reshape(o, k)
    exact = x.astype(np.float64) @ w.astype(np.float64).T
    scale = np.abs(exact).max()
    y = torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(w)).numpy()
    d = y.astype(np.float64) - exact
    rms, big = np.sqrt((d * d).mean()) / scale, np.abs(d).max() / scale
    print(f"PyTorch {torch.__version__} f32 linear, relative to the largest output, rms | max: {rms:.1e} | {big:.1e}")


if __name__ == "__main__":
    main()
