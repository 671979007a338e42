#!/usr/bin/env python3
"""Issue 17's measurement: nnU-Net models trained for real, run by nnU-Net and by autoseg.

nnU-Net 2.8.1 plans, preprocesses and trains autoseg's `demo3d` fixture (Dataset901_Demo3d) on
the CPU, full-size networks (nnU-Net's own plans, unedited), 2d and 3d_fullres, folds 0-4, with
nnUNetTrainer_autosegBench (scripts/nnunet_trainers/, copied into the throwaway venv's nnU-Net:
nnUNetTrainer with 3 epochs of 20 iterations in 2d, 2 epochs of 10 in 3d, "a few epochs").
Then, per configuration, per fold set (fold 0 alone, and the five-fold ensemble) and per
mirroring setting, in alternating order:

  nnUNetv2_predict -i imagesTs -o OUT -d 901 -c CONFIG -f FOLDS -tr nnUNetTrainer_autosegBench
      -device cpu -npp 1 -nps 1 [--disable_tta]
  autoseg predict -i imagesTs -o OUT -m <that nnU-Net model folder> -c CONFIG --folds FOLDS
      --device cpu --no-postprocessing [--no-tta]

each under /usr/bin/time -v with the process tree's summed RSS sampled every 50 ms (the
measurement code of scripts/compare_nnunet_predict.py), OMP_NUM_THREADS equal for both. Masks are
compared voxel by voxel for every run; probabilities from one extra (untimed) pair of runs per
configuration and fold set with --save_probabilities / --save-probabilities, mirroring on.

Needs Python 3.11+ to drive (stdlib only), and a throwaway venv with nnunetv2 2.8.1 and torch
2.11 (header of scripts/make_nnunet_model_fixture.sh) whose python also runs the comparison
(numpy, SimpleITK).

Example (about an hour on 2 cores, most of it nnU-Net's training):
    cargo build --release
    PYTHONPATH=<torch 2.11 site-packages> python3 scripts/measure_nnunet_trained.py \\
        --venv /tmp/pyenv --keep /tmp/bench17t --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_nnunet_predict import measure, nnunet_env, run  # noqa: E402

DATASET_ID, DATASET = 901, "Dataset901_Demo3d"
TRAINER = "nnUNetTrainer_autosegBench"
CONFIGS = ("2d", "3d_fullres")
FOLD_SETS = ((0,), (0, 1, 2, 3, 4))


def parse_args() -> argparse.Namespace:
    repo = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--venv", type=Path, required=True, help="throwaway venv with nnunetv2 2.8.1")
    p.add_argument("--autoseg", type=Path, default=repo / "target/release/autoseg")
    p.add_argument("--keep", type=Path, required=True, help="work folder (kept; training is reused)")
    p.add_argument("--threads", type=int, default=2, help="torch/OMP threads for both tools")
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds per setting")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS))
    p.add_argument("--train-only", action="store_true", help="train the models, measure nothing")
    p.add_argument("--json", type=Path, help="also write all measurements here")
    return p.parse_args()


def model_folder(root: Path, config: str) -> Path:
    return root / "nnUNet_results" / DATASET / f"{TRAINER}__nnUNetPlans__{config}"


def train(args: argparse.Namespace, root: Path, env: dict[str, str]) -> None:
    """Plans, preprocesses and trains every configuration and fold not trained yet."""
    raw = root / "nnUNet_raw"
    if not (raw / DATASET).is_dir():
        raw.mkdir(parents=True, exist_ok=True)
        run([str(args.autoseg), "fixtures", "demo3d", str(raw)])
    site = run([str(args.venv / "bin/python"), "-c", "import nnunetv2, os; print(os.path.dirname(nnunetv2.__file__))"],
               env).strip()
    trainers = Path(__file__).resolve().parent / "nnunet_trainers" / "nnUNetTrainer_autoseg.py"
    shutil.copy(trainers, Path(site) / "training/nnUNetTrainer/variants" / trainers.name)
    if not (root / "nnUNet_preprocessed" / DATASET / "nnUNetPlans.json").is_file():
        run([str(args.venv / "bin/nnUNetv2_plan_and_preprocess"), "-d", str(DATASET_ID), "-c", *CONFIGS,
             "-np", "1"], env)
    for config in args.configs:
        for fold in FOLD_SETS[-1]:
            if (model_folder(root, config) / f"fold_{fold}" / "checkpoint_final.pth").is_file():
                continue
            print(f"training nnU-Net {config} fold {fold}", flush=True)
            run([str(args.venv / "bin/nnUNetv2_train"), str(DATASET_ID), config, str(fold), "-tr", TRAINER,
                 "-device", "cpu"], {**env, "nnUNet_n_proc_DA": "1"})


def predict_cmd(tool: str, args, root: Path, config: str, folds, tta: bool, out: Path, probs: bool):
    images = root / "nnUNet_raw" / DATASET / "imagesTs"
    fold_args = [str(f) for f in folds]
    if tool == "autoseg":
        cmd = [str(args.autoseg), "predict", "-i", str(images), "-o", str(out), "-m",
               str(model_folder(root, config)), "-c", config, "--folds", ",".join(fold_args), "--device", "cpu",
               "--no-postprocessing"]
        cmd += [] if tta else ["--no-tta"]
        cmd += ["--save-probabilities"] if probs else []
        return cmd, {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    cmd = [str(args.venv / "bin/nnUNetv2_predict"), "-i", str(images), "-o", str(out), "-d", str(DATASET_ID),
           "-c", config, "-f", *fold_args, "-tr", TRAINER, "-device", "cpu", "-npp", "1", "-nps", "1"]
    cmd += [] if tta else ["--disable_tta"]
    cmd += ["--save_probabilities"] if probs else []
    return cmd, nnunet_env(root, args.threads, args.venv)


COMPARE_SOURCE = r'''
import json, sys
from pathlib import Path
import numpy as np
import SimpleITK as sitk
a, b = Path(sys.argv[1]), Path(sys.argv[2])
differ = total = 0
where = []
worst = 0.0
for fa in sorted(a.glob("*.nii.gz")):
    x = sitk.GetArrayFromImage(sitk.ReadImage(str(fa)))
    y = sitk.GetArrayFromImage(sitk.ReadImage(str(b / fa.name)))
    d = int((x != y).sum())
    differ += d
    total += x.size
    if d:
        where.append(f"{fa.name}: {d}")
    pa, pb = fa.with_name(fa.name[:-7] + ".npz"), b / (fa.name[:-7] + ".npz")
    if pa.is_file() and pb.is_file():
        worst = max(worst, float(np.abs(np.load(pa)["probabilities"] - np.load(pb)["probabilities"]).max()))
print(json.dumps({"differ": differ, "total": total, "where": where, "prob_max_diff": worst}))
'''


def compare(args, env, ours: Path, theirs: Path) -> dict:
    return json.loads(run([str(args.venv / "bin/python"), "-c", COMPARE_SOURCE, str(ours), str(theirs)], env))


def main() -> None:
    args = parse_args()
    root = args.keep.resolve()
    root.mkdir(parents=True, exist_ok=True)
    env = nnunet_env(root, args.threads, args.venv)
    train(args, root, env)
    if args.train_only:
        return
    print("loadavg before:", Path("/proc/loadavg").read_text().strip(), flush=True)
    rows = []
    for config in args.configs:
        for folds in FOLD_SETS:
            for tta in (False, True):
                runs = {"nnunet": [], "autoseg": []}
                masks = None
                for rnd in range(args.rounds):
                    for tool in (("nnunet", "autoseg") if rnd % 2 == 0 else ("autoseg", "nnunet")):
                        out = root / f"out_{tool}"
                        shutil.rmtree(out, ignore_errors=True)
                        cmd, cmd_env = predict_cmd(tool, args, root, config, folds, tta, out, False)
                        res = measure(cmd, cmd_env)
                        res.pop("stdout")
                        runs[tool].append(res)
                        print(f"{config} folds={folds} tta={tta} round {rnd} {tool}: {res}", flush=True)
                    masks = compare(args, env, root / "out_autoseg", root / "out_nnunet")
                row = {"config": config, "folds": len(folds), "tta": tta, "masks": masks}
                for tool, rs in runs.items():
                    row[f"{tool}_wall"] = sum(r["wall"] for r in rs) / len(rs)
                    row[f"{tool}_rss_tree"] = max(r["rss_tree_mib"] for r in rs)
                if tta:
                    for tool in ("nnunet", "autoseg"):
                        out = root / f"probs_{tool}"
                        shutil.rmtree(out, ignore_errors=True)
                        cmd, cmd_env = predict_cmd(tool, args, root, config, folds, tta, out, True)
                        run(cmd, cmd_env)
                    row["probs"] = compare(args, env, root / "probs_autoseg", root / "probs_nnunet")
                print(json.dumps(row), flush=True)
                rows.append(row)
    print("loadavg after:", Path("/proc/loadavg").read_text().strip())
    n = len(list((root / "nnUNet_raw" / DATASET / "imagesTs").glob("*_0000.nii.gz")))
    print(f"\n{n} cases; seconds for the whole command (start-up and model load included); MiB")
    print("| config | folds | mirroring | nnU-Net e2e | autoseg e2e | ratio | nnU-Net RSS tree | autoseg RSS tree "
          "| ratio | voxels that differ | probabilities, largest difference |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["masks"]
        probs = f"{r['probs']['prob_max_diff']:.1e}" if "probs" in r else "—"
        print(f"| {r['config']} | {r['folds']} | {'on' if r['tta'] else 'off'} | {r['nnunet_wall']:.2f} | "
              f"{r['autoseg_wall']:.2f} | {r['nnunet_wall'] / r['autoseg_wall']:.2f}× | {r['nnunet_rss_tree']:.0f} | "
              f"{r['autoseg_rss_tree']:.0f} | {r['nnunet_rss_tree'] / r['autoseg_rss_tree']:.2f}× | "
              f"{m['differ']} of {m['total']} | {probs} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
