#!/usr/bin/env python3
"""Writes the DICOM series fixtures of `preprocessing/src/formats/dicom` and their known answers.

Every good series under `fixtures/data/dicom/<name>/` is read back with SimpleITK as users read
a folder (`ImageSeriesReader` with `GetGDCMSeriesFileNames`), and `expected.json` records its
size, spacing, origin, direction, numpy dtype and every voxel. Broken series go to
`fixtures/data/dicom/broken/<name>/` (no known answer: the Rust reader must refuse them).

Encoded series (`encoded.json`, written by `dicom_encoded.py` beside this script): some good
series re-encoded in compressed transfer syntaxes and as Legacy Converted Enhanced multi-frame
files, each with the series it came from, what SimpleITK reads, and for lossy ones pydicom's
decode; broken compressed and multi-frame files go to `broken/` with the others.

Usage: python scripts/make_dicom_fixtures.py   (needs pydicom, SimpleITK, numpy; tested with
pydicom 3.0.2, SimpleITK 2.5.7; the encoded series also need highdicom 0.28, Pillow with
OpenJPEG, python-gdcm 3.2, pyjpegls and pylibjpeg with its openjpeg and libjpeg plugins). The
series are tiny (8 x 6 pixels, at most 5 slices) and the UIDs are fixed, so a rerun rewrites
the same bytes.
"""

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
)

ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "data" / "dicom"
COLS, ROWS = 8, 6
UID_ROOT = "1.2.826.0.1.3680043.8.498.4242."

DTYPES = {
    (8, 0): np.uint8,
    (8, 1): np.int8,
    (16, 0): np.uint16,
    (16, 1): np.int16,
    (32, 0): np.uint32,
    (32, 1): np.int32,
}


def uid(*parts):
    return UID_ROOT + ".".join(str(p) for p in parts)


def slice_ds(series, k, pos, **kw):
    """One slice of a series; `series` is a dict of series-wide settings."""
    ba = series.get("bits_allocated", 16)
    bs = series.get("bits_stored", ba)
    pr = series.get("pixel_representation", 1)
    sop_class = MRImageStorage if series.get("modality", "CT") == "MR" else CTImageStorage
    sop_uid = uid(series["id"], 3, k)
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = series.get("ts", ExplicitVRLittleEndian)
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.PatientID = "AUTOSEG-0001"
    ds.PatientName = "Doe^Jane"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = uid(series["id"], 1)
    ds.StudyID = "S42"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101112"
    ds.AccessionNumber = "ACC42"
    ds.ReferringPhysicianName = "Who^Doctor"
    ds.SeriesInstanceUID = kw.get("series_uid", uid(series["id"], 2))
    ds.FrameOfReferenceUID = uid(series["id"], 4)
    ds.Modality = series.get("modality", "CT")
    ds.InstanceNumber = k + 1
    rows = kw.get("rows", ROWS)
    ds.Rows = rows
    ds.Columns = COLS
    rgb = "planar" in series
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = "RGB" if rgb else "MONOCHROME2"
    if rgb:
        ds.PlanarConfiguration = series["planar"]
    ds.BitsAllocated = ba
    ds.BitsStored = bs
    ds.HighBit = bs - 1
    ds.PixelRepresentation = pr
    ds.PixelSpacing = series.get("pixel_spacing", [0.75, 0.5])
    ds.ImageOrientationPatient = kw.get("iop", series.get("iop", [1, 0, 0, 0, 1, 0]))
    ds.ImagePositionPatient = [round(float(p), 6) for p in pos]
    if "slice_thickness" in series:
        ds.SliceThickness = series["slice_thickness"]
    if "spacing_between" in series:
        ds.SpacingBetweenSlices = series["spacing_between"]
    if "slope" in series:
        ds.RescaleSlope = series["slope"]
        ds.RescaleIntercept = series["intercept"]
    rng = np.random.default_rng(1000 * series["id"] + k)
    lo, hi = series.get("range", (0, 1 << min(bs, 12)))
    shape = (rows, COLS)
    if rgb:
        shape = (3, rows, COLS) if series["planar"] else (rows, COLS, 3)
    values = rng.integers(lo, hi, size=shape).astype(DTYPES[(ba, pr)])
    ds.PixelData = values.tobytes()
    return ds


def positions(series, n):
    origin = np.array(series.get("origin", [-20.0, 10.5, 30.25]))
    iop = np.array(series.get("iop", [1, 0, 0, 0, 1, 0]), dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    steps = series.get("steps", [series.get("dz", 2.5) * k for k in range(n)])
    shift = np.array(series.get("shift", [0.0, 0.0, 0.0]))
    return [origin + s * normal + k * shift for k, s in enumerate(steps)]


def write_series(folder, series, n=5, names=None, per_slice=None):
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pos = positions(series, n)
    for k in range(n):
        kw = per_slice(k) if per_slice else {}
        ds = slice_ds(series, k, pos[k], **kw)
        name = names[k] if names else f"IM{k:04d}"
        ds.save_as(folder / name, enforce_file_format=True)


GOOD = {
    # CT, signed 16-bit, slope 1 intercept -1024: SimpleITK gives int32 (the full int16 range
    # shifted by -1024 does not fit int16).
    "ct_int16": dict(id=1, slope=1, intercept=-1024, range=(-1000, 3000)),
    # CT, unsigned 12 of 16 bits, intercept -1024: the 12-bit range shifted fits int16.
    "ct_uint12": dict(id=2, bits_stored=12, pixel_representation=0, slope=1, intercept=-1024),
    # MR, unsigned 16-bit, no rescale, implicit VR, files named in shuffled order.
    "mr_uint16_implicit": dict(
        id=3, modality="MR", pixel_representation=0, ts=ImplicitVRLittleEndian, range=(0, 60000)
    ),
    # A float slope: SimpleITK gives float64.
    "float_slope": dict(id=4, pixel_representation=0, slope=0.5, intercept=-7.25),
    # Oblique (a 3-4-5 rotation, exact in decimal), positions descending with the file names.
    "oblique": dict(
        id=5, iop=[0.6, 0.8, 0.0, -0.64, 0.48, 0.6], steps=[10.0, 7.0, 4.0, 1.0, -2.0]
    ),
    # Deflated explicit VR little endian.
    "deflated": dict(id=6, ts=DeflatedExplicitVRLittleEndian, slope=1, intercept=0),
    # One slice with SliceThickness and SpacingBetweenSlices: z spacing is SpacingBetweenSlices.
    "single_slice": dict(id=7, slice_thickness=2.5, spacing_between=3.5),
    # One slice with only SliceThickness: z spacing 1 (SliceThickness is not used).
    "single_slice_thickness": dict(id=8, slice_thickness=2.5),
    # 8-bit unsigned with an integer slope 2: uint16.
    "uint8_slope2": dict(id=9, bits_allocated=8, pixel_representation=0, slope=2, intercept=0),
    # 12 of 16 bits signed, with stray bits above bit 11 in the data: masked and sign-extended.
    "int12_high_bits": dict(id=10, bits_stored=12, range=(-32768, 32767)),
    # Descending positions along a coronal normal (rows along x, columns along -z).
    "coronal": dict(id=11, iop=[1, 0, 0, 0, 0, -1], steps=[0.0, -1.25, -2.5, -3.75, -5.0]),
    # Explicit VR big endian (retired), unsigned 16-bit with intercept -1024: int32. The pixel
    # bytes are written as given, so both readers see them byte-swapped alike.
    "big_endian": dict(
        id=12, ts=ExplicitVRBigEndian, pixel_representation=0, slope=1, intercept=-1024
    ),
    # 8-bit RGB, colour by pixel and colour by plane: 3-component uint8 images.
    "rgb": dict(id=13, bits_allocated=8, pixel_representation=0, planar=0),
    "rgb_planar": dict(id=14, bits_allocated=8, pixel_representation=0, planar=1),
}

SHUFFLED = {
    "mr_uint16_implicit": ["b", "zz.dcm", "a7", "00", "m"],
    "oblique": ["s1", "s2", "s3", "s4", "s5"],
    "ct_int16": ["5.dcm", "3.dcm", "1.dcm", "4.dcm", "2.dcm"],
}


def write_good():
    for name, series in GOOD.items():
        n = 1 if name.startswith("single") else 5
        write_series(ROOT / name, series, n=n, names=SHUFFLED.get(name))
    # int12_high_bits: values drawn from the whole int16 range, so bits 12-15 hold garbage.
    # A DICOMDIR beside a series is skipped.
    ds = pydicom.dcmread(ROOT / "coronal" / "IM0000")
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = uid(11, 9)
    dirds = Dataset()
    dirds.file_meta = meta
    dirds.FileSetID = "AUTOSEG"
    dirds.save_as(ROOT / "coronal" / "DICOMDIR", enforce_file_format=True)
    del ds


def write_broken():
    broken = ROOT / "broken"
    shutil.rmtree(broken, ignore_errors=True)
    base = dict(id=20)
    write_series(
        broken / "two_series",
        base,
        n=4,
        per_slice=lambda k: {"series_uid": uid(20, 2 + (k % 2) * 100)},
    )
    write_series(broken / "missing_slice", dict(id=21, steps=[0.0, 2.0, 4.0, 8.0, 10.0]))
    write_series(broken / "gantry_tilt", dict(id=22, shift=[0.0, 0.8, 0.0]))
    write_series(
        broken / "orientation_differs",
        dict(id=23),
        per_slice=lambda k: {"iop": [0.6, 0.8, 0, -0.8, 0.6, 0]} if k == 2 else {},
    )
    write_series(broken / "uneven_spacing", dict(id=24, steps=[0.0, 2.0, 4.0, 6.5, 8.0]))
    write_series(
        broken / "rows_differ", dict(id=25), per_slice=lambda k: {"rows": 4} if k == 3 else {}
    )
    write_series(broken / "truncated", dict(id=26))
    path = broken / "truncated" / "IM0002"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    write_series(broken / "not_dicom", dict(id=27), n=3)
    (broken / "not_dicom" / "README").write_text("these are CT slices\n")


def read_sitk(folder):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    array = sitk.GetArrayFromImage(image)
    return {
        "size": list(image.GetSize()),
        "spacing": list(image.GetSpacing()),
        "origin": list(image.GetOrigin()),
        "direction": list(image.GetDirection()),
        "dtype": array.dtype.name,
        "components": image.GetNumberOfComponentsPerPixel(),
        # z, y, x order flattened = x fastest, as RawImage stores them.
        "values": [float(v) if array.dtype.kind == "f" else int(v) for v in array.ravel()],
    }


def main():
    random.seed(0)
    write_good()
    write_broken()
    expected = {name: read_sitk(ROOT / name) for name in sorted(GOOD)}
    expected["_versions"] = {"SimpleITK": sitk.Version_VersionString(), "pydicom": pydicom.__version__}
    with open(ROOT / "expected.json", "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    import dicom_encoded

    dicom_encoded.main(ROOT, read_sitk)
    total = sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file())
    print(f"wrote {len(GOOD)} good series, broken ones and expected.json: {total} bytes")


if __name__ == "__main__":
    os.environ.setdefault("SITK_SHOW_COMMAND", "")
    main()
