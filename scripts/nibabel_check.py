#!/usr/bin/env python3
"""Cross-checks autoseg's NIfTI reader and writer against nibabel.

For each file: autoseg's `nifti_dump` example writes the voxels it read, its geometry and the
volume written back by autoseg; this script compares them with nibabel:
  - values exactly equal (images as float32, NaN == NaN; label maps as integers),
  - shape (z, y, x) equal to nibabel's shape reversed, affine within 1e-5,
  - nibabel reads autoseg's written file with the same values, affine (1e-5) and q/sform codes.
Files autoseg refuses (true 4-D) must be 4-D in nibabel too.

Run from a throwaway venv with nibabel and numpy, from the repository root:
    python3 -m venv /tmp/nb && /tmp/nb/bin/pip install numpy nibabel
    /tmp/nb/bin/python scripts/nibabel_check.py FILE... [--labels FILE...]
Exit status 0 when every file agrees.
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parent.parent
DUMP = REPO / "target" / "release" / "examples" / "nifti_dump"


def build():
    subprocess.run(
        ["cargo", "build", "--release", "--example", "nifti_dump", "-p", "autoseg-preprocessing"],
        cwd=REPO, check=True)


def nibabel_zyx(img):
    """nibabel's voxels in autoseg's (z, y, x) order."""
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[..., None]
    return data.transpose(2, 1, 0)


def check(path, labels, tmp):
    ref = nib.load(str(path))
    prefix = Path(tmp) / path.name.replace(".", "_")
    run = subprocess.run([str(DUMP), str(path), str(prefix)] + (["--labels"] if labels else []),
                         capture_output=True, text=True)
    if run.returncode != 0:
        msg = run.stderr.strip().splitlines()[0] if run.stderr.strip() else "?"
        four_d = len(ref.shape) >= 4 and ref.shape[3] > 1
        return four_d, f"refused ({'expected: 4-D' if four_d else 'UNEXPECTED'}): {msg}"
    meta = json.loads(Path(f"{prefix}.json").read_text())
    expected = nibabel_zyx(ref)
    dtype = np.uint16 if labels else np.float32
    ours = np.fromfile(f"{prefix}.raw", dtype="<u2" if labels else "<f4")
    problems = []
    if list(meta["shape_zyx"]) != list(expected.shape):
        problems.append(f"shape {meta['shape_zyx']} != nibabel {list(expected.shape)}")
    else:
        ours = ours.reshape(expected.shape)
        ref_vals = expected.astype(dtype)
        if not np.array_equal(ours, ref_vals, equal_nan=not labels):
            problems.append(f"values differ at {np.count_nonzero(ours != ref_vals)} voxels")
    affine_err = np.abs(np.array(meta["affine"]) - ref.affine).max()
    if affine_err > 1e-5:
        problems.append(f"affine differs by {affine_err:g}")
    problems += check_written(Path(f"{prefix}.nii.gz"), ref, expected.astype(dtype), labels)
    return not problems, "; ".join(problems) or (
        f"ok: shape {meta['shape_zyx']} {meta['datatype']}, affine max diff {affine_err:.1e}, "
        f"spacing {meta['spacing_zyx']}")


def check_written(written, ref, ref_vals, labels):
    """nibabel reads what autoseg wrote: same values, affine and codes."""
    back = nib.load(str(written))
    problems = []
    vals = nibabel_zyx(back).astype(ref_vals.dtype)
    if vals.shape != ref_vals.shape or not np.array_equal(vals, ref_vals, equal_nan=not labels):
        problems.append("nibabel reads different values from autoseg's written file")
    err = np.abs(back.affine - ref.affine).max()
    if err > 1e-5:
        problems.append(f"written affine differs by {err:g}")
    for code in ("qform_code", "sform_code"):
        if int(back.header[code]) != int(ref.header[code]):
            problems.append(f"written {code} {int(back.header[code])} != {int(ref.header[code])}")
    return problems


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    images, labels, target = [], [], None
    target = images
    for arg in argv:
        if arg == "--labels":
            target = labels
        else:
            target.append(Path(arg))
    build()
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path, is_label in [(p, False) for p in images] + [(p, True) for p in labels]:
            ok, msg = check(path, is_label, tmp)
            failed += not ok
            print(f"{'PASS' if ok else 'FAIL'} {path.name}{' (labels)' if is_label else ''}: {msg}")
    print(f"{len(images) + len(labels) - failed} of {len(images) + len(labels)} files agree with nibabel {nib.__version__}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
