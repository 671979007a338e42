#!/usr/bin/env python3
"""What nnU-Net 2.8.1's SimpleITKIO makes of the NRRD/MetaImage fixtures, and what its write_seg
writes back: the known answers of autoseg's image I/O interface (preprocessing/src/image_io/).

For every scalar fixture in fixtures/data/formats/ (vector ones are left out: SimpleITKIO
mistakes their components for an axis), records in fixtures/data/formats/nnunet_io.json:

    {"<file>": {"shape": [c, z, y, x], "spacing": [z, y, x],
                "seg_written": {"size": [...], "spacing": [...], "origin": [...],
                                "direction": [...], "pixel": "<numpy dtype>"}}}

`shape` and `spacing` are `SimpleITKIO().read_images([file])`'s array shape and
`properties['spacing']`; `seg_written` is what SimpleITK reads from the file
`SimpleITKIO().write_seg` writes for a segmentation of that shape (all zeros but for one
voxel set to 3) with the file's properties.

Run (outputs are committed):
    python3 -m venv /tmp/pyenv && /tmp/pyenv/bin/pip install torch==2.11.0 nnunetv2==2.8.1
    /tmp/pyenv/bin/python scripts/make_image_io_goldens.py
"""

import json
import os
import tempfile

import numpy as np
import SimpleITK as sitk
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures", "data", "formats")
# nnU-Net's SimpleITKIO endings; .nhdr and .mhd are read by SimpleITK all the same.
ENDINGS = (".nrrd", ".nhdr", ".mha", ".mhd")


def main():
    expected = json.load(open(os.path.join(FIXTURES, "expected.json")))
    out = {}
    io = SimpleITKIO()
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(expected):
            if not name.endswith(ENDINGS) or expected[name]["components"] != 1:
                continue
            path = os.path.join(FIXTURES, name)
            data, props = io.read_images([path])
            seg = np.zeros(data.shape[1:], dtype=np.uint8)
            seg.flat[len(seg.flat) // 2] = 3
            target = os.path.join(tmp, "seg" + os.path.splitext(name)[1])
            io.write_seg(seg, target, props)
            back = sitk.ReadImage(target)
            out[name] = {
                "shape": list(data.shape),
                "spacing": [float(s) for s in props["spacing"]],
                "seg_written": {
                    "size": list(back.GetSize()),
                    "spacing": list(back.GetSpacing()),
                    "origin": list(back.GetOrigin()),
                    "direction": list(back.GetDirection()),
                    "pixel": str(sitk.GetArrayViewFromImage(back).dtype),
                },
            }
    with open(os.path.join(FIXTURES, "nnunet_io.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"{len(out)} fixtures")


if __name__ == "__main__":
    main()
