#!/usr/bin/env bash
# One GPU check of the project, run from the repository root on a machine with
# an NVIDIA GPU, CUDA 13 libraries (e.g. PyTorch's pip wheels) and no Rust:
#
#   OUT=/some/dir bash tools/gpu/check.sh
#
# Uses binaries built elsewhere by tools/gpu/build.sh, packed in
# $BIN/bins.tar.xz (default .gpu-bin/; plain files in $BIN work too):
# device_check (crates/train/examples/device_check.rs) and finetune, both with
# `--features cuda`; device_check_cudnn and finetune_cudnn too when present. Stages, each under its own time limit:
#   1. the GPU, and how the binaries' CUDA libraries resolve (ldd);
#   2. correctness: narrow VGG16 forward, gradients and 3 SGD steps, GPU vs CPU;
#   3. speed: VGG16 training step at 96x96, batch 64 and 16, full and head,
#      ours then PyTorch's (tools/bench/vgg_step.py --device cuda);
#   4. end to end: `finetune train --device cuda` for one epoch on a synthetic
#      STL10 with random VGG16 weights, --train head and --train all.
# Everything printed goes to $OUT/check.log; run logs are copied to $OUT.
# SKIP="e2e torch" skips stages by name (gpu correctness speed torch e2e).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
BIN=${BIN:-.gpu-bin}
PY=${PYTHON:-/opt/torch/.venv/bin/python3}
SKIP=${SKIP:-}
DEVICE=${DEVICE:-cuda} # cpu for a dry run of the script without a GPU
E2E_TRAIN=${E2E_TRAIN:-512}
E2E_TEST=${E2E_TEST:-256}
WORK=${WORK:-/tmp/gpu-check-work}
mkdir -p "$OUT" "$WORK"
exec > >(tee "$OUT/check.log") 2>&1
T0=$(date +%s)
failures=()

stage() { # stage NAME SECONDS CMD...: runs CMD under a time limit, records failure
    local name=$1 limit=$2
    shift 2
    echo
    echo "=== $name (limit ${limit}s, t=$(($(date +%s) - T0))s): $*"
    local s
    s=$(date +%s)
    timeout --kill-after=5 "$limit" "$@"
    local rc=$?
    echo "=== $name: rc=$rc in $(($(date +%s) - s))s"
    [ $rc -eq 0 ] || failures+=("$name(rc=$rc)")
}
wants() { [[ " $SKIP " != *" $1 "* ]]; }

# CUDA libraries: every folder holding one of those the binaries link against
# (PyTorch's pip wheels put them under site-packages/nvidia/*/lib). Not the
# CUDA forward-compatibility folders (cuda-*/compat): their libcuda does not
# match an up-to-date driver (CUDA_ERROR_SYSTEM_DRIVER_MISMATCH, seen on the H200).
if [ -f "$BIN/bins.tar.xz" ]; then
    mkdir -p "$WORK/bin"
    tar -C "$WORK/bin" -xJf "$BIN/bins.tar.xz" 2>/dev/null ||
        "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
            "$BIN/bins.tar.xz" "$WORK/bin"
    BIN=$WORK/bin
fi

LIBDIRS=$(find /opt/torch/.venv/lib/python3*/site-packages/nvidia /usr/local/cuda*/ \
    /usr/lib/x86_64-linux-gnu /usr/lib64 \
    \( -name 'libcublas.so.*' -o -name 'libcublasLt.so.*' -o -name 'libcurand.so.*' \
    -o -name 'libnvrtc.so.*' -o -name 'libcudart.so.*' -o -name 'libcudnn.so.*' \
    -o -name 'libcuda.so.*' \) -printf '%h\n' 2>/dev/null | grep -v '/compat' | sort -u | paste -sd:)
export LD_LIBRARY_PATH=$LIBDIRS${LIBDIRS:+${LD_LIBRARY_PATH:+:}}${LD_LIBRARY_PATH:-}
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

if wants gpu; then
    nvidia-smi -L
    nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv
    ls -la "$BIN"
    for b in "$BIN"/*; do
        echo "--- ldd $b"
        ldd "$b" | grep -E 'cu|nvrtc|not found|stdc'
    done
fi

DC=$BIN/device_check
FT=$BIN/finetune
if wants correctness; then
    stage correctness 60 "$DC" correctness --device "$DEVICE"
    [ -x "$BIN/device_check_cudnn" ] &&
        stage correctness-cudnn 60 "$BIN/device_check_cudnn" correctness --device "$DEVICE"
fi
if wants speed; then
    stage speed-b16 60 "$DC" speed --device "$DEVICE" --batches 16 --warmup 2 --iters 8
    stage speed-b64 90 "$DC" speed --device "$DEVICE" --batches 64 --warmup 2 --iters 8
    [ -x "$BIN/device_check_cudnn" ] &&
        stage speed-cudnn 90 "$BIN/device_check_cudnn" speed --device "$DEVICE" --batches 64,16 --warmup 2 --iters 8
fi
if wants torch; then
    for b in 64 16; do
        stage "torch-b$b" 45 "$PY" tools/bench/vgg_step.py --device "$DEVICE" --batch "$b" \
            --threads 16 --warmup 3 --iters 10
    done
fi
if wants e2e; then
    stage data 20 "$DC" write-stl10 "$WORK/stl10" "$E2E_TRAIN" "$E2E_TEST"
    stage weights 40 "$DC" write-vgg16 "$WORK/vgg16.safetensors"
    for what in head all; do
        run=$WORK/run-$what
        rm -rf "$run"
        stage "train-$what" 60 "$FT" train --device "$DEVICE" --data "$WORK/stl10" \
            --weights "$WORK/vgg16.safetensors" --out "$run" --train "$what" \
            --epochs 1 --batch-size 64 --quiet
        ls -la "$run"
        for f in log.jsonl; do [ -f "$run/$f" ] && cp "$run/$f" "$OUT/$what-$f"; done
        [ -f "$run/last.safetensors" ] && [ -f "$run/log.jsonl" ] ||
            failures+=("train-$what(run dir incomplete)")
        "$PY" -c 'import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("type") == "epoch":
        print("epoch", r["epoch"], "seconds", r.get("seconds"), "images/s", r.get("images_per_sec"),
              "data wait", r.get("data_wait_seconds"), "train loss", r["train"]["loss"],
              "test top1", (r.get("test") or {}).get("top1"))' "$run/log.jsonl" 2>&1
    done
fi

echo
echo "total ${SECONDS}s; failed stages: ${failures[*]:-none}"
[ ${#failures[@]} -eq 0 ]
