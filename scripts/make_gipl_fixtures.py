#!/usr/bin/env python3
"""Golden GIPL files for autoseg's GIPL codec (preprocessing/src/formats/gipl/).

Writes small images with SimpleITK into fixtures/data/gipl/ (every pixel type ITK's GiplImageIO
writes, 2-D and 3-D, non-unit spacing, non-zero origin, a non-identity direction to show that
GIPL drops it), a few headers written by hand (the second magic number, image type 1 "binary",
a zero third size, four axes, trailing bytes, negative spacings), then reads every file back
with SimpleITK and records what it reports in expected.json:

    {"images": {"<file>": {"size": [...], "spacing": [...], "origin": [...],
                           "direction": [...], "components": 1, "pixel": "<numpy dtype>",
                           "values": [... x fastest ...], "written": {...}}},
     "broken": {"<file>": {"sitk": "<SimpleITK's error, or null when it reads the file>",
                           "refused_as": "<the FormatError variant autoseg gives>"}}}

"written" (SimpleITK-written files only) is the geometry of the image handed to WriteImage.
Broken files: truncated data (SimpleITK reads it, with garbage), bad and little-endian magic
numbers, a header cut short, absurd sizes, a zero size, zero spacing, 32-bit integer and
complex image types (ITK cannot read either).
The sizes are those of what autoseg refuses: 65535^4 doubles cannot be addressed, 65535^3
doubles are far more than the file holds.

The Rust tests (preprocessing/src/formats/gipl/tests.rs) read each file and compare.

Run (once; the outputs are committed):
    python3 -m venv /tmp/sitk && /tmp/sitk/bin/pip install SimpleITK numpy
    /tmp/sitk/bin/python scripts/make_gipl_fixtures.py
Made with SimpleITK 2.5.7 (ITK 5.4), numpy 2.
"""

import json
import math
import os
import struct
import sys

import numpy as np
import SimpleITK as sitk

# The fixture description SimpleITK gives (size, spacing, origin, direction, type, values), as
# for the NRRD/MetaImage fixtures.
from make_format_fixtures import describe  # noqa: E402  (scripts/ is on sys.path)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "data", "gipl")
HEADER = 256


def rotation(a, b):
    """A proper rotation (z by a, then x by b), row-major 3x3."""
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return tuple((rz @ rx).flatten())


def image(array, spacing, origin, direction=None):
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    return img


def sitk_images():
    """name -> image, one per pixel type ITK's GiplImageIO writes (not int32/uint32: its
    byte swapper has no case for them, "Pixel Type Unknown"; nor 64-bit integers)."""
    ct = ((np.arange(60, dtype=np.int64) * 1237) % 6000 - 3000).astype(np.int16).reshape(3, 4, 5)
    labels = ((np.arange(120) * 7) % 4).astype(np.uint8).reshape(4, 5, 6)
    big_labels = ((np.arange(24) * 97) % 700).astype(np.uint16).reshape(2, 3, 4)
    pet = (np.linspace(-1.5, 7.25, 18, dtype=np.float32) ** 3).reshape(2, 3, 3)
    dose = (np.arange(12, dtype=np.float64) / 7.0 - 0.5).reshape(2, 2, 3)
    signed = (np.arange(24) * 11 % 256 - 128).astype(np.int8).reshape(2, 3, 4)
    flat = (np.arange(20) * 13 % 256).astype(np.uint8).reshape(4, 5)
    return {
        "ct_i16.gipl": image(ct, (0.5, 1.25, 3.0), (10.0, -20.5, 30.25), rotation(0.3, 0.2)),
        "labels_u8.gipl": image(labels, (0.7, 0.7, 2.5), (-12.5, 4.0, 100.0)),
        "labels_u16.gipl": image(big_labels, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)),
        "pet_f32.gipl": image(pet, (2.0, 2.0, 4.5), (-100.0, 50.0, 0.125),
                              (-1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0)),
        "dose_f64.gipl": image(dose, (0.3, 0.4, 1.1), (1.0, 2.0, 3.0)),
        "signed_i8.gipl": image(signed, (1.5, 1.5, 1.5), (0.5, 0.5, 0.5)),
        "slice_2d.gipl": image(flat, (0.25, 0.5), (7.0, -3.0), (0.0, 1.0, -1.0, 0.0)),
    }


def write_sitk():
    written = {}
    for name, img in sitk_images().items():
        sitk.WriteImage(img, f"{OUT}/{name}")
        written[name] = {"size": list(img.GetSize()), "spacing": list(img.GetSpacing()),
                         "origin": list(img.GetOrigin()), "direction": list(img.GetDirection())}
    return written


def put(header, offset, fmt, *values):
    struct.pack_into(fmt, header, offset, *values)


def gipl(dims, image_type, pixdim, origin, data, magic=0xEFFFE9B0):
    """A GIPL file as ITK lays it out (big-endian, 256-byte header)."""
    header = bytearray(HEADER)
    put(header, 0, ">4H", *dims)
    put(header, 8, ">H", image_type)
    put(header, 10, ">4f", *pixdim)
    header[26:26 + 22] = b"Written by hand (test)"
    put(header, 204, ">4d", *origin)
    put(header, 252, ">I", magic)
    return bytes(header) + data


def write_by_hand():
    ramp = bytes(range(24))
    be16 = np.arange(24, dtype=">i2").tobytes()
    files = {
        # The second magic number ITK accepts.
        "magic2.gipl": gipl((4, 3, 2, 1), 15, (0.5, 0.75, 2.0, 1.0), (10, -20, 30.5, 0), be16,
                            magic=0x2AE389B8),
        # Image type 1 ("binary"): ITK reads one byte per voxel as unsigned char.
        "binary.gipl": gipl((4, 3, 2, 1), 1, (1.0, 1.0, 1.0, 1.0), (0, 0, 0, 0),
                            bytes(b % 2 for b in ramp)),
        # A zero third size: ITK counts only non-zero sizes, so this is a 2-D image.
        "zero_z.gipl": gipl((6, 4, 0, 0), 8, (0.5, 2.0, 0.0, 0.0), (1.0, 2.0, 3.0, 4.0), ramp),
        # Four axes (the fourth counts when above 1).
        "four_d.gipl": gipl((3, 2, 2, 2), 8, (1.0, 2.0, 3.0, 4.0), (1, 2, 3, 4), ramp),
        # Bytes after the data are ignored.
        "trailing.gipl": gipl((4, 3, 2, 1), 8, (1.0, 1.0, 1.0, 1.0), (0, 0, 0, 0),
                              ramp + b"trailing bytes"),
        # Negative spacings: ITK's reader makes them positive and flips those axes' directions.
        "negative_spacing.gipl": gipl((4, 3, 2, 1), 15, (-2.0, 0.75, -1.5, 1.0),
                                      (5.0, 6.0, 7.0, 0), be16),
    }
    for name, data in files.items():
        with open(f"{OUT}/{name}", "wb") as f:
            f.write(data)


def write_broken():
    """name -> (bytes, the FormatError variant autoseg refuses it with)."""
    with open(f"{OUT}/ct_i16.gipl", "rb") as f:
        ct = f.read()
    be16 = np.arange(24, dtype=">i2").tobytes()
    broken = {
        "broken_truncated.gipl": (ct[:-7], "DataTooShort"),
        "broken_header_only.gipl": (ct[:HEADER], "DataTooShort"),
        "broken_short_header.gipl": (ct[:200], "NotFormat"),
        "broken_magic.gipl": (ct[:252] + b"\0\0\0\0" + ct[256:], "NotFormat"),
        "broken_little_endian_magic.gipl": (ct[:252] + struct.pack("<I", 0xEFFFE9B0) + ct[256:],
                                            "NotFormat"),
        "broken_absurd_dims.gipl": (gipl((65535, 65535, 65535, 65535), 65, (1, 1, 1, 1),
                                         (0, 0, 0, 0), be16), "TooManyVoxels"),
        "broken_huge_dims.gipl": (gipl((65535, 65535, 65535, 1), 65, (1, 1, 1, 1),
                                       (0, 0, 0, 0), be16), "DataTooShort"),
        "broken_zero_size.gipl": (gipl((0, 3, 2, 1), 15, (1, 1, 1, 1), (0, 0, 0, 0), be16),
                                  "BadField"),
        "broken_no_size.gipl": (gipl((0, 0, 0, 0), 15, (1, 1, 1, 1), (0, 0, 0, 0), be16),
                                "BadField"),
        "broken_zero_spacing.gipl": (gipl((4, 3, 2, 1), 15, (0, 1, 1, 1), (0, 0, 0, 0), be16),
                                     "BadGeometry"),
        "broken_int32.gipl": (gipl((4, 3, 1, 1), 32, (1, 1, 1, 1), (0, 0, 0, 0), be16 * 2),
                              "Unsupported"),
        "broken_complex.gipl": (gipl((4, 3, 1, 1), 144, (1, 1, 1, 1), (0, 0, 0, 0), be16 * 2),
                                "Unsupported"),
    }
    out = {}
    for name, (data, variant) in broken.items():
        with open(f"{OUT}/{name}", "wb") as f:
            f.write(data)
        try:
            sitk.ReadImage(name)  # by name (the cwd is OUT), so that messages hold no folder
            error = None
        except RuntimeError as e:
            error = str(e).strip().splitlines()[-1].strip()
        out[name] = {"sitk": error, "refused_as": variant}
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    os.chdir(OUT)
    written = write_sitk()
    write_by_hand()
    broken = write_broken()
    names = sorted(n for n in os.listdir(OUT) if n.endswith(".gipl") and n not in broken)
    images = {n: describe(f"{OUT}/{n}") for n in names}
    for name, geometry in written.items():
        images[name]["written"] = geometry
    with open(f"{OUT}/expected.json", "w") as f:
        json.dump({"images": images, "broken": broken}, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(f"{OUT}/{n}") for n in os.listdir(OUT))
    print(f"{len(names)} images, {len(broken)} broken files, {total} bytes in "
          f"{os.path.normpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
