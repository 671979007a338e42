#!/usr/bin/env bash
# Writes fixtures/data/nnunet/model/: a real nnU-Net 2.8.1 trained-model folder (issue 17) and
# nnU-Net's own predictions with it, the known answers of `autoseg predict -m <nnU-Net folder>`.
#
# - Dataset: autoseg's `demo3d` fixture (Dataset901_Demo3d), planned and preprocessed by
#   nnUNetv2_plan_and_preprocess for 2d and 3d_fullres.
# - Networks shrunk to 2-16 features per stage (an edit of nnUNetPlans.json, as users do) so the
#   checkpoints are a few hundred kB.
# - Trained on the CPU by nnUNetTrainer_autosegFixture (nnUNetTrainer with 1 epoch of 10
#   iterations; scripts/nnunet_trainers/, copied into the throwaway venv's nnU-Net), fold 0 of
#   each: 2d and 3d_fullres of nnUNetPlans (PlainConvUNet), 3d_fullres of nnUNetResEncUNetMPlans
#   (ResidualEncoderUNet).
# - nnUNetv2_predict of imagesTs (copied to imagesTs/) with each configuration, with and without
#   mirroring; probabilities of demo_010; nnUNetv2_export_model_to_zip of the whole model.
#
# Needs a throwaway Python with nnunetv2==2.8.1 and torch 2.11 importable, e.g.:
#   python3 -m venv /tmp/pyenv
#   /tmp/pyenv/bin/pip install numpy typing_extensions sympy filelock jinja2 networkx fsspec \
#       tqdm scipy scikit-learn scikit-image SimpleITK pandas tifffile requests nibabel \
#       matplotlib seaborn imagecodecs yacs einops blosc2 graphviz connected-components-3d \
#       pydicom threadpoolctl
#   /tmp/pyenv/bin/pip install --no-deps nnunetv2==2.8.1 acvl-utils dynamic-network-architectures \
#       batchgenerators batchgeneratorsv2 dicom2nifti
#   export PYTHONPATH=<a site-packages holding torch 2.11, e.g. ~/.cache/autoseg-ci/venv/lib/python3.11/site-packages>
#   PY=/tmp/pyenv/bin/python scripts/make_nnunet_model_fixture.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/nnunet_env.sh nnunet-fixture
out="$root/fixtures/data/nnunet/model"

"$bin_dir/nnUNetv2_plan_and_preprocess" -d 901 -c 2d 3d_fullres -np 1 >"$work/plan.log"
"$bin_dir/nnUNetv2_plan_and_preprocess" -d 901 -pl nnUNetPlannerResEncM -c 3d_fullres -np 1 \
    >"$work/plan_resenc.log"
# Shrink every configuration's features (the stage count and everything else stay as planned).
cat >"$work/shrink.py" <<'EOF'
import json, sys
path = sys.argv[1]
plans = json.load(open(path))
for config in plans["configurations"].values():
    kwargs = config.get("architecture", {}).get("arch_kwargs")
    if kwargs:
        kwargs["features_per_stage"] = [min(2 ** (i + 1), 16) for i in range(kwargs["n_stages"])]
json.dump(plans, open(path, "w"), indent=4)
EOF
for plans_name in nnUNetPlans nnUNetResEncUNetMPlans; do
    "$py" "$work/shrink.py" "$nnUNet_preprocessed/Dataset901_Demo3d/$plans_name.json"
done
# (plans name, configuration, prediction folder name)
models=("nnUNetPlans 3d_fullres 3d_fullres" "nnUNetPlans 2d 2d" "nnUNetResEncUNetMPlans 3d_fullres resenc_3d_fullres")
for model in "${models[@]}"; do
    read -r plans_name config name <<<"$model"
    "$bin_dir/nnUNetv2_train" 901 "$config" 0 -tr nnUNetTrainer_autosegFixture -p "$plans_name" -device cpu \
        >"$work/train_$name.log" 2>&1
done

rm -rf "$out"
mkdir -p "$out/predictions"
model_src="$nnUNet_results/Dataset901_Demo3d"
for model in "${models[@]}"; do
    read -r plans_name config name <<<"$model"
    folder="nnUNetTrainer_autosegFixture__${plans_name}__$config"
    mkdir -p "$out/$folder/fold_0"
    cp "$model_src/$folder/"{plans.json,dataset.json,dataset_fingerprint.json} "$out/$folder/"
    cp "$model_src/$folder/fold_0/checkpoint_final.pth" "$out/$folder/fold_0/"
    common=(-d 901 -c "$config" -f 0 -tr nnUNetTrainer_autosegFixture -p "$plans_name" -device cpu -npp 1 -nps 1)
    "$bin_dir/nnUNetv2_predict" -i "$nnUNet_raw/Dataset901_Demo3d/imagesTs" -o "$out/predictions/$name" \
        "${common[@]}" --save_probabilities >"$work/predict_$name.log" 2>&1
    "$bin_dir/nnUNetv2_predict" -i "$nnUNet_raw/Dataset901_Demo3d/imagesTs" -o "$out/predictions/${name}_no_tta" \
        "${common[@]}" --disable_tta >"$work/predict_${name}_no_tta.log" 2>&1
done
# Keep the committed size small: the inputs, every mask, one case's probabilities per
# configuration; no property pickles and no copies of plans/dataset.json.
cp -r "$nnUNet_raw/Dataset901_Demo3d/imagesTs" "$out/imagesTs"
find "$out/predictions" \( -name '*.pkl' -o -name 'plans.json' -o -name 'dataset.json' \) -delete
find "$out/predictions" -name '*.npz' ! -name 'demo_010.npz' -delete
"$bin_dir/nnUNetv2_export_model_to_zip" -d 901 -o "$out/Dataset901_Demo3d_nnunet_export.zip" -c 3d_fullres 2d \
    -tr nnUNetTrainer_autosegFixture -f 0 --not_strict >"$work/export.log" 2>&1
du -sh "$out"
echo "nnU-Net fixture written to $out (work files in $work)"
