#!/usr/bin/env python3
"""Loads a DICOM SEG the way 3D Slicer does (dcmqi segimage2itkimage) and compares it with a mask.

Usage:
    python scripts/seg_viewers/dcmqi_load_seg.py SERIES_DIR SEG_FILE MASK [--labels 1,2,...]
        [--segimage2itkimage PATH]

What runs: 3D Slicer's DICOM SEG plugin (QuantitativeReporting, DICOMPlugins/
DICOMSegmentationPlugin.py, `load`) runs dcmqi's CLI `segimage2itkimage` with
inputSEGFileName, outputDirName and mergeSegments=True, then reads the NRRD files it writes
(1.nrrd, 2.nrrd, ... one per group of non-overlapping segments, voxel value = labelID = segment
number, see meta.json) as label volumes and imports them into a segmentation node. This script
runs the same CLI with the same options (`--inputDICOM SEG --outputDirectory TMP --mergeSegments`)
from the PyPI wheel `dcmqi` (tested with 1.5.7, dcmqi tag v1.5.7), reads the NRRDs and meta.json
with SimpleITK and checks:
  - each NRRD's direction equals the series' (SimpleITK series reader, the grid autoseg uses)
    and its origin lies on the series' voxel grid (a NRRD may be cropped to the slices that
    have frames);
  - every labelled voxel of every NRRD lands on the series grid (nothing lost when it is
    placed on the series' grid with nearest-neighbour resampling, which on the same lattice
    is exact);
  - the labels so placed, segment number n standing for mask label n (or --labels' n-th value),
    equal MASK voxel for voxel (MASK: .nii/.nii.gz/.nrrd/... read by SimpleITK, or .npy, as a
    z,y,x array in the series' sorted slice order);
and prints the voxel count per segment in dcmqi's output and in the mask. Exits 0 when all
match, 1 on a mismatch, 2 when dcmqi cannot run or fails. Tested with SimpleITK 2.5.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def find_tool(explicit):
    if explicit:
        return explicit
    here = Path(sys.executable).parent / "segimage2itkimage"
    if here.exists():
        return str(here)
    return shutil.which("segimage2itkimage")


def read_mask(path, reference):
    if str(path).endswith(".npy"):
        return np.load(path)
    img = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(img)
    if not np.allclose(img.GetOrigin(), reference.GetOrigin(), atol=1e-2):
        print(f"MISMATCH: mask origin {img.GetOrigin()} is not the series' {reference.GetOrigin()}")
        return None
    return arr


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("series")
    ap.add_argument("seg")
    ap.add_argument("mask")
    ap.add_argument("--labels", help="mask label of each segment number, comma separated")
    ap.add_argument("--segimage2itkimage", help="path of dcmqi's segimage2itkimage")
    a = ap.parse_args()

    tool = find_tool(a.segimage2itkimage)
    if not tool:
        print("error: segimage2itkimage not found (pip install dcmqi==1.5.7)")
        return 2

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(a.series))
    series = reader.Execute()
    ref = sitk.Image(series.GetSize(), sitk.sitkUInt16)
    ref.CopyInformation(series)
    mask = read_mask(a.mask, series)
    if mask is None:
        return 1
    shape = tuple(reversed(series.GetSize()))
    good = True
    if mask.shape != shape:
        print(f"MISMATCH: mask shape {mask.shape} is not the series' {shape}")
        return 1

    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(
            [tool, "--inputDICOM", a.seg, "--outputDirectory", tmp, "--mergeSegments"],
            capture_output=True, text=True,
        )
        version = next((l for l in run.stdout.splitlines() if "tag:" in l), "").strip()
        print(f"dcmqi segimage2itkimage --mergeSegments ({version})")
        if run.returncode != 0:
            print(run.stdout[-2000:], run.stderr[-2000:])
            print(f"error: segimage2itkimage exited {run.returncode}")
            return 2
        meta = json.loads((Path(tmp) / "meta.json").read_text())
        groups = meta["segmentAttributes"]
        volume = np.zeros(shape, dtype=np.int32)
        names = {}
        for g, attrs in enumerate(groups):
            img = sitk.ReadImage(str(Path(tmp) / f"{g + 1}.nrrd"))
            if not np.allclose(img.GetDirection(), series.GetDirection(), atol=1e-4):
                print(f"MISMATCH: {g + 1}.nrrd direction {img.GetDirection()} is not the series' {series.GetDirection()}")
                good = False
            idx = series.TransformPhysicalPointToContinuousIndex(img.GetOrigin())
            if not np.allclose(idx, np.round(idx), atol=1e-3):
                print(f"MISMATCH: {g + 1}.nrrd origin {img.GetOrigin()} is off the series' grid (index {idx})")
                good = False
            arr = sitk.GetArrayFromImage(img)
            placed = sitk.GetArrayFromImage(
                sitk.Resample(img, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16)
            )
            for at in attrs:
                n = int(at["labelID"])
                names[n] = at.get("SegmentLabel", "")
                before, after = int((arr == n).sum()), int((placed == n).sum())
                if before != after:
                    print(f"MISMATCH: segment {n}: {before} voxels in {g + 1}.nrrd, {after} on the series' grid")
                    good = False
                if np.any(volume[placed == n]):
                    print(f"MISMATCH: segment {n} overlaps another segment")
                    good = False
                volume[placed == n] = n

    numbers = sorted(names)
    labels = [int(v) for v in a.labels.split(",")] if a.labels else numbers
    if len(labels) != len(numbers):
        print(f"MISMATCH: --labels lists {len(labels)} labels for {len(numbers)} segments")
        return 1
    label_of = dict(zip(numbers, labels))
    mapped = np.zeros_like(volume)
    for n in numbers:
        mapped[volume == n] = label_of[n]
    print("segment  label  name                          dcmqi voxels  mask voxels")
    for n in numbers:
        c1, c2 = int((volume == n).sum()), int((mask == label_of[n]).sum())
        flag = "" if c1 == c2 else "   <-- differs"
        print(f"{n:7d}  {label_of[n]:5d}  {names[n][:28]:28s}  {c1:12d}  {c2:11d}{flag}")
    extra = sorted(set(np.unique(mask).tolist()) - {0} - set(labels))
    if extra:
        print(f"MISMATCH: mask labels {extra} have no segment")
        good = False
    diff = mapped != mask
    if diff.any():
        z, y, x = np.argwhere(diff)[0]
        print(f"MISMATCH: {int(diff.sum())} of {diff.size} voxels differ, first at (z {z}, y {y}, x {x}): "
              f"dcmqi {mapped[z, y, x]}, mask {mask[z, y, x]}")
        good = False
    else:
        print(f"labels == mask: all {diff.size} voxels equal")
    print("OK: dcmqi (3D Slicer) loads the SEG as the mask" if good else "FAILED")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
