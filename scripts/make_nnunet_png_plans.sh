#!/usr/bin/env bash
# Writes fixtures/data/nnunet/png_plans/: nnU-Net 2.8.1's plans and fingerprint of autoseg's
# `demo2d` fixture stored as PNG (`autoseg fixtures demo2d OUT --file-ending .png`, read by
# nnU-Net's NaturalImage2DIO), the known answer of tests/formats.rs'
# `a_png_dataset_plans_as_nnunet_plans_it` (issue 18: "a PNG dataset plans identically").
#
# Needs a throwaway Python with nnunetv2==2.8.1 (see scripts/make_nnunet_model_fixture.sh):
#   PY=/tmp/pyenv/bin/python scripts/make_nnunet_png_plans.sh
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PY:-python3}"
bin_dir="$(dirname "$py")"
work="$(mktemp -d /tmp/nnunet-png-plans.XXXXXX)"
export nnUNet_raw="$work/raw" nnUNet_preprocessed="$work/preprocessed" nnUNet_results="$work/results"
export OMP_NUM_THREADS=1
cargo run --release -q -- fixtures demo2d "$nnUNet_raw" --file-ending .png >/dev/null
"$bin_dir/nnUNetv2_plan_and_preprocess" -d 904 -c 2d -np 1 >"$work/plan.log"
out=fixtures/data/nnunet/png_plans
mkdir -p "$out"
cp "$nnUNet_preprocessed/Dataset904_Demo2d/nnUNetPlans.json" \
    "$nnUNet_preprocessed/Dataset904_Demo2d/dataset_fingerprint.json" "$out/"
rm -rf "$work"
echo "wrote $out"
