# Sourced by the nnU-Net fixture scripts, from the repository root, with the temporary folder's
# prefix as $1: the throwaway nnU-Net (`PY`, default python3, and its bin folder), a fresh
# nnU-Net work tree (nnUNet_raw/_preprocessed/_results) in a new temporary folder `$work`,
# autoseg's demo3d fixture in it as nnUNet_raw/Dataset901_Demo3d, and autoseg's CPU-sized
# trainers (scripts/nnunet_trainers/) installed into that nnU-Net.
py="${PY:-python3}"
bin_dir="$(dirname "$py")"
root="$(pwd)"
work="$(mktemp -d "/tmp/$1.XXXXXX")"
export nnUNet_raw="$work/raw" nnUNet_preprocessed="$work/preprocessed" nnUNet_results="$work/results"
export nnUNet_n_proc_DA=1 OMP_NUM_THREADS=2
mkdir -p "$nnUNet_raw"
cargo run --release -q -- fixtures demo3d "$nnUNet_raw" >/dev/null
site="$("$py" -c 'import nnunetv2, os; print(os.path.dirname(nnunetv2.__file__))')"
cp scripts/nnunet_trainers/nnUNetTrainer_autoseg.py "$site/training/nnUNetTrainer/variants/"
