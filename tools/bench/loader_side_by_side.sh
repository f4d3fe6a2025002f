#!/usr/bin/env bash
# Data loader throughput against torchvision, both sides in one run
# on the same machine: torchvision's DataLoader(STL10, batch 128, shuffle,
# num_workers=2), then our PrefetchLoader (criterion bench
# `stl10/train_epoch_through_loader`), then the command users run
# (`finetune data bench`), then torchvision again and the command again, so
# that a change in machine load shows up as a change between the two figures
# of one side. Same 5 000-image STL10-format split, recipe train transforms.
#
#   PYTHON=/tmp/ref/bin/python tools/bench/loader_side_by_side.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
cargo bench -q -p finetune-benches --no-run
cargo build --release -q -p finetune-cli
bin=${CARGO_TARGET_DIR:-target}/release/finetune
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
mkdir "$data/stl10_binary"
head -c $((5000 * 27648)) /dev/urandom >"$data/stl10_binary/train_X.bin"
"$PYTHON" -c "import sys, random; open(sys.argv[1], 'wb').write(bytes(random.randint(1, 10) for _ in range(5000)))" \
  "$data/stl10_binary/train_y.bin"
printf '%s\n' airplane bird car cat deer dog horse monkey ship truck >"$data/stl10_binary/class_names.txt"
cli() { echo "finetune data bench: $("$bin" data bench --data "$data" --epochs 6 | tail -1)"; }
"$PYTHON" tools/bench/torchvision_loader.py 3
cargo bench -q -p finetune-benches -- train_epoch_through_loader 2>&1 | grep -E "^stl10|thrpt" | head -2
cli
"$PYTHON" tools/bench/torchvision_loader.py 3
cli
