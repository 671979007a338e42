#!/usr/bin/env python3
"""Checks the DICOM SEG files autoseg's `write_dicom_seg` wrote against highdicom and pydicom.

Usage:
    AUTOSEG_SEG_OUT=/tmp/segs cargo test -p autoseg-preprocessing --lib formats::dicom::seg
    python scripts/check_dicom_seg.py /tmp/segs

Every `<name>.dcm` in the folder has a `<name>.json` beside it (dims [x, y, z], the label values
x fastest, the segments [[label, name], ...], the source fixture under fixtures/data/dicom/, or
for a synthetic series its UIDs, positions, orientation and spacing: its checks run on stand-in
datasets, without the comparison with highdicom's writer, which needs the source images).
For each, the SEG is read with highdicom (`hd.seg.segread`); the label volume is rebuilt with
`get_pixels_by_source_instance` (the source slices in the reader's z order: ascending along
the slice normal; combine_segments=True, segment numbers mapped back to label values) and
compared voxel for voxel with the written label map; the frame of reference, study, patient
and referenced series/instances are compared with the source series; `pydicom.dcmread` +
`pixel_array` must decode the frames, which are also compared with the label map one by one
through each frame's segment and source instance; highdicom's own writer, given the same
label map and source, must give the same frames in the same order and the same PixelData
bytes (the attributes only one of the two files holds are listed); `get_volume`'s planes, placed by its
affine, must match the label map's planes at the same positions; `dciodvfy` is
run when it is on the PATH (Debian package `dicom3tools`); an `Error` line from it fails the
check, warnings are printed. Tested with highdicom 0.28.2, pydicom 3.0.2. Exits non-zero on
any mismatch.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "data" / "dicom"


def source_slices(folder):
    """The source series' datasets in z order (ascending along the slice normal)."""
    slices = []
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.name.upper() == "DICOMDIR":
            continue
        ds = pydicom.dcmread(f)
        if "PixelData" not in ds:
            continue
        slices.append(ds)
    iop = np.array(slices[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:]))
    slices.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, dtype=float), normal)))
    return slices


def stand_in_slices(series):
    """Datasets holding what the checks read of a synthetic source series (no pixels)."""
    slices = []
    for (cls, uid), pos in zip(series["instances"], series["positions"]):
        d = pydicom.Dataset()
        d.SOPClassUID, d.SOPInstanceUID = cls, uid
        d.StudyInstanceUID = series["study"]
        d.SeriesInstanceUID = series["series"]
        d.FrameOfReferenceUID = series["frame_of_reference"]
        d.PatientID = series["patient_id"]
        d.ImagePositionPatient = pos
        d.ImageOrientationPatient = series["orientation"]
        d.PixelSpacing = series["pixel_spacing"]
        slices.append(d)
    return slices


def frame_keys(ds):
    """Per frame: (segment number, dimension index values, source SOP instance UID)."""
    return [
        (
            int(g.SegmentIdentificationSequence[0].ReferencedSegmentNumber),
            tuple(int(v) for v in g.FrameContentSequence[0].DimensionIndexValues),
            g.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID,
        )
        for g in ds.PerFrameFunctionalGroupsSequence
    ]


def keywords(ds, prefix=""):
    """Every attribute keyword, nested ones as `Sequence>Keyword` (first item)."""
    out = set()
    for e in ds:
        k = prefix + (e.keyword or str(e.tag))
        out.add(k)
        if e.VR == "SQ" and len(e.value):
            out |= keywords(e.value[0], k + ">")
    return out


def highdicom_twin(src, want, meta, labelled=False):
    """highdicom's own BINARY SEG of the same label map and source (its defaults); `want` holds
    label values, or segment numbers already when `labelled`."""
    from pydicom.sr.codedict import codes

    nz = len(src)
    if nz > 1 and "SliceThickness" not in src[0]:
        # highdicom copies SliceThickness, which the fixtures lack: give it the z spacing.
        iop = np.array(src[0].ImageOrientationPatient, dtype=float)
        normal = np.cross(iop[:3], iop[3:])
        gap = np.dot(
            np.array(src[-1].ImagePositionPatient, float) - np.array(src[0].ImagePositionPatient, float),
            normal,
        )
        for d in src:
            d.SliceThickness = f"{abs(gap) / (nz - 1):.6f}"
    arr = want.astype(np.uint8) if labelled else np.zeros(want.shape, np.uint8)
    descs = []
    for i, (lab, name) in enumerate(meta["segments"]):
        if not labelled:
            arr[want == lab] = i + 1
        descs.append(
            hd.seg.SegmentDescription(
                segment_number=i + 1,
                segment_label=name.replace("\\", "/"),
                segmented_property_category=hd.sr.CodedConcept("91723000", "SCT", "Anatomical Structure"),
                segmented_property_type=hd.sr.CodedConcept("85756007", "SCT", "Tissue"),
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=hd.AlgorithmIdentificationSequence(
                    name="autoseg", version="0", family=codes.cid7162.ArtificialIntelligence
                ),
            )
        )
    return hd.seg.Segmentation(
        source_images=src,
        pixel_array=arr,
        segmentation_type="BINARY",
        segment_descriptions=descs,
        series_instance_uid=hd.UID(),
        series_number=100,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="autoseg",
        manufacturer_model_name="autoseg",
        software_versions="0",
        device_serial_number="0",
    )


def multi_frame_source(folder):
    """The one multi-frame file of `folder`, or None."""
    files = [f for f in sorted(folder.iterdir()) if f.is_file() and f.name.upper() != "DICOMDIR"]
    if len(files) != 1:
        return None
    ds = pydicom.dcmread(files[0])
    return ds if int(ds.get("NumberOfFrames", 1)) > 1 else None


def check_multi_frame(dcm, meta, source, want, label_of):
    """A SEG of a multi-frame source (one Enhanced/Legacy Converted file): highdicom's planes per
    source frame, pydicom's frames by ReferencedFrameNumber, and highdicom's own writer's
    frames and PixelData for the same input."""
    nz, ny, nx = want.shape
    shared = source.SharedFunctionalGroupsSequence[0]
    iop = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    groups = source.PerFrameFunctionalGroupsSequence
    pos = [np.array(g.PlanePositionSequence[0].ImagePositionPatient, dtype=float) for g in groups]
    # Frame numbers (from 1) in z order: ascending along the normal.
    frames_z = sorted(range(1, len(groups) + 1), key=lambda f: float(np.dot(pos[f - 1], normal)))
    assert len(frames_z) == nz, (len(frames_z), nz)
    seg = hd.seg.segread(dcm)
    ref = seg.ReferencedSeriesSequence
    assert len(ref) == 1 and ref[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert [r.ReferencedSOPInstanceUID for r in ref[0].ReferencedInstanceSequence] == [source.SOPInstanceUID]
    got = seg.get_pixels_by_source_frame(
        source_sop_instance_uid=source.SOPInstanceUID,
        source_frame_numbers=frames_z,
        combine_segments=True,
        skip_overlap_checks=False,
    )
    lut = np.zeros(len(label_of) + 1, dtype=np.uint16)
    for number, lab in label_of.items():
        lut[number] = lab
    bad = int((lut[got] != want).sum())
    assert bad == 0, f"{bad} voxels differ from the label map"
    ds = pydicom.dcmread(dcm)
    n = int(ds.NumberOfFrames)
    px = ds.pixel_array.reshape(n, ny, nx)
    for f, group in enumerate(ds.PerFrameFunctionalGroupsSequence):
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        src_item = group.DerivationImageSequence[0].SourceImageSequence[0]
        assert src_item.ReferencedSOPInstanceUID == source.SOPInstanceUID
        z = frames_z.index(int(src_item.ReferencedFrameNumber))
        assert np.array_equal(px[f].astype(bool), want[z] == label_of[number]), (f, number, z)
        ipp = np.array(group.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        assert np.allclose(ipp, pos[frames_z[z] - 1], atol=1e-4), (ipp, z)
    # highdicom's writer on the same source: its pixel array is in the source's frame order.
    arr = np.zeros((nz, ny, nx), np.uint8)
    for z, frame in enumerate(frames_z):
        for i, (lab, _) in enumerate(meta["segments"]):
            arr[frame - 1][want[z] == lab] = i + 1
    twin = highdicom_twin([source], arr, meta, labelled=True)
    keys = lambda d: sorted(
        (
            int(g.SegmentIdentificationSequence[0].ReferencedSegmentNumber),
            int(g.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber),
        )
        for g in d.PerFrameFunctionalGroupsSequence
    )
    assert keys(ds) == keys(twin), (keys(ds), keys(twin))
    same_bytes = ds.PixelData == twin.PixelData
    print(
        f"{dcm.name}: OK ({meta['source']}: multi-frame source, {n} frames, every frame's "
        f"ReferencedFrameNumber and plane match; highdicom's twin has the same (segment, source "
        f"frame) set{', and the same PixelData bytes' if same_bytes else ' (frame order differs)'})"
    )


def check(dcm):
    meta = json.loads(dcm.with_suffix(".json").read_text())
    nx, ny, nz = meta["dims"]
    want = np.array(meta["values"], dtype=np.uint16).reshape(nz, ny, nx)
    label_of = {i + 1: lab for i, (lab, _) in enumerate(meta["segments"])}
    synthetic = isinstance(meta["source"], dict)
    if not synthetic:
        source = multi_frame_source(FIXTURES / meta["source"])
        if source is not None:
            return check_multi_frame(dcm, meta, source, want, label_of)
    src = stand_in_slices(meta["source"]) if synthetic else source_slices(FIXTURES / meta["source"])
    assert len(src) == nz, (len(src), nz)
    uids = [d.SOPInstanceUID for d in src]

    seg = hd.seg.segread(dcm)
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert seg.SegmentationType == "BINARY"
    assert seg.FrameOfReferenceUID == src[0].FrameOfReferenceUID
    assert seg.StudyInstanceUID == src[0].StudyInstanceUID
    assert seg.PatientID == src[0].PatientID
    assert seg.SeriesInstanceUID != src[0].SeriesInstanceUID
    ref = seg.ReferencedSeriesSequence
    assert len(ref) == 1 and ref[0].SeriesInstanceUID == src[0].SeriesInstanceUID
    assert {r.ReferencedSOPInstanceUID for r in ref[0].ReferencedInstanceSequence} == set(uids)
    labels = [s.SegmentLabel for s in seg.SegmentSequence]
    assert labels == [n.replace("\\", "/") for _, n in meta["segments"]], labels

    # highdicom: one label plane per source instance (segment numbers), mapped to label values.
    got = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, combine_segments=True, skip_overlap_checks=False
    )
    assert got.shape == (nz, ny, nx), got.shape
    lut = np.zeros(len(label_of) + 1, dtype=np.uint16)
    for number, lab in label_of.items():
        lut[number] = lab
    rebuilt = lut[got]
    bad = int((rebuilt != want).sum())
    assert bad == 0, f"{bad} voxels differ from the label map"

    # pydicom: the frames decode; each frame is its segment's mask on its source slice.
    ds = pydicom.dcmread(dcm)
    px = ds.pixel_array
    n = int(ds.NumberOfFrames)
    px = px.reshape(n, ny, nx)
    for f, group in enumerate(ds.PerFrameFunctionalGroupsSequence):
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        uid = group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        z = uids.index(uid)
        assert np.array_equal(px[f].astype(bool), want[z] == label_of[number]), (f, number, z)
        ipp = np.array(group.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        assert np.allclose(ipp, np.array(src[z].ImagePositionPatient, dtype=float), atol=1e-4), (ipp, z)

    # highdicom's get_volume: each of its planes, placed by its affine, is the label map's plane
    # at that position (highdicom may order the planes the other way along the normal).
    vol = seg.get_volume(combine_segments=True)
    arr = lut[vol.array]
    assert arr.shape == (nz, ny, nx), arr.shape
    iop = np.array(src[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    first = np.array(src[0].ImagePositionPatient, dtype=float)
    last = np.array(src[-1].ImagePositionPatient, dtype=float)
    dz = float(np.dot(last - first, normal)) / (nz - 1) if nz > 1 else 1.0
    spacing = [float(x) for x in src[0].PixelSpacing]
    assert np.allclose(vol.affine[:3, 1], iop[3:] * spacing[0], atol=1e-4), vol.affine
    assert np.allclose(vol.affine[:3, 2], iop[:3] * spacing[1], atol=1e-4), vol.affine
    for a in range(nz):
        pos = vol.affine[:3, :] @ np.array([a, 0, 0, 1.0])
        z = int(round(float(np.dot(pos - first, normal)) / dz))
        assert np.array_equal(arr[a], want[z]), f"get_volume plane {a} (z {z}) differs"
    note = f"; get_volume {tuple(vol.array.shape)} matches by position"

    # highdicom's own writer on the same input: same frames (segment, index, source) in the
    # same order and the same PixelData bytes; the attributes only one of the two writes.
    if synthetic:
        note += "; synthetic source: no highdicom twin"
        print(f"{dcm.name}: OK (synthetic: {nx}x{ny}x{nz}, {n} frames, segments {labels}{note})")
        return
    twin = highdicom_twin(src, want, meta)
    assert frame_keys(ds) == frame_keys(twin), (frame_keys(ds), frame_keys(twin))
    assert ds.PixelData == twin.PixelData, "PixelData differs from highdicom's"
    ours, theirs = keywords(ds), keywords(twin)
    only_hd = sorted({k.split(">")[0] for k in theirs - ours})
    only_ours = sorted({k.split(">")[0] for k in ours - theirs})
    note += f"; frames and PixelData bytes equal highdicom's; only in highdicom's: {only_hd}; only in ours: {only_ours}"
    print(
        f"{dcm.name}: OK ({meta['source']}: {nx}x{ny}x{nz}, {n} frames, "
        f"segments {labels}, {int((want > 0).sum())} labelled voxels match{note})"
    )


def main():
    folder = Path(sys.argv[1])
    files = sorted(folder.glob("*.dcm"))
    if not files:
        sys.exit(f"no .dcm files in {folder}")
    print(f"highdicom {hd.__version__}, pydicom {pydicom.__version__}")
    for dcm in files:
        check(dcm)
    tool = shutil.which("dciodvfy")
    if tool is None:
        print("dciodvfy: not installed, skipped")
    else:
        errors = 0
        for dcm in files:
            r = subprocess.run([tool, str(dcm)], capture_output=True, text=True)
            print(f"dciodvfy {dcm.name}:\n{r.stdout}{r.stderr}")
            errors += sum(line.startswith("Error") for line in (r.stdout + r.stderr).splitlines())
        if errors:
            sys.exit(f"dciodvfy reported {errors} errors")
    print(f"all {len(files)} SEG files check")


if __name__ == "__main__":
    main()
