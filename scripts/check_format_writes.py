#!/usr/bin/env python3
"""Checks with SimpleITK the NRRD and MetaImage files autoseg's writers produce.

The Rust test `formats::tests::writes::fresh_writes_read_back_with_the_same_geometry_and_voxels`
writes, when AUTOSEG_FORMAT_WRITES_DIR is set, every fixture image as fresh .nrrd/.nhdr/.mha/.mhd
files, re-encoded write-backs with changed voxels (`changed_*`) and a 4-D image into that folder,
with an expected.json of what each holds. This script reads each file with SimpleITK and compares
size, spacing, origin, direction (1e-12), components and every voxel; for each fresh .mha it
also compares the AnatomicalOrientation line with the one SimpleITK writes for the same image.

Run:
    python3 -m venv /tmp/sitk && /tmp/sitk/bin/pip install SimpleITK numpy
    export CARGO_TARGET_DIR=/tmp/fmt-target
    AUTOSEG_FORMAT_WRITES_DIR=/tmp/format_writes cargo test --release -p autoseg-preprocessing \
        formats::tests::writes
    /tmp/sitk/bin/python scripts/check_format_writes.py /tmp/format_writes
Exit status 0 when every file matches.
"""

import json
import os
import sys
import tempfile

import numpy as np
import SimpleITK as sitk


def close(a, b):
    return len(a) == len(b) and all(abs(x - y) <= 1e-12 for x, y in zip(a, b))


def orientation_line(path):
    with open(path, "rb") as f:
        for line in f.read().split(b"\n"):
            if line.startswith(b"AnatomicalOrientation"):
                return line.decode()
            if line.startswith(b"ElementDataFile"):
                return None
    return None


def check(folder, name, want):
    path = os.path.join(folder, name)
    img = sitk.ReadImage(path)
    faults = []
    if list(img.GetSize()) != want["size"]:
        faults.append(f"size {img.GetSize()} vs {want['size']}")
    for what, got in [("spacing", img.GetSpacing()), ("origin", img.GetOrigin()),
                      ("direction", img.GetDirection())]:
        if not close(got, want[what]):
            faults.append(f"{what} {got} vs {want[what]}")
    if img.GetNumberOfComponentsPerPixel() != want["components"]:
        faults.append(f"components {img.GetNumberOfComponentsPerPixel()} vs {want['components']}")
    values = sitk.GetArrayFromImage(img).ravel().astype(np.float64)
    if not np.array_equal(values, np.array(want["values"], dtype=np.float64)):
        faults.append("voxel values differ")
    if name.endswith(".mha") and not name.startswith("changed_"):
        with tempfile.TemporaryDirectory() as tmp:
            ref = os.path.join(tmp, "ref.mha")
            sitk.WriteImage(img, ref)
            ours, theirs = orientation_line(path), orientation_line(ref)
            if ours != theirs:
                faults.append(f"{ours!r} vs SimpleITK's {theirs!r}")
    return faults


def main():
    folder = sys.argv[1]
    with open(os.path.join(folder, "expected.json")) as f:
        expected = json.load(f)
    bad = 0
    for name, want in sorted(expected.items()):
        faults = check(folder, name, want)
        bad += bool(faults)
        print(f"{'FAIL' if faults else 'ok  '} {name} {'; '.join(faults)}")
    print(f"{len(expected) - bad} of {len(expected)} files read by SimpleITK "
          f"{sitk.Version.VersionString()} as written")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
