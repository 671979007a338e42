"""Writes the committed postprocessing fixtures of issue 17 into fixtures/data/nnunet/.

nnU-Net's `nnUNetv2_find_best_configuration` saves its postprocessing choice as
`postprocessing.pkl`: `(pp_fns, pp_fn_kwargs)`, the functions pickled by reference. These are
written with nnU-Net 2.8.1's own `save_pickle` and functions:

- postprocessing_labels.pkl: what `determine_postprocessing` saves when both steps help on a
  dataset with labels 1 and 2: keep the largest component of all foreground
  (`labels_or_regions=[1, 2]`, `label_manager.foreground_labels`), then of label 2 alone.
- postprocessing_regions.pkl: one step on a region, given as a tuple, as for region datasets.
- postprocessing_foreign.pkl: a "postprocessing function" that is not nnU-Net's
  (`shutil.rmtree`, pickled by reference like nnU-Net's): autoseg must refuse it by name.
- model/predictions/resenc_3d_fullres_no_tta_pp/: nnU-Net's `nnUNetv2_apply_postprocessing` of
  model/predictions/resenc_3d_fullres_no_tta/ with postprocessing_labels.pkl (the known answer
  of `predict -m --no-tta` on the ResEnc model folder holding that file).

Run once, with nnunetv2==2.8.1 and torch 2.11 importable (see make_nnunet_model_fixture.sh):
    PYTHONPATH=~/.cache/autoseg-ci/venv/lib/python3.11/site-packages \
        /tmp/pyenv/bin/python scripts/make_nnunet_postprocessing_fixtures.py
"""

import shutil
import subprocess
import sys
from pathlib import Path

from batchgenerators.utilities.file_and_folder_operations import save_pickle
from nnunetv2.postprocessing.remove_connected_components import (
    remove_all_but_largest_component_from_segmentation as keep_largest,
)

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "data" / "nnunet"


def main():
    save_pickle(([keep_largest, keep_largest], [{"labels_or_regions": [1, 2]}, {"labels_or_regions": 2}]),
                str(OUT / "postprocessing_labels.pkl"))
    save_pickle(([keep_largest], [{"labels_or_regions": (1, 2)}]), str(OUT / "postprocessing_regions.pkl"))
    save_pickle(([shutil.rmtree], [{"path": "/tmp/autoseg-never-removed"}]), str(OUT / "postprocessing_foreign.pkl"))

    model = OUT / "model"
    folder = model / "nnUNetTrainer_autosegFixture__nnUNetResEncUNetMPlans__3d_fullres"
    apply = Path(sys.executable).parent / "nnUNetv2_apply_postprocessing"
    for source in ("resenc_3d_fullres_no_tta",):
        out = model / "predictions" / f"{source}_pp"
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([str(apply), "-i", str(model / "predictions" / source), "-o", str(out),
                        "-pp_pkl_file", str(OUT / "postprocessing_labels.pkl"), "-np", "1",
                        "-plans_json", str(folder / "plans.json"), "-dataset_json", str(folder / "dataset.json")],
                       check=True)

if __name__ == "__main__":
    main()
