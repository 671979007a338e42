#!/usr/bin/env python3
"""Compare autoseg's fingerprint and plans with nnU-Net 2.8.1's on the same dataset.

Runs, on DATASET (a folder in nnU-Net raw layout):
  nnU-Net:  nnUNetv2_extract_fingerprint -d ID -np N  and  nnUNetv2_plan_experiment -d ID -pl PLANNER
            in a temporary nnUNet_raw / nnUNet_preprocessed / nnUNet_results layout (the dataset is
            symlinked in as DatasetXXX_Name; a folder not named like that becomes Dataset999_<name>),
  autoseg:  autoseg fingerprint DATASET --work W  and  autoseg plan DATASET --work W --planner P
            --gpu-memory-gb G (G = the nnU-Net planner's own default: 8, 8, 24, 40 GB),
then prints a table comparing dataset_fingerprint.json with fingerprint.toml (floats to a relative
tolerance, 1e-4 by default) and the plans' 2d, 3d_fullres, 3d_lowres and 3d_cascade_fullres
configurations (spacing, patch size, batch size, stages, features, kernels, strides,
normalization, batch dice, median image size) with plans.toml. Exit status: 0 when everything
matches, 1 otherwise.

This script needs only the Python 3.11+ standard library (tomllib). nnU-Net runs from its own
virtual environment, given with --venv; to create one:
    python3 -m venv /path/to/nnunet-venv
    /path/to/nnunet-venv/bin/pip install nnunetv2==2.8.1 torch nibabel
(torch may be the CPU wheel: planning builds networks only to count their feature maps).

Example:
    cargo build --release
    python3 scripts/compare_nnunet.py /data/Dataset004_Hippocampus --venv /work/peer-venv
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

PLANNERS = {
    # autoseg --planner: (nnU-Net planner class, plans file, its default GPU memory target in GB)
    "default": ("ExperimentPlanner", "nnUNetPlans.json", 8.0),
    "resenc-m": ("nnUNetPlannerResEncM", "nnUNetResEncUNetMPlans.json", 8.0),
    "resenc-l": ("nnUNetPlannerResEncL", "nnUNetResEncUNetLPlans.json", 24.0),
    "resenc-xl": ("nnUNetPlannerResEncXL", "nnUNetResEncUNetXLPlans.json", 40.0),
}
CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres")
INTENSITY_KEYS = ("mean", "median", "std", "min", "max", "percentile_00_5", "percentile_99_5")


def parse_args() -> argparse.Namespace:
    repo = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dataset", type=Path, help="dataset folder in nnU-Net raw layout")
    p.add_argument("--venv", type=Path, default=Path("/work/peer-venv"),
                   help="virtual environment with nnunetv2 2.8.1 (its bin/ holds nnUNetv2_*)")
    p.add_argument("--autoseg", type=Path, default=repo / "target/release/autoseg",
                   help="the autoseg binary (default: target/release/autoseg)")
    p.add_argument("--planner", choices=sorted(PLANNERS), default="default")
    p.add_argument("--np", type=int, default=2, help="nnU-Net fingerprint processes (-np)")
    p.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance for floats")
    p.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp dir)")
    return p.parse_args()


def run(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Runs cmd, failing loudly with its output; returns the wall time in seconds."""
    start = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if res.returncode != 0:
        sys.exit(f"command failed ({res.returncode}): {' '.join(cmd)}\n{res.stdout}\n{res.stderr}")
    return took


def nnunet_name(dataset: Path) -> tuple[int, str]:
    m = re.match(r"Dataset(\d{3})_.+", dataset.name)
    if m:
        return int(m.group(1)), dataset.name
    return 999, f"Dataset999_{dataset.name}"


def run_nnunet(args: argparse.Namespace, work: Path) -> tuple[dict, dict, dict[str, float]]:
    dataset_id, name = nnunet_name(args.dataset)
    raw, pre, res = (work / d for d in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"))
    for d in (raw, pre, res):
        d.mkdir(parents=True, exist_ok=True)
    link = raw / name
    if not link.exists():
        link.symlink_to(args.dataset.resolve(), target_is_directory=True)
    env = dict(os.environ, nnUNet_raw=str(raw), nnUNet_preprocessed=str(pre),
               nnUNet_results=str(res))
    planner, plans_file, gpu_gb = PLANNERS[args.planner]
    bin_dir = args.venv / "bin"
    times = {
        "fingerprint": run([str(bin_dir / "nnUNetv2_extract_fingerprint"), "-d", str(dataset_id),
                            "-np", str(args.np), "--clean", "--no_pbar"], env),
        "plan": run([str(bin_dir / "nnUNetv2_plan_experiment"), "-d", str(dataset_id),
                     "-pl", planner, "-gpu_memory_target", str(gpu_gb)], env),
    }
    fingerprint = json.loads((pre / name / "dataset_fingerprint.json").read_text())
    plans = json.loads((pre / name / plans_file).read_text())
    return fingerprint, plans, times


def run_autoseg(args: argparse.Namespace, work: Path) -> tuple[dict, dict, dict[str, float]]:
    out = work / "autoseg_work"
    exe, ds = str(args.autoseg), str(args.dataset)
    gpu_gb = PLANNERS[args.planner][2]
    times = {
        "fingerprint": run([exe, "fingerprint", ds, "--work", str(out)]),
        "plan": run([exe, "plan", ds, "--work", str(out), "--planner", args.planner,
                     "--gpu-memory-gb", str(gpu_gb)]),
    }
    folder = out / args.dataset.resolve().name
    fingerprint = tomllib.loads((folder / "fingerprint.toml").read_text())
    plans = tomllib.loads((folder / "plans.toml").read_text())
    return fingerprint, plans, times


def close(a, b, rtol: float) -> bool:
    """Recursive equality; floats to rtol (NaN equals NaN), ints and strings exactly."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(close(x, y, rtol) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=rtol, abs_tol=1e-12)
    return a == b


def rel_diff(a, b) -> str:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if a == b:
            return "0"
        scale = max(abs(a), abs(b))
        return f"{abs(a - b) / scale:.1e}" if scale else "inf"
    return ""


def fingerprint_rows(nn: dict, ours: dict) -> list[tuple[str, object, object, str]]:
    rows = [
        ("n cases", len(nn["spacings"]), len(ours["spacings"]), ""),
        ("spacings", nn["spacings"], ours["spacings"], ""),
        ("shapes_after_crop", nn["shapes_after_crop"], ours["shapes_after_crop"], ""),
        ("median_relative_size_after_cropping", nn["median_relative_size_after_cropping"],
         ours["median_relative_size_after_cropping"], ""),
    ]
    nn_props = nn["foreground_intensity_properties_per_channel"]
    our_props = ours.get("foreground_intensity_properties", {})
    for channel in sorted(nn_props, key=int):
        for key in INTENSITY_KEYS:
            a = nn_props[channel][key]
            b = our_props.get(channel, {}).get(key)
            rows.append((f"channel {channel} {key}", a, b, rel_diff(a, b) if b is not None else ""))
    return rows


def resolve(configs: dict, name: str) -> dict | None:
    """A configuration with inherits_from followed (shallow merge, as both tools do)."""
    if name not in configs:
        return None
    entry = dict(configs[name])
    parent = entry.pop("inherits_from", None)
    if parent is None:
        return entry
    merged = resolve(configs, parent) or {}
    merged.update(entry)
    return merged


def nnunet_config_view(c: dict) -> dict:
    kw = c["architecture"]["arch_kwargs"]
    return {
        "spacing": c["spacing"], "patch_size": c["patch_size"], "batch_size": c["batch_size"],
        "median_image_size_in_voxels": c["median_image_size_in_voxels"],
        "normalization_schemes": c["normalization_schemes"],
        "use_mask_for_norm": c["use_mask_for_norm"], "batch_dice": c["batch_dice"],
        "n_stages": kw["n_stages"], "features_per_stage": kw["features_per_stage"],
        "kernel_sizes": kw["kernel_sizes"], "strides": kw["strides"],
        "network": c["architecture"]["network_class_name"].rsplit(".", 1)[-1],
    }


def autoseg_config_view(c: dict) -> dict:
    arch = c["architecture"]
    view = {k: c.get(k) for k in ("spacing", "patch_size", "batch_size",
                                  "median_image_size_in_voxels", "normalization_schemes",
                                  "use_mask_for_norm", "batch_dice")}
    view.update({k: arch.get(k) for k in ("n_stages", "features_per_stage", "kernel_sizes",
                                          "strides", "network")})
    return view


def plans_rows(nn: dict, ours: dict) -> list[tuple[str, object, object, str]]:
    rows = [("transpose_forward", nn["transpose_forward"], ours.get("transpose_forward"), "")]
    for name in CONFIGURATIONS:
        a = resolve(nn["configurations"], name)
        b = resolve(ours.get("configurations", {}), name)
        if a is None or b is None:
            rows.append((f"{name} planned", a is not None, b is not None, ""))
            continue
        va, vb = nnunet_config_view(a), autoseg_config_view(b)
        for key in va:
            rows.append((f"{name} {key}", va[key], vb[key], ""))
    return rows


def short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 48 else text[:45] + "..."


def print_table(title: str, rows, rtol: float) -> int:
    print(f"\n{title}")
    print(f"{'item':<42} {'ok':<4} {'nnU-Net':<50} {'autoseg':<50} rel.diff")
    n_bad = 0
    for item, a, b, diff in rows:
        ok = close(a, b, rtol)
        n_bad += not ok
        print(f"{item:<42} {'yes' if ok else 'NO':<4} {short(a):<50} {short(b):<50} {diff}")
    return n_bad


def main() -> int:
    args = parse_args()
    if not args.autoseg.is_file():
        sys.exit(f"{args.autoseg}: no autoseg binary; run `cargo build --release` first")
    with tempfile.TemporaryDirectory(prefix="compare_nnunet_") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        nn_fp, nn_plans, nn_times = run_nnunet(args, work)
        our_fp, our_plans, our_times = run_autoseg(args, work)
    n_bad = print_table("fingerprint: dataset_fingerprint.json vs fingerprint.toml",
                        fingerprint_rows(nn_fp, our_fp), args.rtol)
    n_bad += print_table(f"plans ({args.planner}): {PLANNERS[args.planner][1]} vs plans.toml",
                         plans_rows(nn_plans, our_plans), args.rtol)
    print(f"\nwall time  fingerprint: nnU-Net {nn_times['fingerprint']:.2f} s (-np {args.np}), "
          f"autoseg {our_times['fingerprint']:.2f} s; plan: nnU-Net {nn_times['plan']:.2f} s, "
          f"autoseg {our_times['plan']:.2f} s")
    print("all match" if n_bad == 0 else f"{n_bad} mismatch(es)")
    return 0 if n_bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
