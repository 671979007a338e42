#!/usr/bin/env python3
"""Checks with SimpleITK the GIPL files autoseg's writer produces.

The Rust test `formats::gipl::tests::fresh_writes_read_back_as_simpleitk_reads_them` writes,
when AUTOSEG_GIPL_WRITES_DIR is set, every GIPL fixture image afresh and new ones (u8/u16 label
maps with rotated, flipped and axis-swapping directions, 1-D and 2-D float images, doubles with
awkward spacings) into that folder, with an expected.json holding, per file, what SimpleITK
should read ("size", "spacing", "origin", "direction", "pixel", "values") and the geometry of the
image that was written ("written"). This script reads each file with SimpleITK and compares
everything exactly; then it has SimpleITK write the same image ("written" geometry, the same
values and type) and compares the two files byte for byte. They must be identical, except where
the written direction is diagonal with a reversed axis: autoseg writes that axis's spacing
negative (SimpleITK reads it back as that direction; SimpleITK's writer drops it), so the two
files may differ in the pixdim bytes (10..26) only. 1-D images are not compared that way
(SimpleITK has no 1-D images).

Run:
    python3 -m venv /tmp/sitk && /tmp/sitk/bin/pip install SimpleITK numpy
    export CARGO_TARGET_DIR=/tmp/gipl-target
    AUTOSEG_GIPL_WRITES_DIR=/tmp/gipl_writes cargo test --release -p autoseg-preprocessing \
        formats::gipl::tests::fresh_writes
    /tmp/sitk/bin/python scripts/check_gipl_writes.py /tmp/gipl_writes
Exit status 0 when every file matches.
"""

import json
import os
import sys
import tempfile

import numpy as np
import SimpleITK as sitk

DTYPES = {"u8": np.uint8, "i8": np.int8, "u16": np.uint16, "i16": np.int16,
          "f32": np.float32, "f64": np.float64}
PIXDIM = range(10, 26)


def reversed_axis(direction):
    d = int(round(len(direction) ** 0.5))
    diagonal = all((abs(v) == 1.0) if i // d == i % d else v == 0.0
                   for i, v in enumerate(direction))
    return diagonal and any(direction[i * d + i] < 0 for i in range(d))


def simpleitk_file(want, tmp):
    """The file SimpleITK writes for the image autoseg wrote, or None for a 1-D image."""
    written = want["written"]
    if len(written["size"]) < 2:
        return None
    array = np.array(want["values"], dtype=DTYPES[want["pixel"]])
    img = sitk.GetImageFromArray(array.reshape(written["size"][::-1]), isVector=False)
    img.SetSpacing(written["spacing"])
    img.SetOrigin(written["origin"])
    img.SetDirection(written["direction"])
    path = os.path.join(tmp, "sitk.gipl")
    sitk.WriteImage(img, path)
    with open(path, "rb") as f:
        return f.read()


def check(folder, name, want, tmp):
    path = os.path.join(folder, name)
    img = sitk.ReadImage(path)
    faults = []
    for what, got in [("size", img.GetSize()), ("spacing", img.GetSpacing()),
                      ("origin", img.GetOrigin()), ("direction", img.GetDirection())]:
        if list(got) != want[what]:
            faults.append(f"{what} {got} vs {want[what]}")
    values = sitk.GetArrayFromImage(img).ravel()
    if values.dtype != DTYPES[want["pixel"]]:
        faults.append(f"pixel {values.dtype} vs {want['pixel']}")
    if not np.array_equal(values.astype(np.float64), np.array(want["values"], dtype=np.float64)):
        faults.append("voxel values differ")
    theirs = simpleitk_file(want, tmp)
    with open(path, "rb") as f:
        ours = f.read()
    note = ""
    if theirs is None:
        note = "(1-D: no SimpleITK file to compare)"
    elif ours == theirs:
        note = "(same bytes as SimpleITK's)"
    else:
        differing = [i for i in range(max(len(ours), len(theirs)))
                     if i >= min(len(ours), len(theirs)) or ours[i] != theirs[i]]
        if reversed_axis(want["written"]["direction"]) and all(i in PIXDIM for i in differing):
            note = "(SimpleITK's file but for the pixdim signs of reversed axes)"
        else:
            faults.append(f"bytes differ from SimpleITK's at {differing[:8]}")
    return faults, note


def main():
    folder = sys.argv[1]
    with open(os.path.join(folder, "expected.json")) as f:
        expected = json.load(f)
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, want in sorted(expected.items()):
            faults, note = check(folder, name, want, tmp)
            bad += bool(faults)
            print(f"{'FAIL' if faults else 'ok  '} {name} {'; '.join(faults) or note}")
    print(f"{len(expected) - bad} of {len(expected)} files read by SimpleITK "
          f"{sitk.Version.VersionString()} as written")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
