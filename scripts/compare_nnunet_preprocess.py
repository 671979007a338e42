#!/usr/bin/env python3
"""Compare `autoseg preprocess` with nnU-Net 2.8.1's `nnUNetv2_preprocess` on one dataset.

nnU-Net fingerprints, plans and preprocesses the dataset itself; autoseg does the same with
its own planner. For every configuration and case the script compares shapes, properties
(spacing, shape before cropping, crop box, shape after cropping), the normalized image (mean
and max absolute difference), the segmentation (fraction of identical voxels) and the sampled
class locations. Goals: data mean abs diff <= 1e-3, seg >= 99.9 % identical.

Usage (needs nnunetv2, blosc2 and numpy, e.g. the peer venv):
    /work/peer-venv/bin/python scripts/compare_nnunet_preprocess.py \
        --autoseg target/release/autoseg --dataset /tmp/raw/Dataset901_Demo3d \
        --out /tmp/compare -c 3d_fullres 2d [--np 2] [--respace 1,1,3]
`--respace Z,Y,X` first rewrites a copy of the dataset's headers (nibabel) with that base
spacing (array order), varied per case (z x 1, 1.12, 1.24; y x 1, 1.07), so that resampling,
separate-z and a transpose (coarsest axis not first) are exercised; voxels stay unchanged.
Exit status 0 when every configuration meets the goals, 1 otherwise.
"""

import argparse
import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import blosc2
import numpy as np

HEADER = struct.Struct("<8sII3QQQQ16x")  # autoseg case file header (80 bytes)
MAD_GOAL = 1e-3
SEG_GOAL = 0.999


def read_autoseg_case(path):
    """(data (c,z,y,x) f32, seg (1,z,y,x) i16, properties dict) of an autoseg `.case` file."""
    raw = path.read_bytes()
    magic, version, n_channels, nz, ny, nx, _stamp, _source, props_len = HEADER.unpack_from(raw)
    assert magic == b"ASEGCASE" and version == 1, f"{path}: not a version-1 autoseg case file"
    props = json.loads(raw[HEADER.size:HEADER.size + props_len])
    data_offset = -(-(HEADER.size + props_len) // 64) * 64
    n = nz * ny * nx
    data = np.frombuffer(raw, "<f4", n_channels * n, data_offset).reshape(n_channels, nz, ny, nx)
    seg = np.frombuffer(raw, "<i2", n, data_offset + 4 * n_channels * n).reshape(1, nz, ny, nx)
    return data, seg, props


def read_nnunet_case(folder, case):
    data = blosc2.open(str(folder / f"{case}.b2nd"), mode="r")[:]
    seg = blosc2.open(str(folder / f"{case}_seg.b2nd"), mode="r")[:]
    with open(folder / f"{case}.pkl", "rb") as f:
        props = pickle.load(f)
    return data, seg, props


def respaced_copy(dataset, out, base):
    """Copy of `dataset` whose case i has spacing `base * (1 + 0.12 (i % 3), 1 + 0.07 (i % 2), 1)`
    (z, y, x), directions and origins kept."""
    import nibabel as nib
    target = out / "respaced" / dataset.name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(dataset, target)
    ending = json.loads((target / "dataset.json").read_text())["file_ending"]
    files = sorted(target.glob(f"images*/*{ending}")) + sorted(target.glob(f"labels*/*{ending}"))

    def case_of(path):
        stem = path.name[:-len(ending)]
        return re.sub(r"_\d{4}$", "", stem) if path.parent.name.startswith("images") else stem

    cases = sorted({case_of(p) for p in files})
    for path in files:
        i = cases.index(case_of(path))
        zyx = [base[0] * (1 + 0.12 * (i % 3)), base[1] * (1 + 0.07 * (i % 2)), base[2]]
        img = nib.load(path)
        old = img.affine
        direction = old[:3, :3] / np.linalg.norm(old[:3, :3], axis=0)
        affine = old.copy()
        affine[:3, :3] = direction * np.array(zyx[::-1])
        new = nib.Nifti1Image(np.asanyarray(img.dataobj), affine, img.header)
        new.set_qform(affine, code=1)
        new.set_sform(affine, code=1)
        nib.save(new, path)
    return target


def run(cmd, env=None):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    start = time.time()
    subprocess.run([str(c) for c in cmd], check=True, env=env)
    return time.time() - start


def nnunet_env(root):
    env = dict(os.environ)
    for key, sub in [("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "preprocessed"),
                     ("nnUNet_results", "results")]:
        env[key] = str(root / sub)
        (root / sub).mkdir(parents=True, exist_ok=True)
    return env


def run_nnunet(dataset, root, configs, n_proc):
    env = nnunet_env(root)
    target = root / "raw" / dataset.name
    if not target.exists():
        shutil.copytree(dataset, target)
    dataset_id = int(re.match(r"Dataset(\d{3})_", dataset.name).group(1))
    bin_dir = Path(sys.executable).parent
    run([bin_dir / "nnUNetv2_extract_fingerprint", "-d", dataset_id, "-np", n_proc], env)
    run([bin_dir / "nnUNetv2_plan_experiment", "-d", dataset_id], env)
    seconds = run([bin_dir / "nnUNetv2_preprocess", "-d", dataset_id, "-c", *configs,
                   "-np", *[n_proc] * len(configs)], env)
    plans = json.loads((root / "preprocessed" / dataset.name / "nnUNetPlans.json").read_text())
    return plans, seconds


def compare_properties(ours, theirs):
    """Names of the properties that differ."""
    faults = []
    if not np.allclose(ours["spacing"], theirs["spacing"]):
        faults.append(f"spacing {ours['spacing']} vs {list(theirs['spacing'])}")
    for key in ["shape_before_cropping", "shape_after_cropping_and_before_resampling"]:
        if list(ours[key]) != [int(v) for v in theirs[key]]:
            faults.append(f"{key} {ours[key]} vs {list(theirs[key])}")
    their_bbox = [[int(a), int(b)] for a, b in theirs["bbox_used_for_cropping"]]
    if ours["bbox_used_for_cropping"] != their_bbox:
        faults.append(f"bbox {ours['bbox_used_for_cropping']} vs {their_bbox}")
    return faults


def class_key(entry):
    cls = entry["class"]
    return cls["label"] if "label" in cls else tuple(cls["region"])


def compare_locations(ours, theirs):
    """(classes whose sampled voxels are identical, classes compared)."""
    same = 0
    for entry in ours:
        key = class_key(entry)
        locs = np.asarray(theirs.get(key, []))
        theirs_zyx = locs[:, 1:].tolist() if locs.size else []
        same += theirs_zyx == entry["voxels"]
    return same, len(ours)


def compare_case(ours_path, nnunet_dir, case):
    data, seg, props = read_autoseg_case(ours_path)
    ndata, nseg, nprops = read_nnunet_case(nnunet_dir, case)
    row = {"case": case, "shape": list(data.shape), "nnunet_shape": list(ndata.shape),
           "property_faults": compare_properties(props, nprops)}
    if data.shape != ndata.shape or seg.shape != nseg.shape:
        row.update(mad=float("inf"), max_abs=float("inf"), seg_identical=0.0, locations=(0, 0))
        return row
    diff = np.abs(data.astype(np.float64) - ndata.astype(np.float64))
    row.update(mad=float(diff.mean()), max_abs=float(diff.max()),
               seg_identical=float((seg == nseg).mean()),
               locations=compare_locations(props["class_locations"], nprops["class_locations"]))
    return row


def compare_config(config, work, nnunet_root, dataset, plans_ours, plans_theirs):
    ours_dir = work / dataset.name / "preprocessed" / config
    ident = plans_theirs["configurations"][config]["data_identifier"]
    nnunet_dir = nnunet_root / "preprocessed" / dataset.name / ident
    cases = sorted(p.name[:-len(".b2nd")] for p in nnunet_dir.glob("*.b2nd")
                   if not p.name.endswith("_seg.b2nd"))
    rows = [compare_case(ours_dir / f"{c}.case", nnunet_dir, c) for c in cases]
    print(f"\n== {config}: {len(rows)} cases; spacing autoseg "
          f"{plans_ours.get(config)} vs nnU-Net {plans_theirs['configurations'][config]['spacing']}")
    for r in rows:
        loc_same, loc_n = r["locations"]
        faults = "; ".join(r["property_faults"]) or "properties equal"
        print(f"  {r['case']}: shape {r['shape']} vs {r['nnunet_shape']}, mad {r['mad']:.2e}, "
              f"max {r['max_abs']:.2e}, seg {100 * r['seg_identical']:.4f}% identical, "
              f"locations {loc_same}/{loc_n} identical, {faults}")
    worst_mad = max(r["mad"] for r in rows)
    worst_seg = min(r["seg_identical"] for r in rows)
    ok = worst_mad <= MAD_GOAL and worst_seg >= SEG_GOAL and not any(r["property_faults"] for r in rows)
    print(f"  worst mean abs diff {worst_mad:.3e} (goal <= {MAD_GOAL}), worst seg agreement "
          f"{100 * worst_seg:.4f}% (goal >= {100 * SEG_GOAL}%): {'OK' if ok else 'FAILED'}")
    return ok


def our_spacings(work, dataset):
    """Configuration -> spacing from autoseg's plans.toml (minimal TOML reading)."""
    import tomllib
    plans = tomllib.loads((work / dataset.name / "plans.toml").read_text())
    return {name: cfg.get("spacing") for name, cfg in plans["configurations"].items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--autoseg", type=Path, required=True, help="the autoseg binary")
    parser.add_argument("--dataset", type=Path, required=True, help="raw DatasetXXX_Name folder")
    parser.add_argument("--out", type=Path, required=True, help="scratch folder")
    parser.add_argument("-c", "--configurations", nargs="+", default=["3d_fullres", "2d"])
    parser.add_argument("--np", type=int, default=2, help="nnU-Net processes per configuration")
    parser.add_argument("--respace", help="base spacing Z,Y,X for a re-spaced copy of the dataset")
    args = parser.parse_args()
    dataset = args.dataset.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    args.out = args.out.resolve()
    if args.respace:
        dataset = respaced_copy(dataset, args.out, [float(v) for v in args.respace.split(",")])
    nnunet_root = args.out / "nnunet"
    plans_theirs, t_nnunet = run_nnunet(dataset, nnunet_root, args.configurations, args.np)
    work = args.out / "autoseg_work"
    config_flags = [flag for c in args.configurations for flag in ("-c", c)]
    t_ours = run([args.autoseg, "preprocess", dataset, "--work", work, *config_flags])
    print(f"\nnnUNetv2_preprocess {t_nnunet:.1f} s, autoseg preprocess (incl. fingerprint and plan) "
          f"{t_ours:.1f} s")
    spacings = our_spacings(work, dataset)
    ok = [compare_config(c, work, nnunet_root, dataset, spacings, plans_theirs)
          for c in args.configurations]
    sys.exit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()
