#!/usr/bin/env python3
"""Golden NRRD and MetaImage files for autoseg's native codecs (preprocessing/src/formats/).

Writes small images with SimpleITK into fixtures/data/formats/ in every layout the readers
support, plus a few headers written by hand (RAS space, spacings only, big-endian, ascii, a
component axis last, line/byte skips, MetaImage aliases, HeaderSize = -1), then reads every file
back with SimpleITK and records what it reports in expected.json:

    {"<file>": {"size": [...], "spacing": [...], "origin": [...], "direction": [...],
                "components": n, "pixel": "<numpy dtype>", "values": [... x fastest ...]}}

The Rust tests (preprocessing/src/formats/tests/) read each file and compare.

Run (once; the outputs are committed):
    python3 -m venv /tmp/sitk && /tmp/sitk/bin/pip install SimpleITK numpy
    /tmp/sitk/bin/python scripts/make_format_fixtures.py
Made with SimpleITK 2.5.7 (ITK 5.4), numpy 2.
"""

import gzip
import json
import math
import os
import sys

import numpy as np
import SimpleITK as sitk

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "data", "formats")


def rotation(a, b, c):
    """A proper rotation (z by a, then x by b, then y by c), row-major 3x3."""
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    ry = np.array([[math.cos(c), 0, math.sin(c)], [0, 1, 0], [-math.sin(c), 0, math.cos(c)]])
    return tuple((rz @ rx @ ry).flatten())


def ct_image():
    """5x4x3 int16, values spanning both signs and both bytes, rotated, anisotropic."""
    a = ((np.arange(60, dtype=np.int64) * 1237) % 6000 - 3000).astype(np.int16).reshape(3, 4, 5)
    img = sitk.GetImageFromArray(a)
    img.SetSpacing((0.5, 1.25, 3.0))
    img.SetOrigin((10.0, -20.5, 30.25))
    img.SetDirection(rotation(0.3, 0.2, -0.1))
    return img


def pet_image():
    """3x3x2 float32 with a flipped (left-handed) direction."""
    a = (np.linspace(-1.5, 7.25, 18, dtype=np.float32) ** 3).reshape(2, 3, 3)
    img = sitk.GetImageFromArray(a)
    img.SetSpacing((2.0, 2.0, 4.5))
    img.SetOrigin((-100.0, 50.0, 0.125))
    img.SetDirection((-1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0))
    return img


def vector_image():
    """4x3x2 uint8 with two components per voxel."""
    a = (np.arange(48, dtype=np.uint8) * 5).reshape(2, 3, 4, 2)
    img = sitk.GetImageFromArray(a, isVector=True)
    img.SetSpacing((1.0, 0.75, 2.0))
    img.SetOrigin((1.0, 2.0, 3.0))
    return img


def flat_image():
    """6x4 uint16 (2-D) with swapped axes."""
    a = (np.arange(24, dtype=np.uint16) * 2711).reshape(4, 6)
    img = sitk.GetImageFromArray(a)
    img.SetSpacing((0.7, 1.3))
    img.SetOrigin((1.5, -2.0))
    img.SetDirection((0.0, 1.0, 1.0, 0.0))
    return img


def write_sitk():
    ct, pet, vec, flat = ct_image(), pet_image(), vector_image(), flat_image()
    sitk.WriteImage(ct, f"{OUT}/ct_gzip.nrrd", useCompression=True)
    sitk.WriteImage(ct, f"{OUT}/ct_raw.nrrd", useCompression=False)
    sitk.WriteImage(ct, f"{OUT}/ct_detached.nhdr", useCompression=False)
    sitk.WriteImage(ct, f"{OUT}/ct.mha", useCompression=False)
    sitk.WriteImage(ct, f"{OUT}/ct_z.mha", useCompression=True)
    sitk.WriteImage(ct, f"{OUT}/ct_mhd.mhd", useCompression=False)
    sitk.WriteImage(pet, f"{OUT}/pet.nrrd", useCompression=True)
    sitk.WriteImage(pet, f"{OUT}/pet_z.mhd", useCompression=True)
    sitk.WriteImage(pet, f"{OUT}/pet_z.mha", useCompression=True)
    sitk.WriteImage(vec, f"{OUT}/vec.nrrd", useCompression=False)
    sitk.WriteImage(vec, f"{OUT}/vec.mha", useCompression=False)
    sitk.WriteImage(flat, f"{OUT}/flat.nrrd", useCompression=True)
    sitk.WriteImage(flat, f"{OUT}/flat.mha", useCompression=False)


def hand(name, header, data=b""):
    with open(f"{OUT}/{name}", "wb") as f:
        f.write(header.encode() + data)


def write_by_hand():
    u8 = bytes(range(24))
    i16_be = b"".join(int(v).to_bytes(2, "big", signed=True) for v in [-300, 2, 1000, -4, 5, 32767])
    # RAS and LAS: ITK flips x and y (RAS) or x (LAS) of origin and directions to reach LPS.
    ras = ("NRRD0004\n# RAS space, written by hand\ntype: uchar\ndimension: 3\nspace: RAS\n"
           "sizes: 2 3 4\nspace directions: (0,2,0) (-1,0,0) (0,0.5,3)\nkinds: domain domain domain\n"
           "encoding: raw\nspace origin: (1,2,3)\nmy key:=a value: with a colon\n\n")
    hand("ras.nrrd", ras, u8)
    hand("las.nrrd", ras.replace("space: RAS", "space: left-anterior-superior"), u8)
    hand("scanner.nrrd", ras.replace("space: RAS", "space: scanner-xyz"), u8)
    # No space: spacings only (nan = ITK's default 1), axis mins give a cell-centred origin.
    hand("spacings.nrrd", "NRRD0004\ntype: unsigned char\ndimension: 3\nsizes: 2 3 4\n"
         "spacings: 0.5 nan 3\nencoding: raw\n\n", u8)
    hand("mins.nrrd", "NRRD0005\ntype: uint8\ndimension: 3\nsizes: 2 3 4\nspacings: 0.5 2 3\n"
         "axis mins: 1 2 3\ncenters: cell node cell\nencoding: raw\n\n", u8)
    hand("bigendian.nrrd", "NRRD0004\ntype: signed short\ndimension: 2\nsizes: 3 2\nendian: big\n"
         "encoding: raw\n\n", i16_be)
    hand("ascii.nrrd", "NRRD0004\ntype: float\ndimension: 2\nspace dimension: 2\nsizes: 3 2\n"
         "space directions: (0,1.5) (2,0)\nspace origin: (-1,4)\nencoding: ascii\n\n",
         b"1.5, 2\n-300 0.25 1e3\n7\n")
    # The component axis last: ITK moves it to the front.
    hand("vec_last.nrrd", "NRRD0004\ntype: uchar\ndimension: 3\nspace dimension: 2\nsizes: 3 4 2\n"
         "kinds: domain domain vector\nspace directions: (1,0) (0,2) none\nencoding: raw\n"
         "space origin: (1,2)\n\n", u8)
    # Line skip and byte skip in a detached data file, gzip with a skip inside the stream.
    with open(f"{OUT}/skips.dat", "wb") as f:
        f.write(b"a text line\nanother\nXY" + u8 + b"trailing")
    hand("skips.nhdr", "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 2 3 4\nline skip: 2\n"
         "byte skip: 2\nencoding: raw\ndata file: skips.dat\n")
    hand("gzskip.nrrd", "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 2 3 4\nbyte skip: 5\n"
         "encoding: gz\n\n", gzip.compress(b"12345" + u8, mtime=0))
    hand("fromend.nrrd", "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 2 3 4\nbyte skip: -1\n"
         "encoding: raw\n\n", b"junk before" + u8)
    # MetaImage: big-endian, text data, aliases, data at the end of a detached file.
    hand("msb.mha", "ObjectType = Image\nNDims = 2\nDimSize = 3 2\nElementByteOrderMSB = True\n"
         "ElementType = MET_SHORT\nElementDataFile = LOCAL\n", i16_be)
    hand("ascii.mha", "ObjectType = Image\nNDims = 2\nDimSize = 3 2\nBinaryData = False\n"
         "ElementSpacing = 2 3\nElementType = MET_INT\nElementDataFile = LOCAL\n",
         b"-7 8 9\n100000 -200000 3\n")
    hand("aliases.mha", "NDims = 3\nDimSize = 2 3 4\nPosition = 9 9 9\nOrigin = 5 6 7\n"
         "Orientation = 1 0 0 0 1 0 0 0 1\nRotation = 0 1 0 -1 0 0 0 0 1\nElementSize = 2 3 4\n"
         "AnatomicalOrientation = RAI\nUserField = kept\nElementType = MET_UCHAR\n"
         "ElementDataFile = local\n", u8)
    with open(f"{OUT}/end.raw", "wb") as f:
        f.write(b"some preamble" + u8)
    hand("end.mhd", "ObjectType = Image\nNDims = 3\nDimSize = 2 3 4\nHeaderSize = -1\n"
         "ElementType = MET_UCHAR\nElementDataFile = end.raw\n")


PIXEL = {sitk.sitkInt16: "int16", sitk.sitkFloat32: "float32", sitk.sitkUInt8: "uint8",
         sitk.sitkUInt16: "uint16", sitk.sitkInt32: "int32"}


def describe(path):
    img = sitk.ReadImage(path)
    values = sitk.GetArrayFromImage(img).ravel()
    return {
        "size": list(img.GetSize()),
        "spacing": list(img.GetSpacing()),
        "origin": list(img.GetOrigin()),
        "direction": list(img.GetDirection()),
        "components": img.GetNumberOfComponentsPerPixel(),
        "pixel": str(values.dtype),
        "values": [float(v) for v in values],
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    write_sitk()
    write_by_hand()
    names = sorted(n for n in os.listdir(OUT) if n.endswith((".nrrd", ".nhdr", ".mha", ".mhd")))
    expected = {n: describe(f"{OUT}/{n}") for n in names}
    with open(f"{OUT}/expected.json", "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(f"{OUT}/{n}") for n in os.listdir(OUT))
    print(f"{len(names)} images, {total} bytes in {os.path.normpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
