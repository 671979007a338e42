#!/usr/bin/env python3
"""Reads back, with nnU-Net 2.8.1's own NaturalImage2DIO and Tiff3DIO, the segmentations that
`formats::natural`'s writers left in a folder, and compares them with the folder's
`manifest.json` (shape, spacing, values; and the dtype nnU-Net's writer would have chosen, as
skimage/tifffile read it).

    AUTOSEG_NATURAL_WRITES=/tmp/natural-writes CARGO_TARGET_DIR=... \\
        cargo test -p autoseg-preprocessing --lib formats::natural::tests::writes_read_back
    python scripts/check_natural_writes.py /tmp/natural-writes

Needs numpy, scikit-image, tifffile, nnunetv2==2.8.1 and batchgenerators (both --no-deps).
Exits 1 on the first mismatch; prints how many files were checked.
"""
import io
import json
import os
import sys
from contextlib import redirect_stdout

import numpy as np
import skimage.io
import tifffile

from nnunetv2.imageio.natural_image_reader_writer import NaturalImage2DIO
from nnunetv2.imageio.tif_reader_writer import Tiff3DIO


def main(folder):
    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    checked = 0
    for name, want in sorted(manifest.items()):
        path = os.path.join(folder, name)
        out = io.StringIO()
        with redirect_stdout(out):
            if want["reader"] == "NaturalImage2DIO":
                arr, props = NaturalImage2DIO().read_seg(path)
                raw = skimage.io.imread(path)
            else:
                arr, props = Tiff3DIO().read_seg(path)
                raw = tifffile.imread(path)
        problems = []
        if list(arr.shape) != want["shape"]:
            problems.append(f"shape {arr.shape} != {want['shape']}")
        elif not np.array_equal(arr.ravel(), np.asarray(want["values"], dtype=np.float32)):
            problems.append("values differ")
        if str(raw.dtype) != want["dtype"]:
            problems.append(f"dtype {raw.dtype} != {want['dtype']}")
        if "spacing" in want:
            if [float(s) for s in props["spacing"]] != want["spacing"]:
                problems.append(f"spacing {props['spacing']} != {want['spacing']}")
            if "WARNING" in out.getvalue():
                problems.append("nnU-Net found no sidecar")
            # the sidecar byte for byte as nnU-Net's save_json writes it
            sidecar = path[: -len(path.split(".")[-1]) - 1] + ".json"
            if open(sidecar).read() != json.dumps({"spacing": want["spacing"]}, sort_keys=True, indent=4):
                problems.append("sidecar text differs from save_json's")
            with tifffile.TiffFile(path) as tif:
                if any(page.compression != 8 for page in tif.pages):
                    problems.append("not deflate (zlib) compressed, as Tiff3DIO writes")
        else:
            if tuple(props["spacing"]) != (999, 1, 1):
                problems.append(f"spacing {props['spacing']}")
        if problems:
            print(f"{name}: " + "; ".join(problems))
            sys.exit(1)
        checked += 1
        print(f"ok {name}: {want['reader']} shape {list(arr.shape)} {raw.dtype}")
    print(f"{checked} files written by autoseg read back by nnU-Net 2.8.1 as expected")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/natural-writes")
