#!/usr/bin/env python3
"""Writes `fixtures/data/dicom_dataset/Dataset950_DicomCt/`: a training dataset whose images are
DICOM series folders (`imagesTr/<case>_0000/`, `imagesTs/<case>_0000/`) and whose labels are
NIfTI files written by SimpleITK on each series' grid as SimpleITK's series reader gives it
(`ImageSeriesReader` + `GetGDCMSeriesFileNames`), so the labels' geometry is SimpleITK's, not
autoseg's (tests/formats.rs: `a_dataset_of_dicom_series_folders_trains_and_predicts`).

Each case: 10 CT slices of 20 x 24 pixels (0.9 x 0.8 mm, 2 mm apart), int16 stored with rescale
intercept -1024, deflated explicit VR little endian (small files); a bright ellipsoid (label 1)
at a case-specific centre on a dark, slightly noisy background. Files are named in shuffled
order so that the reader must sort them. Two cases are oblique (rotated about the z axis).

Usage: python scripts/make_dicom_dataset.py   (needs pydicom, SimpleITK, numpy; tested with
pydicom 3.0.2, SimpleITK 2.5.7). UIDs and values are fixed, so a rerun writes the same files.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, DeflatedExplicitVRLittleEndian

ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "data" / "dicom_dataset"
NAME = "Dataset950_DicomCt"
UID_ROOT = "1.2.826.0.1.3680043.8.498.4243."
ROWS, COLS, SLICES = 20, 24, 10
PIXEL_SPACING = [0.9, 0.8]  # between rows, between columns
DZ = 2.0


def uid(*parts):
    return UID_ROOT + ".".join(str(p) for p in parts)


def volume(case):
    """Stored values (z, y, x) and the label: an ellipsoid at a case-specific centre."""
    rng = np.random.default_rng(case)
    z, y, x = np.mgrid[0:SLICES, 0:ROWS, 0:COLS]
    cz, cy, cx = 3 + case % 4, 6 + (case * 3) % 8, 7 + (case * 5) % 10
    inside = ((z - cz) / 2.5) ** 2 + ((y - cy) / 4.0) ** 2 + ((x - cx) / 5.0) ** 2 <= 1.0
    stored = np.where(inside, 1024 + 300, 1024 - 900) + rng.integers(0, 4, size=inside.shape)
    return stored.astype(np.int16), inside.astype(np.uint8)


def write_case(folder, case, oblique):
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    stored, _ = volume(case)
    angle = np.deg2rad(20.0) if oblique else 0.0
    row_cos = [np.cos(angle), np.sin(angle), 0.0]
    col_cos = [-np.sin(angle), np.cos(angle), 0.0]
    origin = np.array([-10.0 + case, 5.0, 40.0 + 3 * case])
    normal = np.cross(row_cos, col_cos)
    order = np.random.default_rng(100 + case).permutation(SLICES)
    for k in range(SLICES):
        sop = uid(case, 3, k)
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop
        ds.PatientID = f"AUTOSEG-{case:04d}"
        ds.PatientName = "Doe^Jane"
        ds.StudyInstanceUID = uid(case, 1)
        ds.SeriesInstanceUID = uid(case, 2)
        ds.FrameOfReferenceUID = uid(case, 4)
        ds.Modality = "CT"
        ds.InstanceNumber = k + 1
        ds.Rows, ds.Columns = ROWS, COLS
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope = 1
        ds.RescaleIntercept = -1024
        ds.PixelSpacing = PIXEL_SPACING
        ds.ImageOrientationPatient = [round(float(v), 9) for v in row_cos + col_cos]
        ds.ImagePositionPatient = [round(float(v), 6) for v in origin + k * DZ * normal]
        ds.PixelData = stored[k].tobytes()
        ds.save_as(folder / f"IM{order[k]:04d}.dcm", enforce_file_format=True)


def read_sitk(folder):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def main():
    dataset = ROOT / NAME
    shutil.rmtree(dataset, ignore_errors=True)
    splits = {"Tr": range(0, 8), "Ts": range(8, 10)}
    for split, cases in splits.items():
        for case in cases:
            name = f"ct_{case:03d}"
            folder = dataset / f"images{split}" / f"{name}_0000"
            write_case(folder, case, oblique=case in (3, 9))
            image = read_sitk(folder)
            _, inside = volume(case)
            assert sitk.GetArrayFromImage(image).shape == inside.shape
            # The slices sorted along the normal are the stored order (positions ascend).
            label = sitk.GetImageFromArray(inside)
            label.CopyInformation(image)
            (dataset / f"labels{split}").mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(label, str(dataset / f"labels{split}" / f"{name}.nii.gz"), True)
    (dataset / "dataset.json").write_text(
        json.dumps(
            {
                "name": NAME,
                "description": "CT series as DICOM folders (scripts/make_dicom_dataset.py)",
                "channel_names": {"0": "CT"},
                "labels": {"background": 0, "lesion": 1},
                "numTraining": len(splits["Tr"]),
                "file_ending": ".nii.gz",
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {dataset}")


if __name__ == "__main__":
    main()
