#!/usr/bin/env python3
"""NIfTI read/write throughput: autoseg (examples/nifti_bench.rs) beside nibabel, same files, same run.

Makes two synthetic 256x256x128 volumes (float32 and int16, smooth structure plus noise, seed 0),
then for each of those and any FILE given: best-of-REPS seconds for
  read : autoseg `read_image` (to f32)        vs nibabel `np.asanyarray(nib.load(f).dataobj)`
  write: autoseg `write_image` (f32, gzip 1)  vs nibabel `nib.save` of the same float32 array (gzip 1,
         nibabel's default level)
MB/s = uncompressed bytes / seconds: the stored size (header + data) for reads, the float32 size for
writes (1 MB = 1e6 bytes).

    /tmp/nb/bin/python scripts/nifti_bench.py [FILE ...] [--reps N]
"""
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "target" / "release" / "examples" / "nifti_bench"


def synthetic(folder):
    """Two 256x256x128 volumes (x, y, z in nibabel order): smooth blobs + noise."""
    rng = np.random.default_rng(0)
    x, y, z = np.meshgrid(np.linspace(-1, 1, 256), np.linspace(-1, 1, 256), np.linspace(-1, 1, 128),
                          indexing="ij")
    body = (x**2 + y**2 + 0.5 * z**2 < 0.8).astype(np.float32)
    organ = ((x - 0.3)**2 + y**2 + z**2 < 0.1).astype(np.float32)
    vol = -1000 + 1040 * body + 60 * organ + rng.normal(0, 20, body.shape).astype(np.float32)
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    files = []
    for name, data in [("synthetic_f32.nii.gz", vol.astype(np.float32)),
                       ("synthetic_i16.nii.gz", np.round(vol).astype(np.int16))]:
        path = folder / name
        nib.save(nib.Nifti1Image(data, affine, dtype=data.dtype), path)
        files.append(path)
    return files


def best(fn, reps):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def nibabel_times(path, reps, tmp):
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj).astype(np.float32)
    read_s = best(lambda: np.asanyarray(nib.load(str(path)).dataobj), reps)
    out = Path(tmp) / "nib_out.nii.gz"
    write_s = best(lambda: nib.save(nib.Nifti1Image(data, img.affine, img.header, dtype=np.float32), out),
                   reps)
    return read_s, write_s


def main(argv):
    reps = 5
    if "--reps" in argv:
        i = argv.index("--reps")
        reps = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    subprocess.run(["cargo", "build", "--release", "--example", "nifti_bench", "-p", "autoseg-preprocessing"],
                   cwd=REPO, check=True, capture_output=True)
    print(f"{'file':44} {'read MB/s ours':>14} {'nibabel':>8} {'x':>5}   {'write MB/s ours':>15} {'nibabel':>8} {'x':>5}")
    with tempfile.TemporaryDirectory() as tmp:
        files = synthetic(Path(tmp)) + [Path(a) for a in argv]
        for path in files:
            ours = json.loads(subprocess.run([str(BENCH), str(path), "1", str(reps)], check=True,
                                             capture_output=True, text=True).stdout)
            nib_read, nib_write = nibabel_times(path, reps, tmp)
            rmb = ours["stored_bytes"] / 1e6
            wmb = ours["f32_bytes"] / 1e6
            print(f"{path.name + ' ' + ours['datatype']:44} {rmb / ours['read_s']:14.0f} {rmb / nib_read:8.0f} "
                  f"{nib_read / ours['read_s']:5.1f}   {wmb / ours['write_s']:15.0f} {wmb / nib_write:8.0f} "
                  f"{nib_write / ours['write_s']:5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
