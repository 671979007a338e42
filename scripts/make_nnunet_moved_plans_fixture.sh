#!/usr/bin/env bash
# Writes fixtures/data/nnunet/moved_plans_Dataset902_Target.json: nnU-Net 2.8.1's own
# `nnUNetv2_move_plans_between_datasets` of the fixture model's plans (the 2d model's
# plans.json, as Dataset901_Demo3d's nnUNetPlans.json) onto Dataset902_Target, the demo3d images
# under another name with a label more ("cyst": 3) — the known answer of
# `autoseg plan Dataset902_Target --plans-from <that plans.json>` (tests/pretrained.rs).
#
# Needs the throwaway Python of make_nnunet_model_fixture.sh, e.g.:
#   PYTHONPATH=<site-packages holding torch 2.11> PY=/tmp/pyenv/bin/python scripts/make_nnunet_moved_plans_fixture.sh
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PY:-python3}"
bin_dir="$(dirname "$py")"
root="$(pwd)"
work="$(mktemp -d /tmp/nnunet-moved-plans.XXXXXX)"
export nnUNet_raw="$work/raw" nnUNet_preprocessed="$work/preprocessed" nnUNet_results="$work/results"
mkdir -p "$nnUNet_raw" "$nnUNet_preprocessed/Dataset901_Demo3d"
cp "$root/fixtures/data/nnunet/model/nnUNetTrainer_autosegFixture__nnUNetPlans__2d/plans.json" \
    "$nnUNet_preprocessed/Dataset901_Demo3d/nnUNetPlans.json"
cargo run --release -q -- fixtures demo3d "$work/demo" >/dev/null
mv "$work/demo/Dataset901_Demo3d" "$nnUNet_raw/Dataset902_Target"
sed -i 's/"lesion": 2/"lesion": 2,\n    "cyst": 3/' "$nnUNet_raw/Dataset902_Target/dataset.json"
grep -q '"cyst": 3' "$nnUNet_raw/Dataset902_Target/dataset.json"
# nnU-Net writes into the target's preprocessed folder, which its fingerprint extraction would
# have made (the docs ask for that first; the move reads nothing from it).
mkdir -p "$nnUNet_preprocessed/Dataset902_Target"
"$bin_dir/nnUNetv2_move_plans_between_datasets" -s 901 -t 902 -sp nnUNetPlans
cp "$nnUNet_preprocessed/Dataset902_Target/nnUNetPlans.json" \
    "$root/fixtures/data/nnunet/moved_plans_Dataset902_Target.json"
echo "written fixtures/data/nnunet/moved_plans_Dataset902_Target.json (work files in $work)"
