#!/usr/bin/env bash
# Writes the nnU-Net cascade of fixtures/data/nnunet/model/ (issue 17): a real nnU-Net 2.8.1
# 3d_lowres model and the 3d_cascade_fullres model trained on its predictions, and nnU-Net's own
# cascade predictions with them (the known answers of `autoseg predict -m <cascade folder>`).
#
# - Dataset: autoseg's `demo3d` fixture (Dataset901_Demo3d), planned by nnUNetv2_plan_and_preprocess
#   for 3d_fullres; demo3d is too small for nnU-Net to plan a cascade, so the plans gain one by
#   hand, as users edit plans: `3d_lowres` (3d_fullres at 1.5x the spacing, `next_stage`) and
#   `3d_cascade_fullres` (`inherits_from` 3d_fullres, `previous_stage` 3d_lowres); features
#   shrunk to 8-64 per stage (with the 2-16 of make_nnunet_model_fixture.sh the lowres stage
#   learns nothing in this budget and predicts background only).
# - Both trained on the CPU with fold `all` by nnUNetTrainer_autosegFixtureCascade (in
#   scripts/nnunet_trainers/, copied into the venv's nnU-Net: 3 epochs of 30 iterations, enough for
#   the lowres stage to predict some foreground, so the cascade's second input is not empty):
#   the lowres validation over every case writes the predicted_next_stage the cascade trains on.
# - nnUNetv2_predict of imagesTs without mirroring: 3d_lowres, then 3d_cascade_fullres with
#   -prev_stage_predictions.
#
# Needs the throwaway Python of make_nnunet_model_fixture.sh, e.g.:
#   PYTHONPATH=<site-packages holding torch 2.11> PY=/tmp/pyenv/bin/python scripts/make_nnunet_cascade_fixture.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/nnunet_env.sh nnunet-cascade
out="$root/fixtures/data/nnunet/model"

"$bin_dir/nnUNetv2_plan_and_preprocess" -d 901 -c 3d_fullres -np 1 >"$work/plan.log"
plans="$nnUNet_preprocessed/Dataset901_Demo3d/nnUNetPlans.json"
"$py" - "$plans" <<'PYEOF'
import copy, json, sys
path = sys.argv[1]
plans = json.load(open(path))
configs = plans["configurations"]
for config in configs.values():
    kwargs = config.get("architecture", {}).get("arch_kwargs")
    if kwargs:
        kwargs["features_per_stage"] = [min(2 ** (i + 3), 64) for i in range(kwargs["n_stages"])]
full = configs["3d_fullres"]
low = copy.deepcopy(full)
low["data_identifier"] = "nnUNetPlans_3d_lowres"
low["spacing"] = [s * 1.5 for s in full["spacing"]]
low["median_image_size_in_voxels"] = [round(m / 1.5) for m in full["median_image_size_in_voxels"]]
low["next_stage"] = "3d_cascade_fullres"
configs["3d_lowres"] = low
configs["3d_cascade_fullres"] = {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}
json.dump(plans, open(path, "w"), indent=4)
PYEOF
"$bin_dir/nnUNetv2_preprocess" -d 901 -c 3d_fullres 3d_lowres -np 1 1 >"$work/preprocess.log"
for config in 3d_lowres 3d_cascade_fullres; do
    "$bin_dir/nnUNetv2_train" 901 "$config" all -tr nnUNetTrainer_autosegFixtureCascade -device cpu \
        >"$work/train_$config.log" 2>&1
done

model_src="$nnUNet_results/Dataset901_Demo3d"
common=(-d 901 -f all -tr nnUNetTrainer_autosegFixtureCascade -device cpu -npp 1 -nps 1 --disable_tta)
"$bin_dir/nnUNetv2_predict" -i "$nnUNet_raw/Dataset901_Demo3d/imagesTs" \
    -o "$out/predictions/lowres_3d_no_tta" -c 3d_lowres "${common[@]}" >"$work/predict_lowres.log" 2>&1
"$bin_dir/nnUNetv2_predict" -i "$nnUNet_raw/Dataset901_Demo3d/imagesTs" \
    -o "$out/predictions/cascade_3d_fullres_no_tta" -c 3d_cascade_fullres \
    -prev_stage_predictions "$out/predictions/lowres_3d_no_tta" "${common[@]}" >"$work/predict_cascade.log" 2>&1
for config in 3d_lowres 3d_cascade_fullres; do
    folder="nnUNetTrainer_autosegFixtureCascade__nnUNetPlans__$config"
    rm -rf "${out:?}/$folder"
    mkdir -p "$out/$folder/fold_all"
    cp "$model_src/$folder/"{plans.json,dataset.json} "$out/$folder/"
    cp "$model_src/$folder/fold_all/checkpoint_final.pth" "$out/$folder/fold_all/"
done
find "$out/predictions" \( -name '*.pkl' -o -name 'plans.json' -o -name 'dataset.json' \) -delete
du -sh "$out"
echo "nnU-Net cascade fixture written to $out (work files in $work)"
