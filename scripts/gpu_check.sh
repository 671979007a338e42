#!/usr/bin/env bash
# The one prepared GPU check (BENCHMARKS.md "GPU"): run on a lent GPU machine that has python3
# with torch 2.11 but no cargo. Build here first, then carry the stripped binary:
#
#   cargo build --release && mkdir -p gpu && strip -o gpu/autoseg target/release/autoseg
#   (device tool) carry ["gpu"], command: bash scripts/gpu_check.sh gpu/autoseg
#
# It prints `autoseg --version` (libtorch, CUDA usable), trains 3d_fullres fold 0 of the
# demo3d_large fixture for EPOCHS x ITERS iterations on DEVICE (train.log has the epoch times and
# the data-wait share), then predicts the held-out cases with that fold (seconds per phase).
# Everything it writes goes to $OUT (the device tool brings it back), or ./gpu_check_out.
#
# Environment: DEVICE (default cuda), FIXTURE (demo3d_large), CONFIG (3d_fullres), EPOCHS (2),
# ITERS (50). A CPU dry run of the script itself: DEVICE=cpu FIXTURE=demo3d EPOCHS=1 ITERS=1.
set -euo pipefail

bin=${1:?usage: scripts/gpu_check.sh PATH/TO/autoseg}
device=${DEVICE:-cuda}
fixture=${FIXTURE:-demo3d_large}
config=${CONFIG:-3d_fullres}
epochs=${EPOCHS:-2}
iters=${ITERS:-50}
out=${OUT:-$PWD/gpu_check_out}
mkdir -p "$out"
log="$out/gpu_check.log"

# The binary's rpath points at this repository's venv; on the device machine use its torch.
if ! ldd "$bin" 2>/dev/null | grep "libtorch_cpu.so => /" >/dev/null; then
    torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
    export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

step() { echo "== $* ($(date -u +%T))" | tee -a "$log"; }
timed() { /usr/bin/env time -f "%e s wall, %M KB peak RSS" "$@" 2>&1 | tee -a "$log"; }

step "version"
"$bin" --version | tee -a "$log"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$log" || true

step "fixture $fixture"
"$bin" fixtures "$fixture" "$out/raw" | tee -a "$log"
dataset=$(find "$out/raw" -mindepth 1 -maxdepth 1 -type d | head -n 1)
name=$(basename "$dataset")

step "plan"
"$bin" plan "$dataset" --work "$out/work" | tee -a "$log"

step "train $config fold 0: $epochs epochs x $iters iterations on $device"
timed "$bin" train "$dataset" "$config" 0 --work "$out/work" --device "$device" \
    --epochs "$epochs" --iters-per-epoch "$iters"
cp "$out/work/$name/results/$config/fold_0/train.log" "$out/train.log"
grep -E "Epoch time|Data wait" "$out/train.log" | tee -a "$log"
# On CUDA the loader pins every batch for a non-blocking copy; a failure is logged once.
if [ "$device" != cpu ]; then
    grep -q "cannot pin batches" "$log" && echo "pinning FAILED (see above)" | tee -a "$log" \
        || echo "batches pinned: no pinning warning" | tee -a "$log"
fi

step "predict imagesTs with fold 0 on $device"
timed "$bin" predict -i "$dataset/imagesTs" -o "$out/pred" -m "$out/work/$name" -c "$config" \
    --folds 0 --device "$device"

step "done"
