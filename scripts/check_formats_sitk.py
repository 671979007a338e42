#!/usr/bin/env python3
"""Issue 18's SimpleITK checks, end to end with the autoseg binary:

1. The `ct3d` fixture (NIfTI, rotated affine) converted by SimpleITK to .nrrd and .mha gives
   the fingerprint and plans of the NIfTI original (floats compared to 12 significant digits:
   NRRD stores axis vectors, not spacings); its training images written by SimpleITK as DICOM
   series folders (int16) give the fingerprint and plans of the same int16 images in NIfTI
   (6 significant digits: DICOM's decimal strings).
2. A model trained on the SimpleITK-converted .nrrd dataset (tiny budget) predicts imagesTs,
   and a DICOM series SimpleITK wrote from one test case: every mask, read by SimpleITK, has
   exactly the input's size, spacing, origin and direction.
3. `predict --dicom-seg` on that series: highdicom reads the DICOM SEG back (per source
   instance, segments combined) equal to the mask voxel for voxel, pydicom decodes its frames,
   and it refers to the source series and frame of reference.

Run (after `cargo build --release`):
    /tmp/pyenv/bin/python scripts/check_formats_sitk.py
Prints one line per check and exits non-zero on the first mismatch.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk

sitk.ProcessObject_SetGlobalWarningDisplay(False)

HERE = os.path.dirname(os.path.abspath(__file__))
AUTOSEG = os.path.join(HERE, "..", "target", "release", "autoseg")


def run(*args):
    subprocess.run([AUTOSEG, *args], check=True, capture_output=True, text=True)


def rounded(value):
    if isinstance(value, float):
        return float(f"{value:.11e}")
    if isinstance(value, list):
        return [rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def plan(dataset, work):
    run("plan", dataset, "--work", work)
    folder = os.path.join(work, os.path.basename(dataset))
    with open(os.path.join(folder, "fingerprint.toml"), "rb") as f:
        fingerprint = tomllib.load(f)
    fingerprint.pop("stamp", None)
    with open(os.path.join(folder, "plans.toml"), "rb") as f:
        plans = tomllib.load(f)
    return rounded(fingerprint), rounded(plans)


def convert(nifti_root, out, ending):
    root = os.path.join(out, os.path.basename(nifti_root))
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        os.makedirs(os.path.join(root, sub))
        for name in sorted(os.listdir(os.path.join(nifti_root, sub))):
            image = sitk.ReadImage(os.path.join(nifti_root, sub, name))
            target = os.path.join(root, sub, name.replace(".nii.gz", ending))
            sitk.WriteImage(image, target, True)
    with open(os.path.join(nifti_root, "dataset.json")) as f:
        meta = json.load(f)
    meta["file_ending"] = ending
    with open(os.path.join(root, "dataset.json"), "w") as f:
        json.dump(meta, f, indent=2)
    return root


def geometry(image):
    return (image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())


def check(what, ok):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        sys.exit(1)


def write_series(image, folder):
    """A CT series of `image` (cast to int16) as SimpleITK's DICOM writer writes it."""
    os.makedirs(folder)
    image = sitk.Cast(sitk.RescaleIntensity(image, 0, 1000), sitk.sitkInt16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = image.GetDirection()
    orientation = "\\".join(str(v) for v in (direction[0], direction[3], direction[6],
                                              direction[1], direction[4], direction[7]))
    for k in range(image.GetDepth()):
        sl = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in [("0020|000e", "1.2.826.0.1.3680043.2.1125.4711.1"),
                           ("0020|000d", "1.2.826.0.1.3680043.2.1125.4711.2"),
                           ("0020|0052", "1.2.826.0.1.3680043.2.1125.4711.3"),
                           ("0020|0032", "\\".join(str(v) for v in position)),
                           ("0020|0037", orientation), ("0020|0013", str(k + 1)),
                           ("0008|0060", "CT")]:
            sl.SetMetaData(tag, value)
        writer.SetFileName(os.path.join(folder, f"IM{k:04d}.dcm"))
        writer.Execute(sl)


def rounded_to(value, digits):
    if isinstance(value, float):
        return float(f"{value:.{digits - 1}e}")
    if isinstance(value, list):
        return [rounded_to(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: rounded_to(v, digits) for k, v in value.items()}
    return value


def dicom_dataset(nifti_root, out):
    """The dataset's training images as DICOM series folders written by SimpleITK
    (`imagesTr/<case>_0000/`, int16), beside the same int16 images as NIfTI; labels copied.
    Returns (NIfTI root, DICOM root)."""
    roots = (os.path.join(out, "int16-nifti", os.path.basename(nifti_root)),
             os.path.join(out, "int16-dicom", os.path.basename(nifti_root)))
    for root in roots:
        os.makedirs(os.path.join(root, "imagesTr"))
        shutil.copytree(os.path.join(nifti_root, "labelsTr"), os.path.join(root, "labelsTr"))
        shutil.copy(os.path.join(nifti_root, "dataset.json"), root)
    for name in sorted(os.listdir(os.path.join(nifti_root, "imagesTr"))):
        image = sitk.ReadImage(os.path.join(nifti_root, "imagesTr", name))
        cast = sitk.Cast(sitk.RescaleIntensity(image, 0, 1000), sitk.sitkInt16)
        sitk.WriteImage(cast, os.path.join(roots[0], "imagesTr", name), True)
        write_series(cast, os.path.join(roots[1], "imagesTr", name.replace(".nii.gz", "")))
    return roots


def main():
    with tempfile.TemporaryDirectory() as tmp:
        run("fixtures", "ct3d", os.path.join(tmp, "nifti"))
        nifti = os.path.join(tmp, "nifti", "Dataset903_Ct3d")
        if not os.path.isdir(nifti):
            nifti = os.path.join(tmp, "nifti", os.listdir(os.path.join(tmp, "nifti"))[0])
        reference = plan(nifti, os.path.join(tmp, "work-nifti"))
        roots = {}
        for ending in (".nrrd", ".mha"):
            root = convert(nifti, os.path.join(tmp, ending[1:]), ending)
            roots[ending] = root
            ours = plan(root, os.path.join(tmp, "work-" + ending[1:]))
            check(f"{ending} (SimpleITK-converted): fingerprint equals the NIfTI original's",
                  ours[0] == reference[0])
            check(f"{ending} (SimpleITK-converted): plans equal the NIfTI original's",
                  ours[1] == reference[1])

        # The training images as DICOM series (SimpleITK's writer; int16, so the NIfTI
        # reference is the same int16 images): DICOM stores spacing and positions as decimal
        # strings of at most 16 characters, so floats are compared to 6 significant digits.
        nifti16, dicom16 = dicom_dataset(nifti, os.path.join(tmp, "int16"))
        ref16 = plan(nifti16, os.path.join(tmp, "work-int16-nifti"))
        ours16 = plan(dicom16, os.path.join(tmp, "work-int16-dicom"))
        check("DICOM series folders (SimpleITK-written) as training images: fingerprint equals "
              "the same int16 images' in NIfTI (6 significant digits)",
              rounded_to(ours16[0], 6) == rounded_to(ref16[0], 6))
        check("DICOM series folders (SimpleITK-written) as training images: plans equal the "
              "NIfTI images' (6 significant digits)",
              rounded_to(ours16[1], 6) == rounded_to(ref16[1], 6))

        root = roots[".nrrd"]
        work = os.path.join(tmp, "work-train")
        run("plan-and-train", root, "--work", work, "-c", "2d", "--folds", "0", "--epochs", "1",
            "--iters-per-epoch", "2", "--device", "cpu")
        model = os.path.join(work, os.path.basename(root))
        pred = os.path.join(tmp, "pred")
        run("predict", "-i", os.path.join(root, "imagesTs"), "-o", pred, "-m", model,
            "--folds", "0", "--no-tta", "--device", "cpu")
        for name in sorted(os.listdir(os.path.join(root, "imagesTs"))):
            source = sitk.ReadImage(os.path.join(root, "imagesTs", name))
            mask = sitk.ReadImage(os.path.join(pred, name.replace("_0000", "")))
            check(f"predicted {name.replace('_0000', '')}: SimpleITK reads the input's size, "
                  f"spacing, origin and direction", geometry(mask) == geometry(source))

        series_root = os.path.join(tmp, "dicom")
        first = sorted(os.listdir(os.path.join(root, "imagesTs")))[0]
        write_series(sitk.ReadImage(os.path.join(root, "imagesTs", first)),
                     os.path.join(series_root, "series1"))
        pred_dicom = os.path.join(tmp, "pred-dicom")
        run("predict", "-i", series_root, "-o", pred_dicom, "-m", model, "--folds", "0",
            "--no-tta", "--device", "cpu")
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(
            os.path.join(series_root, "series1")))
        series = reader.Execute()
        mask = sitk.ReadImage(os.path.join(pred_dicom, "series1.nrrd"))
        same = (mask.GetSize() == series.GetSize()
                and all(abs(a - b) < 1e-9 for a, b in zip(mask.GetSpacing(), series.GetSpacing()))
                and all(abs(a - b) < 1e-9 for a, b in zip(mask.GetOrigin(), series.GetOrigin()))
                and all(abs(a - b) < 1e-9
                        for a, b in zip(mask.GetDirection(), series.GetDirection())))
        check("DICOM series in (written by SimpleITK): the mask has the series' geometry as "
              "SimpleITK's series reader reports it (to 1e-9)", same)
        check_seg(os.path.join(series_root, "series1"), pred_dicom, model, mask)
        print(f"SimpleITK {sitk.Version.VersionString()}, highdicom {hd.__version__}, "
              f"pydicom {pydicom.__version__}")


def check_seg(series, pred, model, mask):
    run("predict", "-i", os.path.dirname(series), "-o", pred, "-m", model, "--folds", "0",
        "--no-tta", "--device", "cpu", "--dicom-seg")
    seg = hd.seg.segread(os.path.join(pred, "series1.seg.dcm"))
    sources = [pydicom.dcmread(os.path.join(series, f)) for f in sorted(os.listdir(series))]
    normal = np.cross(np.array(sources[0].ImageOrientationPatient[:3], float),
                      np.array(sources[0].ImageOrientationPatient[3:], float))
    sources.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), normal)))
    uids = [d.SOPInstanceUID for d in sources]
    numbers = {int(d.SegmentNumber): d.SegmentLabel for d in seg.SegmentSequence}
    with open(os.path.join(model, "dataset.json")) as f:
        value_of = {name: v for name, v in json.load(f)["labels"].items()}
    lut = np.zeros(max(numbers) + 1, np.uint16)
    for number, name in numbers.items():
        lut[number] = value_of[name]
    got = lut[seg.get_pixels_by_source_instance(source_sop_instance_uids=uids,
                                                  combine_segments=True)]
    want = sitk.GetArrayFromImage(mask)
    check(f"DICOM SEG: highdicom reads back the mask ({int((want > 0).sum())} labelled voxels, "
          f"segments {sorted(numbers.values())})", got.shape == want.shape and (got == want).all())
    ds = pydicom.dcmread(os.path.join(pred, "series1.seg.dcm"))
    frames = ds.pixel_array
    check(f"DICOM SEG: pydicom decodes its {ds.NumberOfFrames} frame(s)", frames.shape[0] == ds.NumberOfFrames)
    check("DICOM SEG: refers to the source series and its frame of reference",
          ds.ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID
          and ds.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
          and ds.StudyInstanceUID == sources[0].StudyInstanceUID)


if __name__ == "__main__":
    main()
