#!/usr/bin/env bash
# Data loader throughput against torchvision, both sides in one run
# on the same machine: torchvision's DataLoader(STL10, batch 128, shuffle,
# num_workers=2), then our PrefetchLoader (criterion bench
# `stl10/train_epoch_through_loader`), then torchvision again, so that a
# change in machine load shows up as a change between the two torchvision
# figures. Same 5 000-image STL10-format split, recipe train transforms.
#
#   PYTHON=/tmp/ref/bin/python tools/bench/loader_side_by_side.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
cargo bench -q -p finetune-benches --no-run
"$PYTHON" tools/bench/torchvision_loader.py 3
cargo bench -q -p finetune-benches -- train_epoch_through_loader 2>&1 | grep -E "^stl10|thrpt" | head -2
"$PYTHON" tools/bench/torchvision_loader.py 3
