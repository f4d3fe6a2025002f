#!/usr/bin/env bash
# Builds the CUDA binaries that tools/gpu/check.sh runs, on a machine with
# neither a GPU nor a CUDA installation, and copies them stripped to $DEST.
#
#   tools/gpu/build.sh            # cuda only
#   CUDNN=1 tools/gpu/build.sh    # also device_check_cudnn and finetune_cudnn
#
# - nvcc 13.0 and the CUDA headers come from NVIDIA's PyPI wheels, installed
#   once into the venv $TOOLKIT_VENV. 13.0 because the PTX that candle-kernels
#   embeds must not be newer than the target driver (580 = CUDA 13.0).
# - The CUDA libraries (driver, cuBLAS, cuRAND, NVRTC, cuDNN) are not needed
#   to build: the link uses stub libraries with the right sonames and every
#   symbol the link asks for (collected from the linker's complaints), and the
#   real libraries are found at run time (tools/gpu/check.sh sets
#   LD_LIBRARY_PATH). libcudart is the real one from the runtime wheel.
# - CUDA_COMPUTE_CAP (default 90: H100/H200) selects the architecture of the
#   statically compiled kernels (candle-kernels' libmoe).
set -euo pipefail
cd "$(dirname "$0")/../.."
TOOLKIT_VENV=${TOOLKIT_VENV:-/work/cudatk}
STUBS=${STUBS:-/work/cuda-stubs}
DEST=${DEST:-.gpu-bin}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-cuda}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}

if [ ! -x "$TOOLKIT_VENV/bin/pip" ]; then
    python3 -m venv "$TOOLKIT_VENV"
fi
if ! ls "$TOOLKIT_VENV"/lib/python3*/site-packages/nvidia/cu13/bin/nvcc >/dev/null 2>&1; then
    "$TOOLKIT_VENV/bin/pip" install -q "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-runtime==13.0.*" \
        "nvidia-cuda-cccl==13.0.*" "nvidia-cuda-crt==13.0.*" "nvidia-nvvm==13.0.*"
fi
CUDA_HOME=$(ls -d "$TOOLKIT_VENV"/lib/python3*/site-packages/nvidia/cu13 | head -1)
export CUDA_HOME CUDA_PATH=$CUDA_HOME CUDA_ROOT=$CUDA_HOME PATH=$CUDA_HOME/bin:$PATH
nvcc --version | tail -2

# Stub libraries: lib<name>.so with soname <name> version <major>.
declare -A SONAME=([cuda]=1 [cublas]=13 [cublasLt]=13 [curand]=10 [nvrtc]=13 [cudnn]=9)
mkdir -p "$STUBS"
ln -sfn "$CUDA_HOME/lib/libcudart.so.13" "$STUBS/libcudart.so"
make_stubs() {
    local lib
    for lib in "${!SONAME[@]}"; do
        touch "$STUBS/$lib.syms"
        sort -u -o "$STUBS/$lib.syms" "$STUBS/$lib.syms"
        { echo "/* stub: symbols the link needs from lib$lib */"
          sed 's/.*/void &(void) {}/' "$STUBS/$lib.syms"; } >"$STUBS/$lib.c"
        gcc -shared -fPIC -o "$STUBS/lib$lib.so" -Wl,-soname,"lib$lib.so.${SONAME[$lib]}" "$STUBS/$lib.c"
    done
}
# Sorts the CUDA symbols that the compiled Rust libraries (cudarc's bindings)
# leave undefined into the stubs' lists. More than the link needs is harmless:
# the binary only imports what its code uses.
collect_symbols() {
    local f
    for f in "$CARGO_TARGET_DIR"/release/deps/*.rlib; do
        nm -u "$f" 2>/dev/null | awk 'NF == 2 && $1 == "U" { print $2 }'
    done | sort -u | while read -r sym; do
        case $sym in
        cudnn*) echo "$sym" >>"$STUBS/cudnn.syms" ;;
        cublasLt*) echo "$sym" >>"$STUBS/cublasLt.syms" ;;
        cublas*) echo "$sym" >>"$STUBS/cublas.syms" ;;
        curand*) echo "$sym" >>"$STUBS/curand.syms" ;;
        nvrtc*) echo "$sym" >>"$STUBS/nvrtc.syms" ;;
        cu[A-Z]*) echo "$sym" >>"$STUBS/cuda.syms" ;;
        esac
    done
}
make_stubs
# Changing RUSTFLAGS rebuilds everything: keep it exactly this.
export RUSTFLAGS="-L native=$STUBS"

# build FEATURE: the CLI and the example in one cargo call (one feature
# resolution, so nothing is compiled twice); after a failed link (the first
# build, or new CUDA calls) the stubs learn the missing symbols and it retries.
build() {
    local attempt
    for attempt in 1 2; do
        if cargo build --release -p finetune-cli --bin finetune -p finetune-train \
            --example device_check --features "finetune-cli/$1,finetune-train/$1"; then
            return 0
        fi
        [ "$attempt" = 1 ] || return 1
        echo "build failed; adding the CUDA symbols the libraries use to the stubs and retrying"
        collect_symbols
        make_stubs
    done
}

# The binaries are ~55 MB each (candle-kernels embeds its PTX and SASS); one
# xz archive of them (they share most bytes) is what travels to the GPU
# machine: tools/gpu/check.sh unpacks $BIN/bins.tar.xz.
STAGE=$CARGO_TARGET_DIR/gpu-bin
rm -rf "$STAGE" && mkdir -p "$STAGE" "$DEST"
build cuda
strip -o "$STAGE/device_check" "$CARGO_TARGET_DIR/release/examples/device_check"
strip -o "$STAGE/finetune" "$CARGO_TARGET_DIR/release/finetune"
if [ "${CUDNN:-0}" = 1 ]; then
    build cudnn
    strip -o "$STAGE/device_check_cudnn" "$CARGO_TARGET_DIR/release/examples/device_check"
    strip -o "$STAGE/finetune_cudnn" "$CARGO_TARGET_DIR/release/finetune"
fi
ls -la "$STAGE"
tar -C "$STAGE" -cf - . | xz -9 -T0 >"$DEST/bins.tar.xz"
ls -la "$DEST"
