#!/usr/bin/env bash
# Side-by-side VGG16 training-step benchmark: PyTorch, then ours, in
# one run on the same machine, each with 2 threads. Extra arguments (e.g.
# `--iters 3 --modes head`) go to both sides; REPEAT=n runs the pair n times.
#
#   PYTHON=/tmp/ref/bin/python tools/bench/vgg_step.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
THREADS=${THREADS:-2}
REPEAT=${REPEAT:-1}
cargo build --release -q -p finetune-model --example vgg_step
BIN="${CARGO_TARGET_DIR:-target}/release/examples/vgg_step"
for ((r = 1; r <= REPEAT; r++)); do
    "$PYTHON" tools/bench/vgg_step.py --threads "$THREADS" "$@"
    RAYON_NUM_THREADS=$THREADS "$BIN" "$@"
done
