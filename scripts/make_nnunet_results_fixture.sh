#!/usr/bin/env bash
# Writes fixtures/data/nnunet/results/: what nnU-Net 2.8.1's nnUNetv2_find_best_configuration
# chose for the committed fixture models (fixtures/data/nnunet/model/, 2d and 3d_fullres of
# nnUNetTrainer_autosegFixture, fold 0), and nnU-Net's own answer for that choice, the known
# answers of `autoseg predict -m <nnUNet_results>/<Dataset>` (issue 17).
#
# - The committed model folders are copied into a fresh nnUNet_results; nnU-Net validates them
#   (`nnUNetv2_train ... --val --npz`, no training: the checkpoints stay the committed ones)
#   and `nnUNetv2_find_best_configuration 901 -c 2d 3d_fullres -tr nnUNetTrainer_autosegFixture
#   -f 0` chooses a model or ensemble and its postprocessing.
# - Kept: Dataset901_Demo3d/inference_information.json and inference_instructions.txt as nnU-Net
#   wrote them (with this machine's absolute paths), every postprocessing.pkl it wrote, and
#   predictions/best/: nnU-Net's masks for imagesTs following its inference_instructions.txt
#   (nnUNetv2_predict of each chosen model with --save_probabilities, nnUNetv2_ensemble when an
#   ensemble won, nnUNetv2_apply_postprocessing); and nnUNetv2_export_model_to_zip of both
#   configurations after the choice (the zip then carries inference_information.json).
#
# Needs the throwaway nnU-Net venv of scripts/make_nnunet_model_fixture.sh (see its header):
#   PY=/tmp/pyenv/bin/python scripts/make_nnunet_results_fixture.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/nnunet_env.sh nnunet-results-fixture
models="$root/fixtures/data/nnunet/model"
out="$root/fixtures/data/nnunet/results"
trainer=nnUNetTrainer_autosegFixture
ds=Dataset901_Demo3d

"$bin_dir/nnUNetv2_plan_and_preprocess" -d 901 -c 2d 3d_fullres -np 1 >"$work/plan.log"
# The committed models' plans (features shrunk) replace the planned ones; the preprocessed data
# do not depend on the features.
cp "$models/${trainer}__nnUNetPlans__3d_fullres/plans.json" "$nnUNet_preprocessed/$ds/nnUNetPlans.json"
for config in 2d 3d_fullres; do
    folder="${trainer}__nnUNetPlans__$config"
    mkdir -p "$nnUNet_results/$ds"
    cp -r "$models/$folder" "$nnUNet_results/$ds/$folder"
    "$bin_dir/nnUNetv2_train" 901 "$config" 0 -tr "$trainer" -device cpu --val --npz >"$work/val_$config.log" 2>&1
done
"$bin_dir/nnUNetv2_find_best_configuration" 901 -c 2d 3d_fullres -tr "$trainer" -f 0 -np 1 >"$work/find_best.log" 2>&1

# nnU-Net's inference_instructions.txt, run as written.
info="$nnUNet_results/$ds/inference_information.json"
images="$nnUNet_raw/$ds/imagesTs"
predicted="$work/predicted"
"$py" - "$info" >"$work/members.txt" <<'EOF'
import json, sys
info = json.load(open(sys.argv[1]))
for m in info["best_model_or_ensemble"]["selected_model_or_models"]:
    print(m["configuration"], m["plans_identifier"], m["trainer"])
EOF
members=()
while read -r config plans_name tr; do
    "$bin_dir/nnUNetv2_predict" -i "$images" -o "$predicted/$config" -d 901 -c "$config" -p "$plans_name" \
        -tr "$tr" -f 0 -device cpu -npp 1 -nps 1 --save_probabilities >"$work/predict_$config.log" 2>&1
    members+=("$predicted/$config")
done <"$work/members.txt"
if [ "${#members[@]}" -gt 1 ]; then
    "$bin_dir/nnUNetv2_ensemble" -i "${members[@]}" -o "$predicted/ensemble" -np 1 >"$work/ensemble.log" 2>&1
    chosen="$predicted/ensemble"
else
    chosen="${members[0]}"
fi
read -r pp_file plans_file < <("$py" -c 'import json, sys; b = json.load(open(sys.argv[1]))["best_model_or_ensemble"]; print(b["postprocessing_file"], b["some_plans_file"])' "$info")
"$bin_dir/nnUNetv2_apply_postprocessing" -i "$chosen" -o "$predicted/best" -pp_pkl_file "$pp_file" -np 1 \
    -plans_json "$plans_file" >"$work/apply_pp.log" 2>&1

rm -rf "$out"
mkdir -p "$out/$ds" "$out/predictions/best"
cp "$info" "$nnUNet_results/$ds/inference_instructions.txt" "$out/$ds/"
(cd "$nnUNet_results/$ds" && find . -name postprocessing.pkl -exec cp --parents {} "$out/$ds/" \;)
cp "$predicted/best/"*.nii.gz "$out/predictions/best/"
# The export wants each fold's progress.png, which the committed folders leave out: an empty one.
touch "$nnUNet_results/$ds/${trainer}__nnUNetPlans__"{2d,3d_fullres}/fold_0/progress.png
"$bin_dir/nnUNetv2_export_model_to_zip" -d 901 -o "$out/${ds}_nnunet_export_best.zip" -c 2d 3d_fullres \
    -tr "$trainer" -f 0 --not_strict >"$work/export.log" 2>&1
du -sh "$out"
cat "$work/find_best.log" | grep -A1 '\*Best\*'
echo "nnU-Net results fixture written to $out (work files in $work)"
