"""Encoded DICOM fixtures: good series of `make_dicom_fixtures.py` re-encoded in compressed
transfer syntaxes and as Legacy Converted Enhanced multi-frame files, and broken compressed and
multi-frame files. Called by `make_dicom_fixtures.py` (its `main` writes the good series first).

`encoded.json` lists, per encoded series: the series it came from (`source`), its transfer
syntax, whether it is lossless (then the Rust reader must give the source's voxels and geometry
exactly), what SimpleITK 2.5.7 reads (geometry, dtype, and whether its voxels equal the
source's as read by SimpleITK, in order or with z reversed), and for lossy ones pydicom's
decode (rescaled, slices in ascending order along the normal) with the tolerance the Rust
decode must keep to it.

Encoders: pydicom 3 (RLE Lossless, JPEG-LS), python-gdcm (JPEG Lossless process 14), Pillow's
OpenJPEG (JPEG 2000: pylibjpeg-openjpeg refuses images under 32 pixels, as it always uses six
resolutions), Pillow's libjpeg (JPEG baseline), highdicom (Legacy Converted Enhanced CT/MR).
"""

import io
import re
import json
import shutil
from pathlib import Path

import gdcm
import numpy as np
import pydicom
import SimpleITK as sitk
from highdicom.legacy import LegacyConvertedEnhancedCTImage, LegacyConvertedEnhancedMRImage
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import (
    JPEG2000,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

UID_ROOT = "1.2.826.0.1.3680043.8.498.4242."

# Tolerances (in rescaled units) of the Rust decode against pydicom's for the lossy series:
# JPEG 2000 irreversible decoders round the inverse 9/7 wavelet differently (OpenJPEG in
# pydicom, hayro-jpeg2000 in autoseg: at most 2 apart here); JPEG baseline IDCTs differ
# likewise (libjpeg-turbo in pydicom, jpeg-decoder in autoseg: at most 1 stored unit apart
# here, which the slope of 2 doubles).
TOLERANCE = {"j2k_lossy_mr_uint16": 2, "jpeg_baseline_uint8": 2}


def files(folder):
    """(name, dataset) of every image file of a series folder, by name."""
    return [
        (p.name, pydicom.dcmread(p))
        for p in sorted(folder.iterdir())
        if p.name != "DICOMDIR"
    ]


def fresh(folder):
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def save(ds, path):
    ds.save_as(path, enforce_file_format=True)


def set_encapsulated(ds, frames, ts, lossy=False):
    """Replaces the pixel data by one fragment per frame (with a basic offset table)."""
    ds.file_meta.TransferSyntaxUID = ts
    ds.PixelData = encapsulate(frames, has_bot=True)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    if lossy:
        ds.LossyImageCompression = "01"


def frame_arrays(ds):
    """The stored frames of a native data set, shaped (frames, rows, cols)."""
    arr = ds.pixel_array
    return arr.reshape((-1, ds.Rows, ds.Columns))


def j2k(arr, signed, lossy):
    """A JPEG 2000 codestream of one 16-bit frame (Pillow; two resolutions fit 8 x 6)."""
    if signed:
        # Pillow writes unsigned components: v + 2^15 encoded unsigned is the signed v once the
        # SIZ marker's Ssiz sign bit is set (no DC level shift then).
        arr = (arr.astype(np.int32) + 32768).astype(np.uint16)
    buf = io.BytesIO()
    opts = dict(no_jp2=True, num_resolutions=2)
    if lossy:
        opts.update(irreversible=True, quality_mode="rates", quality_layers=[3])
    else:
        opts.update(irreversible=False)
    Image.fromarray(arr.astype(np.uint16)).save(buf, format="JPEG2000", **opts)
    cs = bytearray(buf.getvalue())
    if signed:
        # SOC, SIZ, Lsiz, Rsiz, 8 four-byte sizes, Csiz: the first Ssiz is byte 42.
        cs[42] |= 0x80
    return bytes(cs)


def jpeg_baseline(arr):
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def gdcm_change(src, dst, ts_name):
    reader = gdcm.ImageReader()
    reader.SetFileName(str(src))
    if not reader.Read():
        raise RuntimeError(f"gdcm cannot read {src}")
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, ts_name)))
    change.SetInput(reader.GetImage())
    if not change.Change():
        raise RuntimeError(f"gdcm cannot encode {src} as {ts_name}")
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(dst))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if not writer.Write():
        raise RuntimeError(f"gdcm cannot write {dst}")


def per_file(root, name, source, encode):
    """Each file of `source` through `encode(ds) -> ds`, saved under the same name."""
    out = root / name
    fresh(out)
    for fname, ds in files(root / source):
        save(encode(ds), out / fname)


def compress(ts):
    def encode(ds):
        ds.compress(ts, generate_instance_uid=False)
        return ds

    return encode


def j2k_encode(lossy):
    def encode(ds):
        frames = [j2k(f, ds.PixelRepresentation == 1, lossy) for f in frame_arrays(ds)]
        set_encapsulated(ds, frames, JPEG2000 if lossy else JPEG2000Lossless, lossy)
        return ds

    return encode


def baseline_encode(ds):
    frames = [jpeg_baseline(f) for f in frame_arrays(ds)]
    set_encapsulated(ds, frames, JPEGBaseline8Bit, lossy=True)
    return ds


def legacy(root, source, sop_index, modality="CT"):
    """A Legacy Converted Enhanced CT/MR image of a source series (native, explicit VR LE)."""
    datasets = [ds for _, ds in files(root / source)]
    cls = LegacyConvertedEnhancedMRImage if modality == "MR" else LegacyConvertedEnhancedCTImage
    mf = cls(
        datasets,
        series_instance_uid=UID_ROOT + f"{sop_index}.2",
        series_number=1,
        sop_instance_uid=UID_ROOT + f"{sop_index}.3.0",
        instance_number=1,
    )
    # highdicom stamps the conversion time: fixed, so that a rerun writes the same bytes.
    for tag in ("ContentDate", "ContentTime", "InstanceCreationDate", "InstanceCreationTime"):
        if tag in mf:
            setattr(mf, tag, "20240102" if tag.endswith("Date") else "101112")
    # And a random DimensionOrganizationUID, a contribution time and references in set order.
    for item in mf.get("ContributingEquipmentSequence", []):
        item.ContributionDateTime = "20240102101112"
    for seq in ("DimensionOrganizationSequence", "DimensionIndexSequence"):
        for item in mf.get(seq, []):
            item.DimensionOrganizationUID = UID_ROOT + f"{sop_index}.5"
    for series in mf.get("ReferencedSeriesSequence", []):
        refs = sorted(series.ReferencedInstanceSequence, key=lambda r: r.ReferencedSOPInstanceUID)
        series.ReferencedInstanceSequence = refs
    return mf


def write_good(root):
    """The encoded good series: name -> (source, transfer syntax)."""
    made = {}
    per_file(root, "rle_ct_int16", "ct_int16", compress(RLELossless))
    per_file(root, "rle_rgb", "rgb", compress(RLELossless))
    for name, source, ts in [
        ("jpeg_lossless_sv1_ct_int16", "ct_int16", "JPEGLosslessProcess14_1"),
        ("jpeg_lossless_ct_uint12", "ct_uint12", "JPEGLosslessProcess14"),
    ]:
        fresh(root / name)
        for p in sorted((root / source).iterdir()):
            gdcm_change(p, root / name / p.name, ts)
    per_file(root, "j2k_lossless_ct_int16", "ct_int16", j2k_encode(False))
    per_file(root, "j2k_lossless_mr_uint16", "mr_uint16_implicit", j2k_encode(False))
    per_file(root, "j2k_lossy_mr_uint16", "mr_uint16_implicit", j2k_encode(True))
    per_file(root, "jpeg_baseline_uint8", "uint8_slope2", baseline_encode)
    for name, source, index, modality in [
        ("legacy_ct_int16", "ct_int16", 41, "CT"),
        ("legacy_ct_oblique", "oblique", 42, "CT"),
        ("legacy_mr_uint16", "mr_uint16_implicit", 43, "MR"),
    ]:
        fresh(root / name)
        save(legacy(root, source, index, modality), root / name / "MF0000")
    fresh(root / "legacy_ct_int16_rle")
    mf = legacy(root, "ct_int16", 44)
    mf.compress(RLELossless, generate_instance_uid=False)
    save(mf, root / "legacy_ct_int16_rle" / "MF0000")
    fresh(root / "legacy_ct_oblique_j2k")
    save(j2k_encode(False)(legacy(root, "oblique", 45)), root / "legacy_ct_oblique_j2k" / "MF0000")
    return {
        "rle_ct_int16": ("ct_int16", RLELossless),
        "rle_rgb": ("rgb", RLELossless),
        "jpeg_lossless_sv1_ct_int16": ("ct_int16", "1.2.840.10008.1.2.4.70"),
        "jpeg_lossless_ct_uint12": ("ct_uint12", "1.2.840.10008.1.2.4.57"),
        "j2k_lossless_ct_int16": ("ct_int16", JPEG2000Lossless),
        "j2k_lossless_mr_uint16": ("mr_uint16_implicit", JPEG2000Lossless),
        "j2k_lossy_mr_uint16": ("mr_uint16_implicit", JPEG2000),
        "jpeg_baseline_uint8": ("uint8_slope2", JPEGBaseline8Bit),
        "legacy_ct_int16": ("ct_int16", ExplicitVRLittleEndian),
        "legacy_ct_oblique": ("oblique", ExplicitVRLittleEndian),
        "legacy_mr_uint16": ("mr_uint16_implicit", ExplicitVRLittleEndian),
        "legacy_ct_int16_rle": ("ct_int16", RLELossless),
        "legacy_ct_oblique_j2k": ("oblique", JPEG2000Lossless),
    }


def write_broken(root):
    broken = root / "broken"
    # JPEG-LS: no pure-Rust decoder; refused by name.
    per_file(broken, "jpeg_ls", "../ct_int16", compress(JPEGLSLossless))
    # RLE whose first segment is cut: the header's offsets pass the fragment's end.
    per_file(broken, "rle_truncated_fragment", "../ct_int16", compress(RLELossless))
    path = broken / "rle_truncated_fragment" / "3.dcm"
    ds = pydicom.dcmread(path)
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    set_encapsulated(ds, [frame[: len(frame) // 2]], RLELossless)
    save(ds, path)
    # NumberOfFrames 6 (with six per-frame items) over five frames of native data.
    fresh(broken / "frames_beyond_data")
    mf = legacy(root, "ct_int16", 46)
    mf.NumberOfFrames = 6
    extra = pydicom.dataset.Dataset()
    extra.update(mf.PerFrameFunctionalGroupsSequence[-1])
    mf.PerFrameFunctionalGroupsSequence.append(extra)
    mf.PerFrameFunctionalGroupsSequence[-1].PlanePositionSequence[0].ImagePositionPatient = [
        -20.0,
        10.5,
        42.75,
    ]
    save(mf, broken / "frames_beyond_data" / "MF0000")
    # The same over five RLE fragments.
    fresh(broken / "frames_beyond_fragments")
    mf = legacy(root, "ct_int16", 47)
    mf.compress(RLELossless, generate_instance_uid=False)
    mf.NumberOfFrames = 6
    mf.PerFrameFunctionalGroupsSequence.append(extra)
    save(mf, broken / "frames_beyond_fragments" / "MF0000")
    # One frame's PlaneOrientationSequence differs from the others'.
    fresh(broken / "frame_orientation_differs")
    mf = legacy(root, "ct_int16", 48)
    shared = mf.SharedFunctionalGroupsSequence[0]
    orientation = shared.PlaneOrientationSequence
    del shared.PlaneOrientationSequence
    for k, item in enumerate(mf.PerFrameFunctionalGroupsSequence):
        o = pydicom.dataset.Dataset()
        o.ImageOrientationPatient = (
            [0.6, 0.8, 0, -0.8, 0.6, 0] if k == 2 else orientation[0].ImageOrientationPatient
        )
        item.PlaneOrientationSequence = [o]
    save(mf, broken / "frame_orientation_differs" / "MF0000")
    # A multi-frame file beside a single-frame file of the same series.
    fresh(broken / "multiframe_mixed")
    mf = legacy(root, "ct_int16", 49)
    save(mf, broken / "multiframe_mixed" / "MF0000")
    ds = pydicom.dcmread(root / "ct_int16" / "1.dcm")
    ds.SeriesInstanceUID = mf.SeriesInstanceUID
    save(ds, broken / "multiframe_mixed" / "IM0000")


def frames_of(ds):
    """(orientation, position, slope, intercept, stored frame) of each frame of a data set."""
    arr = ds.pixel_array
    if "PerFrameFunctionalGroupsSequence" not in ds:
        return [(ds.ImageOrientationPatient, ds.ImagePositionPatient,
                 ds.get("RescaleSlope", 1), ds.get("RescaleIntercept", 0), arr)]
    shared = ds.SharedFunctionalGroupsSequence[0]
    out = []
    for k, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        def group(name):
            return (item.get(name) or shared.get(name))[0]
        rescale = group("PixelValueTransformationSequence")
        out.append((group("PlaneOrientationSequence").ImageOrientationPatient,
                    group("PlanePositionSequence").ImagePositionPatient,
                    rescale.RescaleSlope, rescale.RescaleIntercept, arr[k]))
    return out


def sorted_slices(folder):
    """pydicom's rescaled frames of a series, in ascending order along the normal."""
    out = []
    for _, ds in files(folder):
        for iop, ipp, slope, intercept, arr in frames_of(ds):
            iop = np.array(iop, dtype=float)
            normal = np.cross(iop[:3], iop[3:])
            values = arr.astype(float) * float(slope) + float(intercept)
            out.append((float(np.dot(normal, np.array(ipp, dtype=float))), values))
    out.sort(key=lambda t: t[0])
    return np.stack([a for _, a in out])


def record(root, read_sitk, made):
    expected = {}
    for name, (source, ts) in made.items():
        want = read_sitk(root / source)
        entry = {"source": source, "transfer_syntax": str(ts)}
        entry["lossless"] = name not in TOLERANCE
        try:
            got = read_sitk(root / name)
            values = got.pop("values")
            n = int(np.prod(want["size"])) * want["components"]
            same = values[:n] == want["values"] and len(values) == n
            planes = np.array(values).reshape(want["size"][2], -1)[::-1].ravel().tolist()
            got["values_equal_source"] = same
            got["values_equal_source_z_reversed"] = len(values) == n and planes == want["values"]
            entry["simpleitk"] = got
        except RuntimeError as e:
            message = str(e).strip().splitlines()[-1]
            entry["simpleitk"] = {"error": re.sub(r"\(0x[0-9a-f]+\)", "", message)}
        if name not in TOLERANCE:
            decoded = sorted_slices(root / name)
            if not np.array_equal(decoded, sorted_slices(root / source)):
                raise RuntimeError(f"{name}: pydicom's decode differs from {source}")
        if name in TOLERANCE:
            entry["tolerance"] = TOLERANCE[name]
            entry["pydicom"] = sorted_slices(root / name).ravel().tolist()
        expected[name] = entry
    expected["_versions"] = {
        "SimpleITK": sitk.Version_VersionString(),
        "pydicom": pydicom.__version__,
        "gdcm": gdcm.Version.GetVersion(),
    }
    with open(root / "encoded.json", "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


def main(root, read_sitk):
    made = write_good(root)
    write_broken(root)
    record(root, read_sitk, made)
