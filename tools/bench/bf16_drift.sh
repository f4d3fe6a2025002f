#!/usr/bin/env bash
# `--precision bf16` against f32 on one training run: the same data, weights,
# flags and seed, every layer training; prints each epoch's train and test
# loss and accuracy side by side, each process's time and peak RSS, and how
# far the final weights of the two runs are apart against how far training
# moved them (tools/bench/bf16_drift.py).
#
#   tools/bench/bf16_drift.sh              # 500 train + 200 test images, 4 epochs, batch 32
#   TRAIN=1000 EPOCHS=8 tools/bench/bf16_drift.sh
#
# The images are the tests' STL10-format set (brightness follows the class)
# and the weights a random VGG16 (`device_check write-stl10`, `write-vgg16`):
# no real data can be downloaded on the machines this is built on. Needs a
# CPU with AVX512_BF16, and a Python with numpy and safetensors ($PYTHON,
# default /tmp/ref/bin/python; see tools/golden/).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/tmp/ref/bin/python}
TRAIN=${TRAIN:-500}
TEST=${TEST:-200}
EPOCHS=${EPOCHS:-4}
BATCH=${BATCH:-32}
cargo build --release -q -p finetune-cli -p finetune-train --example device_check
target=${CARGO_TARGET_DIR:-target}/release
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$target/examples/device_check" write-stl10 "$dir/data" "$TRAIN" "$TEST" >/dev/null
"$target/examples/device_check" write-vgg16 "$dir/vgg16.safetensors" >/dev/null
lscpu | sed -n 's/^Model name: *//p'
for p in f32 bf16; do
    /usr/bin/time -f "$p: total %e s, peak RSS %M KB" \
        "$target/finetune" train --data "$dir/data" --weights "$dir/vgg16.safetensors" \
        --out "$dir/run-$p" --epochs "$EPOCHS" --batch-size "$BATCH" --device cpu \
        --precision "$p" --quiet
done
"$PYTHON" tools/bench/bf16_drift.py "$dir"
