#!/usr/bin/env python3
"""Compare `autoseg evaluate` with nnU-Net 2.8.1's `nnUNetv2_evaluate_folder` (and medpy's HD95).

On the label maps of a synthetic dataset (`autoseg fixtures NAME DIR`, labelsTr as references)
and perturbed copies of them written with nibabel (predictions: shifts, dilation/erosion, a
spurious blob, salt noise, a label removed), it runs
  nnU-Net:  nnUNetv2_evaluate_folder REF PRED -djfile dataset.json -pfile plans.json -np N
  autoseg:  autoseg --threads N evaluate --pred PRED --ref REF --dataset-json dataset.json
and checks, per case and class, that Dice, IoU, TP, FP, FN, TN, n_pred and n_ref are identical
(NaN where nnU-Net has NaN), as are the per-class and foreground means (up to 4 ulp, reported
as notes: numpy sums 8 or more values pairwise); then that autoseg's HD95
(and ASSD) agree with medpy.metric.binary.hd95 (assd) to 1e-3 mm wherever both masks are
non-empty (medpy raises on an empty mask). It prints the wall time of both tools, best of
--repeats runs on the same machine (autoseg also computes HD95/ASSD/NSD; nnU-Net does not).
Exit status 0 when everything matches, 1 otherwise.

Run it with the Python of a virtual environment that has nnunetv2 2.8.1, nibabel, scipy and medpy:
    cargo build --release
    /work/peer-venv/bin/python scripts/compare_nnunet_evaluate.py --fixture demo3d_large
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from medpy.metric import binary as medpy_binary
from scipy import ndimage

COUNT_METRICS = ("TP", "FP", "FN", "TN", "n_pred", "n_ref")
RATIO_METRICS = ("Dice", "IoU")
DISTANCE_TOLERANCE_MM = 1e-3
# np.nanmean/np.mean sum 8 or more values pairwise (8 partial sums); a plain running sum can
# differ in the last bits. Means this close are reported as notes, not differences.
MEAN_ULPS = 4


def parse_args() -> argparse.Namespace:
    repo = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fixture", default="demo3d", help="autoseg fixture to evaluate on")
    p.add_argument("--autoseg", type=Path, default=repo / "target/release/autoseg")
    p.add_argument("--nnunet-bin", type=Path, default=Path(sys.executable).parent,
                   help="folder holding nnUNetv2_evaluate_folder (default: this Python's bin/)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="processes for nnU-Net (-np) and threads for autoseg (--threads)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each tool (best counts)")
    p.add_argument("--work", type=Path, default=None, help="folder to work in (default: a temp dir)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def perturb(labels: np.ndarray, rng: np.random.Generator, case_idx: int) -> np.ndarray:
    """A plausible prediction: different errors per case, seeded."""
    pred = labels.copy()
    kind = case_idx % 5
    if kind == 0:
        pred = np.roll(pred, shift=int(rng.integers(1, 3)), axis=int(rng.integers(0, 3)))
    elif kind == 1:
        organ = ndimage.binary_dilation(pred == 1, iterations=1)
        pred[(organ) & (pred == 0)] = 1
    elif kind == 2:
        eroded = ndimage.binary_erosion(pred == 1, iterations=1)
        pred[(pred == 1) & ~eroded] = 0
    elif kind == 3:
        pred[pred == 2] = 0  # the lesion is missed entirely
    else:
        x, y, z = (int(rng.integers(0, max(1, s - 4))) for s in pred.shape)
        pred[x:x + 4, y:y + 4, z:z + 3] = 2  # a spurious lesion far from the truth
    noise = rng.random(pred.shape) < 0.002
    pred[noise] = rng.integers(0, 3, size=int(noise.sum()))
    return pred.astype(np.uint8)


def make_folders(args: argparse.Namespace, work: Path) -> tuple[Path, Path, Path, int]:
    subprocess.run([str(args.autoseg), "fixtures", args.fixture, str(work / "raw")], check=True,
                   stdout=subprocess.DEVNULL)
    dataset = next((work / "raw").iterdir())
    ref = dataset / "labelsTr"
    pred = work / "pred"
    pred.mkdir(exist_ok=True)
    rng = np.random.default_rng(args.seed)
    files = sorted(ref.glob("*.nii.gz"))
    n_voxels = 0
    for idx, f in enumerate(files):
        img = nib.load(f)
        labels = np.asarray(img.dataobj).astype(np.uint8)
        n_voxels += labels.size
        out = nib.Nifti1Image(perturb(labels, rng, idx), img.affine, img.header)
        out.set_data_dtype(np.uint8)
        nib.save(out, pred / f.name)
    (work / "plans.json").write_text(json.dumps({"label_manager": "LabelManager"}))
    return ref, pred, dataset / "dataset.json", n_voxels


def timed(cmd: list[str], env: dict[str, str], repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def ulps_apart(a: float, b: float) -> float:
    return abs(a - b) / math.ulp(max(abs(a), abs(b)))


def compare_mean(what: str, a: float, b: float, problems: list[str], notes: list[str]) -> None:
    """Means: exact, or a note when within MEAN_ULPS (numpy sums >= 8 values pairwise)."""
    if same(a, b):
        return
    if math.isfinite(a) and math.isfinite(b) and ulps_apart(a, b) <= MEAN_ULPS:
        notes.append(f"{what}: nnU-Net {a!r} autoseg {b!r} ({ulps_apart(a, b):.0f} ulp)")
    else:
        problems.append(f"{what}: nnU-Net {a!r} autoseg {b!r}")


def compare_overlap(nn: dict, ours: dict) -> list[str]:
    problems, notes = [], []
    nn_cases = {Path(c["prediction_file"]).name: c for c in nn["metric_per_case"]}
    our_cases = {Path(c["prediction_file"]).name: c for c in ours["metric_per_case"]}
    if sorted(nn_cases) != sorted(our_cases):
        problems.append(f"cases differ: {sorted(nn_cases)} vs {sorted(our_cases)}")
    checked = 0
    for name in sorted(set(nn_cases) & set(our_cases)):
        for cls, nn_m in nn_cases[name]["metrics"].items():
            our_m = our_cases[name]["metrics"].get(cls, {})
            for m in COUNT_METRICS + RATIO_METRICS:
                checked += 1
                a, b = float(nn_m[m]), float(our_m.get(m, math.nan))
                if not same(a, b):
                    problems.append(f"{name} class {cls} {m}: nnU-Net {a!r} autoseg {b!r}")
    per_case_problems = len(problems)
    for cls, nn_m in nn["mean"].items():
        for m in COUNT_METRICS + RATIO_METRICS:
            checked += 1
            compare_mean(f"mean class {cls} {m}", float(nn_m[m]), float(ours["mean"][cls][m]),
                         problems, notes)
    for m in COUNT_METRICS + RATIO_METRICS:
        checked += 1
        compare_mean(f"foreground_mean {m}", float(nn["foreground_mean"][m]),
                     float(ours["foreground_mean"][m]), problems, notes)
    print(f"overlap metrics: {checked} values compared; per case {per_case_problems} differ, "
          f"means {len(problems) - per_case_problems} differ, {len(notes)} means within "
          f"{MEAN_ULPS} ulp (numpy's pairwise summation)")
    for note in notes:
        print("NOTE", note)
    return problems


def compare_distances(ours: dict, ref: Path, pred: Path) -> list[str]:
    problems, compared, skipped, worst_hd, worst_assd = [], 0, 0, 0.0, 0.0
    for case in ours["metric_per_case"]:
        name = Path(case["prediction_file"]).name
        ref_img = nib.load(ref / name)
        spacing = tuple(float(s) for s in ref_img.header.get_zooms()[:3])
        r = np.asarray(ref_img.dataobj)
        p = np.asarray(nib.load(pred / name).dataobj)
        for cls, metrics in case["metrics"].items():
            label = int(cls)
            rm, pm = r == label, p == label
            if not rm.any() or not pm.any():
                skipped += 1
                continue
            hd = medpy_binary.hd95(pm, rm, voxelspacing=spacing)
            assd = medpy_binary.assd(pm, rm, voxelspacing=spacing)
            compared += 1
            worst_hd = max(worst_hd, abs(hd - metrics["HD95"]))
            worst_assd = max(worst_assd, abs(assd - metrics["ASSD"]))
            if abs(hd - metrics["HD95"]) > DISTANCE_TOLERANCE_MM:
                problems.append(f"{name} class {cls} HD95: medpy {hd} autoseg {metrics['HD95']}")
            if abs(assd - metrics["ASSD"]) > DISTANCE_TOLERANCE_MM:
                problems.append(f"{name} class {cls} ASSD: medpy {assd} autoseg {metrics['ASSD']}")
    print(f"HD95/ASSD vs medpy: {compared} case-classes compared ({skipped} with an empty mask "
          f"skipped); largest |diff| HD95 {worst_hd:.2e} mm, ASSD {worst_assd:.2e} mm")
    return problems


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="autoseg-eval-cmp-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        ref, pred, dataset_json, n_voxels = make_folders(args, work)
        n_cases = len(list(pred.glob("*.nii.gz")))
        env = dict(os.environ)
        for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            env.setdefault(key, str(work / key))
        nn_json, our_json = work / "nnunet_summary.json", work / "autoseg_summary.json"
        nn_cmd = [str(args.nnunet_bin / "nnUNetv2_evaluate_folder"), str(ref), str(pred),
                  "-djfile", str(dataset_json), "-pfile", str(work / "plans.json"),
                  "-o", str(nn_json), "-np", str(args.threads)]
        our_cmd = [str(args.autoseg), "--threads", str(args.threads), "evaluate", "--pred",
                   str(pred), "--ref", str(ref), "--dataset-json", str(dataset_json),
                   "-o", str(our_json)]
        t_nn = timed(nn_cmd, env, args.repeats)
        t_ours = timed(our_cmd, env, args.repeats)
        nn = json.loads(nn_json.read_text())
        ours = json.loads(our_json.read_text())
        print(f"fixture {args.fixture}: {n_cases} cases, {n_voxels / 1e6:.1f} M voxels in all, "
              f"{args.threads} threads/processes, best of {args.repeats}")
        problems = compare_overlap(nn, ours) + compare_distances(ours, ref, pred)
        print(f"wall time: nnUNetv2_evaluate_folder {t_nn:.2f} s, autoseg evaluate {t_ours:.2f} s "
              f"(with HD95/ASSD/NSD): {t_nn / t_ours:.1f}x")
        for p in problems[:50]:
            print("DIFF", p)
        print("MATCH" if not problems else f"{len(problems)} DIFFERENCES")
        return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
