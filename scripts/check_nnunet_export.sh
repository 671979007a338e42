#!/usr/bin/env bash
# Checks `autoseg export --format nnunet` against nnU-Net 2.8.1 itself (issue 17, "the reverse"):
#
# 1. An autoseg model trained here (demo3d, 3d_fullres and 2d, fold 0, a few epochs on the CPU)
#    exported for nnU-Net and predicted by `nnUNetv2_predict_from_modelfolder`: its masks and
#    probabilities against `autoseg predict --no-postprocessing` of the autoseg model itself
#    (nnU-Net's predictor does not postprocess); then nnU-Net's `nnUNetv2_apply_postprocessing`
#    with the exported postprocessing.pkl of the configuration find-best chose against
#    `autoseg predict` with that postprocessing.
# 2. nnU-Net's own fixture models (fixtures/data/nnunet/model) imported, exported again and
#    predicted by nnU-Net: against nnU-Net's predictions of the source models.
#
# Prints one line per case and a summary; exits 1 when any mask differs by more than 0.01 % of
# its voxels. Needs a throwaway Python with nnunetv2==2.8.1 and torch 2.11 importable (see
# scripts/make_nnunet_model_fixture.sh), e.g.
#   PYTHONPATH=~/.cache/autoseg-ci/venv/lib/python3.11/site-packages \
#   PY=/tmp/pyenv/bin/python scripts/check_nnunet_export.sh [WORK]
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PY:-python3}"
bin_dir="$(dirname "$py")"
root="$(pwd)"
work="${1:-$(mktemp -d /tmp/nnunet-export-check.XXXXXX)}"
mkdir -p "$work"
cargo build --release -q --bin autoseg
bin="${CARGO_TARGET_DIR:-target}/release/autoseg"
export nnUNet_raw="$work/nnunet_raw" nnUNet_preprocessed="$work/nnunet_pre" nnUNet_results="$work/nnunet_results"
export OMP_NUM_THREADS=2
inputs="$root/fixtures/data/nnunet/model/imagesTs"

# 1. autoseg -> nnU-Net.
"$bin" fixtures demo3d "$work/raw" >/dev/null
dataset="$(ls -d "$work"/raw/Dataset*)"
"$bin" plan-and-train "$dataset" --work "$work/work" -c 2d 3d_fullres --folds 0 \
    --epochs 2 --iters-per-epoch 10 --device cpu >/dev/null
model="$(ls -d "$work"/work/Dataset*)"
"$bin" export "$model" -o "$work/exported" -c 2d 3d_fullres --format nnunet
for config in 2d 3d_fullres; do
    "$bin" predict -i "$inputs" -o "$work/autoseg_$config" -m "$model" -c "$config" --folds 0 \
        --device cpu --save-probabilities --no-postprocessing >/dev/null
    folder="$(ls -d "$work"/exported/*/nnUNetTrainer__nnUNetPlans__"$config")"
    "$bin_dir/nnUNetv2_predict_from_modelfolder" -i "$inputs" -o "$work/nnunet_$config" \
        -m "$folder" -f 0 -device cpu -npp 1 -nps 1 --save_probabilities >/dev/null 2>&1
    if [ -f "$folder/crossval_results_folds_0/postprocessing.pkl" ]; then
        "$bin" predict -i "$inputs" -o "$work/autoseg_${config}_pp" -m "$model" -c "$config" \
            --folds 0 --device cpu >/dev/null
        "$bin_dir/nnUNetv2_apply_postprocessing" -i "$work/nnunet_$config" -o "$work/nnunet_${config}_pp" \
            -pp_pkl_file "$folder/crossval_results_folds_0/postprocessing.pkl" -np 1 \
            -plans_json "$folder/plans.json" -dataset_json "$folder/dataset.json" >/dev/null 2>&1
    fi
done

# 2. nnU-Net -> autoseg -> nnU-Net.
for plans in nnUNetPlans__2d nnUNetPlans__3d_fullres nnUNetResEncUNetMPlans__3d_fullres; do
    "$bin" import-nnunet "$root/fixtures/data/nnunet/model/nnUNetTrainer_autosegFixture__$plans" \
        -o "$work/imported_$plans" >/dev/null
    "$bin" export "$work/imported_$plans" -o "$work/reexported_$plans" --format nnunet >/dev/null
    "$bin_dir/nnUNetv2_predict_from_modelfolder" -i "$inputs" -o "$work/roundtrip_$plans" \
        -m "$(ls -d "$work"/reexported_"$plans"/*/nnUNetTrainer__"$plans")" -f 0 -device cpu \
        -npp 1 -nps 1 >/dev/null 2>&1
done

"$py" - "$work" "$root/fixtures/data/nnunet/model/predictions" <<'PYEOF'
import sys, glob, os
import numpy as np, SimpleITK as sitk
work, golden = sys.argv[1], sys.argv[2]
pairs = [(f"autoseg model {c}", f"{work}/nnunet_{c}", f"{work}/autoseg_{c}")
         for c in ("2d", "3d_fullres", "2d_pp", "3d_fullres_pp") if os.path.isdir(f"{work}/nnunet_{c}")]
pairs += [(f"nnU-Net model {p}", f"{work}/roundtrip_{p}", f"{golden}/{g}") for p, g in (
    ("nnUNetPlans__2d", "2d"), ("nnUNetPlans__3d_fullres", "3d_fullres"),
    ("nnUNetResEncUNetMPlans__3d_fullres", "resenc_3d_fullres"))]
worst = 0.0
for what, theirs, ours in pairs:
    for f in sorted(glob.glob(f"{theirs}/*.nii.gz")):
        case = os.path.basename(f)
        a = sitk.GetArrayFromImage(sitk.ReadImage(f))
        b = sitk.GetArrayFromImage(sitk.ReadImage(f"{ours}/{case}"))
        differ = int((a != b).sum())
        share = differ / a.size
        worst = max(worst, share)
        extra = ""
        npz = f.replace(".nii.gz", ".npz")
        if os.path.exists(npz) and os.path.exists(f"{ours}/{case.replace('.nii.gz', '.npz')}"):
            pa = np.load(npz)["probabilities"]; pb = np.load(f"{ours}/{case.replace('.nii.gz', '.npz')}")["probabilities"]
            extra = f", probabilities differ by at most {np.abs(pa - pb).max():.2e}"
        print(f"{what} {case}: {differ} of {a.size} voxels differ ({100 * share:.4f} %){extra}")
print(f"worst: {100 * worst:.4f} % of a case's voxels")
sys.exit(1 if worst > 1e-4 else 0)
PYEOF
