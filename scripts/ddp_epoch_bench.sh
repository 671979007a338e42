#!/usr/bin/env bash
# Epoch time of data-parallel training at 1 and 2 ranks (BENCHMARKS.md, issue 19), alternating:
# demo3d's 2d plan, 3 epochs of 10 training iterations (global batch 22) on the CPU with 2
# threads in all; prints the `Epoch time` of epochs 1 and 2 from train.log and the load average.
# Usage: scripts/ddp_epoch_bench.sh [ROUNDS] (from the repository root, after a release build).
set -euo pipefail
rounds="${1:-2}"
bin="$(pwd)/target/release/autoseg"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$bin" fixtures demo3d "$tmp/raw" >/dev/null
dataset="$tmp/raw/Dataset901_Demo3d"
for round in $(seq 1 "$rounds"); do
    for n in 1 2; do
        work="$tmp/work$n"
        rm -rf "$work"
        "$bin" plan "$dataset" --work "$work" >/dev/null 2>&1
        "$bin" preprocess "$dataset" --work "$work" -c 2d >/dev/null 2>&1
        "$bin" --threads 2 train "$dataset" 2d 0 --work "$work" --epochs 3 \
            --iters-per-epoch 10 --device cpu --nproc "$n" >/dev/null 2>&1
        times=$(grep "Epoch time" "$work/Dataset901_Demo3d/results/2d/fold_0/train.log" \
            | tail -2 | sed 's/.*Epoch time: //; s/ s$//' | tr '\n' ' ')
        echo "round $round, $n rank(s): epochs 1 and 2: $times s; load $(cut -d' ' -f1 /proc/loadavg)"
    done
done
