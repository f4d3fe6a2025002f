#!/usr/bin/env bash
# The head-only job, side by side: the recipe's PyTorch loop vs
# `finetune train --train head --no-augment`, same data, same weights, same
# epochs, each timed end to end (process start to exit) with peak RSS.
#
#   tools/bench/head_only.sh            # 128 train + 128 test images, 20 epochs
#   N=256 EPOCHS=5 tools/bench/head_only.sh
#
# Needs a Python with torch, torchvision and safetensors ($PYTHON, default
# /tmp/ref/bin/python; see tools/golden/ for how to make one).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/tmp/ref/bin/python}
N=${N:-128}
EPOCHS=${EPOCHS:-20}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

"$PYTHON" tools/bench/make_fixtures.py "$dir" "$N" "$N" >/dev/null
cargo build --release -q -p finetune-cli
bin=${CARGO_TARGET_DIR:-target}/release/finetune

echo "== finetune: $N train + $N test images, $EPOCHS epochs, head only, no augmentation"
/usr/bin/time -f "finetune total %e s, peak RSS %M KB" \
  "$bin" train --data "$dir" --weights "$dir/vgg16.safetensors" --out "$dir/run" \
  --train head --no-augment --epochs "$EPOCHS" --device cpu --quiet
echo "== PyTorch (the recipe's loop)"
/usr/bin/time -f "pytorch total %e s, peak RSS %M KB" \
  "$PYTHON" tools/bench/recipe_torch.py "$dir" "$dir/vgg16.safetensors" "$EPOCHS" --train head
