#!/usr/bin/env bash
# The memory comparison, side by side: peak RSS of full fine-tuning (every
# layer trainable) at batch $BATCH (default 32), 96x96, on the CPU, ours vs
# PyTorch, same data and weights, one epoch over $N images without
# evaluation; each side's whole process is timed, start to exit.
#
#   tools/bench/memory.sh                      # N=64, batch 32, SGD
#   OPTIMIZER=adamw tools/bench/memory.sh      # AdamW on both sides
#   BATCH=16 tools/bench/memory.sh             # another batch size on both sides
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/tmp/ref/bin/python}
N=${N:-64}
OPTIMIZER=${OPTIMIZER:-sgd}
BATCH=${BATCH:-32}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

"$PYTHON" tools/bench/make_fixtures.py "$dir" "$N" 16 >/dev/null
cargo build --release -q -p finetune-cli
bin=${CARGO_TARGET_DIR:-target}/release/finetune

echo "== finetune: $N images, batch $BATCH, all layers, $OPTIMIZER"
/usr/bin/time -f "finetune total %e s, peak RSS %M KB" \
  "$bin" train --data "$dir" --weights "$dir/vgg16.safetensors" --out "$dir/run" \
  --train all --batch-size "$BATCH" --epochs 1 --eval-every 0 --device cpu --quiet \
  --optimizer "$OPTIMIZER"
echo "== PyTorch"
/usr/bin/time -f "pytorch total %e s, peak RSS %M KB" \
  "$PYTHON" tools/bench/recipe_torch.py "$dir" "$dir/vgg16.safetensors" 1 --train all --batch "$BATCH" --no-eval \
  --optimizer "$OPTIMIZER"
