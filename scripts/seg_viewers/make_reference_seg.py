#!/usr/bin/env python3
"""Makes a reference DICOM SEG (highdicom) and its label mask for `check_seg_viewers.sh`.

Usage:
    python scripts/seg_viewers/make_reference_seg.py SERIES_DIR OUT_DIR
    python scripts/seg_viewers/make_reference_seg.py --synthetic ROWSxCOLSxSLICES OUT_DIR

Reads the series with SimpleITK (`ImageSeriesReader`, files in the order
`GetGDCMSeriesFileNames` gives: ascending along the slice normal, the z order autoseg uses),
draws a synthetic label map (labels 1, 2 and 3, label 3 on one slice only, one slice left
empty) and writes
  OUT_DIR/mask.nii.gz  the labels (uint8) with the series' geometry (SimpleITK), so that its
                       voxels, read as a z,y,x array, are in the series' sorted slice order;
  OUT_DIR/mask.npy     the same array, z,y,x;
  OUT_DIR/seg.dcm      a BINARY DICOM Segmentation of it made by highdicom
                       (`hd.seg.Segmentation`, one segment per label, segment number = label),
                       the source images passed in the same sorted order.
With --synthetic, a CT series of that size (frames of ROWS*COLS pixels, which need not be a
multiple of 8, so that the 1-bit frames of the SEG do not start on byte boundaries) is first
written to OUT_DIR/series (files named in reverse slice order) and used as SERIES_DIR.

highdicom's SEG is the reference: it is what the viewer check must read back as the mask.
Tested with highdicom 0.28.2, pydicom 3.0.2, SimpleITK 2.5.
"""

import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def synthetic_series(shape, folder):
    rows, cols, slices = shape
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    rng = np.random.default_rng(0)
    for k in range(slices):
        ds = pydicom.Dataset()
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.CTImageStorage
        ds.SOPClassUID = pydicom.uid.CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Synthetic^Seg", "SEG1", "", "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "120000", "1", ""
        ds.ReferringPhysicianName = ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, k + 1
        ds.Manufacturer = "autoseg"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-10.0, 5.0, 20.0 + 2.5 * k]
        ds.PixelSpacing = [0.75, 0.5]
        ds.SliceThickness = 2.5
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = rng.integers(-1000, 1000, (rows, cols), dtype=np.int16).tobytes()
        ds.save_as(folder / f"{slices - k:03d}.dcm", enforce_file_format=True)
    return folder


def main():
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "--synthetic":
        out = Path(args[2])
        series_dir = synthetic_series([int(v) for v in args[1].lower().split("x")], out / "series")
    elif len(args) == 2:
        series_dir, out = Path(args[0]), Path(args[1])
    else:
        sys.exit(__doc__)
    out.mkdir(parents=True, exist_ok=True)

    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(series_dir))
    reader.SetFileNames(files)
    image = reader.Execute()
    z, y, x = image.GetSize()[2], image.GetSize()[1], image.GetSize()[0]

    mask = np.zeros((z, y, x), dtype=np.uint8)
    zz, yy, xx = np.meshgrid(np.arange(z), np.arange(y), np.arange(x), indexing="ij")
    # Asymmetric in every axis, so that a flip or a transpose anywhere shows.
    mask[(xx < x // 2) & (yy >= 1) & (zz >= 1)] = 1
    mask[(xx >= x // 2 + 1) & (yy < y - 1) & (zz < z - 1) & (zz >= 1)] = 2
    mask[(xx == x - 1) & (yy == 0) & (zz == z - 1)] = 3
    mask[0] = 0  # one empty slice (the first in z order): no frames reference it
    mask[0, 0, 0] = 0

    label = sitk.GetImageFromArray(mask)
    label.CopyInformation(image)
    sitk.WriteImage(label, str(out / "mask.nii.gz"))
    np.save(out / "mask.npy", mask)

    sources = [pydicom.dcmread(f) for f in files]
    for d in sources:
        if "SliceThickness" not in d:
            # highdicom copies SliceThickness, which some fixtures lack: give it the z spacing.
            d.SliceThickness = f"{image.GetSpacing()[2]:.6f}"
    labels = [int(v) for v in np.unique(mask) if v]
    names = {1: "liver", 2: "spleen", 3: "lesion"}
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i + 1,
            segment_label=names.get(lab, f"label {lab}"),
            segmented_property_category=codes.SCT.Organ,
            segmented_property_type=codes.SCT.Organ,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=hd.AlgorithmIdentificationSequence(
                name="reference", version="1", family=codes.DCM.ArtificialIntelligence
            ),
        )
        for i, lab in enumerate(labels)
    ]
    # Segment numbers 1..n in label order: with labels 1..n the label map is the pixel array.
    remapped = np.zeros_like(mask)
    for i, lab in enumerate(labels):
        remapped[mask == lab] = i + 1
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=remapped,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=100,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="highdicom reference",
        manufacturer_model_name="make_reference_seg.py",
        software_versions=hd.__version__,
        device_serial_number="0",
    )
    seg.save_as(out / "seg.dcm")
    counts = {lab: int((mask == lab).sum()) for lab in labels}
    print(f"{series_dir}: {len(files)} slices {x}x{y}, frames {seg.NumberOfFrames}, voxels per label {counts}")


if __name__ == "__main__":
    main()
