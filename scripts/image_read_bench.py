#!/usr/bin/env python3
"""Read speed of every image format: autoseg's read_image against the reader nnU-Net 2.8.1 uses
for the same file (SimpleITKIO for NIfTI/NRRD/MetaImage, NaturalImage2DIO for PNG, Tiff3DIO for
TIFF stacks, SimpleITK's ImageSeriesReader cast to float32 for DICOM, which nnU-Net cannot
read), each timed as the best of N runs in one process, on files written here by SimpleITK,
tifffile and Pillow from one synthetic CT-like volume.

Run (after `cargo build --release -p autoseg-preprocessing --example image_read_bench`):
    /tmp/pyenv/bin/python scripts/image_read_bench.py [--shape 200,512,512] [--repeats 5]
Prints a markdown table for BENCHMARKS.md.
"""

import argparse
import os
import subprocess
import tempfile
import time

import numpy as np
import SimpleITK as sitk
import tifffile
from PIL import Image
from nnunetv2.imageio.natural_image_reader_writer import NaturalImage2DIO
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
from nnunetv2.imageio.tif_reader_writer import Tiff3DIO

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "..", "target", "release", "examples", "image_read_bench")


def volume(shape):
    z, y, x = shape
    zz, yy, xx = np.meshgrid(np.arange(z), np.arange(y), np.arange(x), indexing="ij")
    body = ((yy - y / 2) ** 2 / (0.4 * y) ** 2 + (xx - x / 2) ** 2 / (0.45 * x) ** 2) < 1
    rng = np.random.default_rng(0)
    hu = np.where(body, 40 + 30 * np.sin(zz / 7.0) + rng.normal(0, 20, shape), -1000)
    return hu.astype(np.int16)


def write_files(tmp, shape):
    data = volume(shape)
    img = sitk.GetImageFromArray(data)
    img.SetSpacing((0.8, 0.8, 1.5))
    img.SetOrigin((-200.0, -180.0, 30.0))
    files = {}
    for ending in (".nii.gz", ".nrrd", ".mha"):
        path = os.path.join(tmp, "ct" + ending)
        sitk.WriteImage(img, path, True)
        files[ending] = path
    series = os.path.join(tmp, "dicom")
    os.makedirs(series)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    uid = "1.2.826.0.1.3680043.2.1125." + str(int(time.time()))
    for k in range(shape[0]):
        sl = img[:, :, k]
        for tag, value in [("0020|000e", uid + ".1"), ("0020|000d", uid + ".2"),
                           ("0020|0032", "\\".join(map(str, img.TransformIndexToPhysicalPoint((0, 0, k))))),
                           ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0020|0013", str(k)),
                           ("0008|0060", "CT"), ("0028|1052", "0"), ("0028|1053", "1")]:
            sl.SetMetaData(tag, value)
        writer.SetFileName(os.path.join(series, f"{k:04d}.dcm"))
        writer.Execute(sl)
    files["DICOM series"] = series
    stack = os.path.join(tmp, "stack_0000.tif")
    tifffile.imwrite(stack, data.astype(np.uint16), compression="zlib")
    with open(os.path.join(tmp, "stack.json"), "w") as f:
        f.write('{"spacing": [1.5, 0.8, 0.8]}')
    files[".tif (3-D stack)"] = stack
    rgb = os.path.join(tmp, "photo_0000.png")
    side = int(np.sqrt(data.size / 3))
    pixels = (np.resize(data, (side, side, 3)) % 256).astype(np.uint8)
    Image.fromarray(pixels).save(rgb)
    files[".png (RGB)"] = rgb
    return files


def nnunet_reader(kind, path):
    if kind == "DICOM series":
        def read():
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(path))
            return sitk.GetArrayFromImage(reader.Execute()).astype(np.float32)
        return read
    if kind.startswith(".png"):
        return lambda: NaturalImage2DIO().read_images([path])
    if kind.startswith(".tif"):
        return lambda: Tiff3DIO().read_images([path])
    return lambda: SimpleITKIO().read_images([path])


def best(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", default="200,512,512")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(tmp, shape)
        out = subprocess.run([BENCH, "--repeats", str(args.repeats), *files.values()],
                             check=True, capture_output=True, text=True).stdout
        ours = {line.split("\t")[0]: (float(line.split("\t")[1]), line.split("\t")[2])
                for line in out.strip().splitlines()}
        print(f"| format | array | autoseg (s) | nnU-Net 2.8.1's reader (s) | speed-up |")
        print("|---|---|---|---|---|")
        for kind, path in files.items():
            theirs = best(nnunet_reader(kind, path), args.repeats)
            t, shp = ours[path]
            print(f"| {kind} | {shp} | {t:.3f} | {theirs:.3f} | {theirs / t:.1f}x |")


if __name__ == "__main__":
    main()
