#!/usr/bin/env bash
# Side-by-side VGG16 training-step benchmark: PyTorch, then ours, in
# one run on the same machine, each with 2 threads. Ours is the training
# crate's step (`device_check speed`: finetune-train's in-place SGD, freed
# memory kept, as `finetune train` runs it).
#
#   PYTHON=/tmp/ref/bin/python tools/bench/vgg_step.sh [--iters 5] [--warmup 1] [--modes full,head] [--side 96]
#
# BATCH=n sets the batch (default 16) for both sides; REPEAT=n runs the pair
# n times; THREADS=n the threads of each side. PRECISION=bf16 runs our side
# with bfloat16 GEMMs (`finetune train --precision bf16`; CPUs with
# AVX512_BF16), PRECISION=both runs it in f32 then bf16; PyTorch's side
# stays f32.
# For the forward time of each conv block, run the model crate's example
# and PyTorch's side with the same flag (the same lines, block by block):
#   cargo run --release -p finetune-model --example vgg_step -- --split
#   $PYTHON tools/bench/vgg_step.py --split
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
THREADS=${THREADS:-2}
REPEAT=${REPEAT:-1}
BATCH=${BATCH:-16}
PRECISION=${PRECISION:-f32}
if [ "$PRECISION" = both ]; then PRECISION="f32 bf16"; fi
cargo build --release -q -p finetune-train --example device_check
BIN="${CARGO_TARGET_DIR:-target}/release/examples/device_check"
lscpu | sed -n 's/^Model name: *//p'
# The same defaults on both sides; flags given later win.
set -- --warmup 1 --iters 5 "$@"
for ((r = 1; r <= REPEAT; r++)); do
    "$PYTHON" tools/bench/vgg_step.py --threads "$THREADS" --batch "$BATCH" "$@"
    for p in $PRECISION; do
        RAYON_NUM_THREADS=$THREADS "$BIN" speed --device cpu --batches "$BATCH" --precision "$p" "$@" |
            grep '^candle' | sed "s/^candle/candle $p/"
    done
done
