#!/usr/bin/env python3
"""Writes the natural-image / 3-D TIFF fixtures of `autoseg-preprocessing`'s `formats::natural`
and `expected.json`, what nnU-Net 2.8.1's own `NaturalImage2DIO` and `Tiff3DIO` return for each.

Needs: numpy, Pillow, scikit-image, tifffile, nnunetv2==2.8.1 (--no-deps) and batchgenerators
(--no-deps): the expected values come from nnU-Net's classes themselves, not a re-implementation.
The registry rule (`determine_reader_writer_from_file_ending` with an example file) is reproduced
here, since importing the registry needs SimpleITK and nibabel: the first of
NaturalImage2DIO, SimpleITKIO, Tiff3DIO, ... whose `supported_file_endings` holds the ending and
whose `read_images` reads the file.

Usage: python scripts/make_natural_fixtures.py [out_dir]   (default fixtures/data/natural)
"""
import io
import json
import os
import struct
import sys
import zlib
from contextlib import redirect_stdout

import numpy as np
import skimage
import skimage.io
import tifffile
from PIL import Image

from nnunetv2.imageio.natural_image_reader_writer import NaturalImage2DIO
from nnunetv2.imageio.tif_reader_writer import Tiff3DIO

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join("fixtures", "data", "natural")
BROKEN = os.path.join(OUT, "broken")
W, H = 7, 5
rng = np.random.default_rng(20261207)


def grey_u8():
    a = rng.integers(0, 256, (H, W), dtype=np.uint8)
    a[0, 0], a[-1, -1] = 0, 255
    return a


def grey_u16():
    a = rng.integers(0, 65536, (H, W), dtype=np.uint16)
    a[0, 0], a[-1, -1] = 0, 65535
    return a


def rgb():
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def rgba():
    return rng.integers(0, 256, (H, W, 4), dtype=np.uint8)


def main():
    os.makedirs(BROKEN, exist_ok=True)
    cases = {}

    # --- PNG -------------------------------------------------------------------------------
    Image.fromarray(grey_u8(), "L").save(os.path.join(OUT, "grey_u8.png"))
    Image.fromarray(grey_u16()).save(os.path.join(OUT, "grey_u16.png"))
    Image.fromarray(rgb(), "RGB").save(os.path.join(OUT, "rgb.png"))
    Image.fromarray(rgba(), "RGBA").save(os.path.join(OUT, "rgba.png"))
    pal = Image.fromarray(rng.integers(0, 4, (H, W), dtype=np.uint8), "P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 10, 20, 30])
    pal.save(os.path.join(OUT, "palette.png"))
    pal.save(os.path.join(OUT, "palette_trns.png"), transparency=1)
    Image.fromarray(rgba()[..., :2].copy(), "LA").save(os.path.join(OUT, "grey_alpha.png"))
    Image.fromarray(grey_u8() > 127).save(os.path.join(OUT, "bilevel.png"))
    # a 16-bit RGB PNG, written by hand (Pillow does not write one)
    write_png_raw(os.path.join(OUT, "rgb16.png"), rng.integers(0, 65536, (H, W, 3), dtype=np.uint16))
    # hand-written: 16-bit grey+alpha (Pillow reads RGBA), 2- and 4-bit grey (scaled),
    # 16-bit RGBA (high bytes), grey+alpha three rows high (skimage moves the rows last)
    write_png_raw(os.path.join(OUT, "la16.png"), rng.integers(0, 65536, (H, W, 2), dtype=np.uint16))
    write_png_raw(os.path.join(OUT, "rgba16.png"), rng.integers(0, 65536, (H, W, 4), dtype=np.uint16))
    write_png_raw(os.path.join(OUT, "grey2.png"), rng.integers(0, 4, (H, W, 1), dtype=np.uint8), 2)
    write_png_raw(os.path.join(OUT, "grey4.png"), rng.integers(0, 16, (H, W, 1), dtype=np.uint8), 4)
    Image.fromarray(rng.integers(0, 256, (3, W, 2), dtype=np.uint8), "LA").save(
        os.path.join(OUT, "la_three_rows.png"))
    pal.save(os.path.join(OUT, "palette4.png"), bits=4)
    write_png_adam7(os.path.join(OUT, "interlaced.png"), rgb())
    grey_t = Image.fromarray(grey_u8(), "L")
    grey_t.save(os.path.join(OUT, "grey_trns.png"), transparency=7)
    seg = rng.integers(0, 4, (H, W), dtype=np.uint8)
    Image.fromarray(seg, "L").save(os.path.join(OUT, "seg.png"))

    # --- BMP -------------------------------------------------------------------------------
    Image.fromarray(grey_u8(), "L").save(os.path.join(OUT, "grey.bmp"))
    Image.fromarray(rgb(), "RGB").save(os.path.join(OUT, "rgb.bmp"))
    pal.save(os.path.join(OUT, "palette.bmp"))
    Image.fromarray(rgba(), "RGBA").save(os.path.join(OUT, "rgba.bmp"))
    # top-down rows (negative height), made from a bottom-up file
    bmp = bytearray(open(os.path.join(OUT, "rgb.bmp"), "rb").read())
    offset = struct.unpack("<I", bmp[10:14])[0]
    stride = (W * 3 + 3) // 4 * 4
    rows = [bmp[offset + i * stride: offset + (i + 1) * stride] for i in range(H)]
    bmp[offset:] = b"".join(reversed(rows))
    bmp[22:26] = struct.pack("<i", -H)
    open(os.path.join(OUT, "topdown.bmp"), "wb").write(bytes(bmp))

    # --- 2-D TIFF (NaturalImage2DIO reads .tif) -------------------------------------------
    tifffile.imwrite(os.path.join(OUT, "grey_u8.tif"), grey_u8())
    tifffile.imwrite(os.path.join(OUT, "grey_u16.tif"), grey_u16())
    tifffile.imwrite(os.path.join(OUT, "grey_f32.tif"),
                     rng.normal(0, 100, (H, W)).astype(np.float32))
    tifffile.imwrite(os.path.join(OUT, "deflate_u16.tif"), grey_u16(), compression="zlib")
    tifffile.imwrite(os.path.join(OUT, "lzw_u8.tif"), grey_u8(), compression="lzw")
    tifffile.imwrite(os.path.join(OUT, "rgb.tif"), rgb(), photometric="rgb")
    tifffile.imwrite(os.path.join(OUT, "big_endian_u16.tif"), grey_u16(), byteorder=">")
    tifffile.imwrite(os.path.join(OUT, "grey_i16.tif"), rng.integers(-30000, 30000, (H, W)).astype(np.int16))
    tifffile.imwrite(os.path.join(OUT, "grey_u32.tif"), rng.integers(0, 1 << 24, (H, W)).astype(np.uint32))
    tifffile.imwrite(os.path.join(OUT, "grey_f64.tif"), rng.normal(0, 1, (H, W)))
    tifffile.imwrite(os.path.join(OUT, "predictor_u16.tif"), grey_u16(), compression="zlib", predictor=True)
    tifffile.imwrite(os.path.join(OUT, "tiled_u8.tif"), rng.integers(0, 256, (20, 18)).astype(np.uint8),
                     tile=(16, 16))

    # --- 3-D TIFF stacks (Tiff3DIO) --------------------------------------------------------
    D = 6
    stack = rng.integers(0, 3000, (D, H, W)).astype(np.uint16)
    tifffile.imwrite(os.path.join(OUT, "stack_0000.tif"), stack)
    with open(os.path.join(OUT, "stack.json"), "w") as f:
        json.dump({"spacing": [3.0, 0.5, 0.75]}, f)
    tifffile.imwrite(os.path.join(OUT, "nosidecar_0000.tif"),
                     rng.normal(0, 1, (D, H, W)).astype(np.float32), compression="zlib")
    tifffile.imwrite(os.path.join(OUT, "stack_lzw_0000.tiff"),
                     rng.integers(0, 256, (D, H, W)).astype(np.uint8), compression="lzw")
    with open(os.path.join(OUT, "stack_lzw.json"), "w") as f:
        json.dump({"spacing": [2, 1, 1]}, f)
    # stacks of three and four slices: skimage turns (3, H, W) into (H, W, 3), an RGB image,
    # so that the registry gives them to NaturalImage2DIO
    tifffile.imwrite(os.path.join(OUT, "four_0000.tif"),
                     rng.integers(0, 256, (4, H, W)).astype(np.uint8))
    tifffile.imwrite(os.path.join(OUT, "three_0000.tif"),
                     rng.integers(0, 256, (3, H, W)).astype(np.uint8))
    segstack = rng.integers(0, 3, (D, H, W)).astype(np.uint8)
    tifffile.imwrite(os.path.join(OUT, "segstack.tif"), segstack, compression="zlib")
    with open(os.path.join(OUT, "segstack.json"), "w") as f:
        json.dump({"spacing": [3.0, 0.5, 0.75]}, f, sort_keys=True, indent=4)

    # --- broken ----------------------------------------------------------------------------
    good = open(os.path.join(OUT, "rgb.png"), "rb").read()
    open(os.path.join(BROKEN, "truncated.png"), "wb").write(good[: len(good) // 2])
    bad = bytearray(good)
    bad[29] ^= 0xFF  # IHDR's CRC (8 signature + 4 length + 4 type + 13 data = 29)
    open(os.path.join(BROKEN, "bad_crc.png"), "wb").write(bytes(bad))
    open(os.path.join(BROKEN, "huge.png"), "wb").write(png_header_only(1 << 30, 1 << 30))
    open(os.path.join(BROKEN, "huge_0000.tif"), "wb").write(tiff_absurd())
    open(os.path.join(BROKEN, "huge.tif"), "wb").write(tiff_absurd())
    good_bmp = open(os.path.join(OUT, "rgb.bmp"), "rb").read()
    open(os.path.join(BROKEN, "truncated.bmp"), "wb").write(good_bmp[: len(good_bmp) - 20])
    bmp = bytearray(good_bmp)
    bmp[18:22] = struct.pack("<i", 1 << 30)
    bmp[22:26] = struct.pack("<i", 1 << 30)
    open(os.path.join(BROKEN, "huge.bmp"), "wb").write(bytes(bmp))
    tifffile.imwrite(os.path.join(BROKEN, "badkey_0000.tif"), stack)
    with open(os.path.join(BROKEN, "badkey.json"), "w") as f:
        json.dump({"spacings": [1, 1, 1]}, f)
    tifffile.imwrite(os.path.join(BROKEN, "twovalues_0000.tif"), stack)
    with open(os.path.join(BROKEN, "twovalues.json"), "w") as f:
        json.dump({"spacing": [1, 1]}, f)
    tifffile.imwrite(os.path.join(BROKEN, "zerospacing.tif"), segstack)
    with open(os.path.join(BROKEN, "zerospacing.json"), "w") as f:
        json.dump({"spacing": [0, 1, 1]}, f)

    # --- expected --------------------------------------------------------------------------
    for name in sorted(os.listdir(OUT)):
        path = os.path.join(OUT, name)
        if name.endswith(".json") or os.path.isdir(path):
            continue
        cases[name] = describe(path)
    for name in sorted(os.listdir(BROKEN)):
        if not name.endswith(".json"):
            cases["broken/" + name] = describe(os.path.join(BROKEN, name))
    meta = {
        "versions": {"nnunetv2": "2.8.1", "scikit-image": skimage.__version__,
                     "tifffile": tifffile.__version__, "numpy": np.__version__,
                     "Pillow": Image.__version__},
        "cases": cases,
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    print(f"{len(cases)} files described in {OUT}/expected.json")


def run(reader, method, path):
    """What nnU-Net's `reader.method` returns for `path`, or the error it raises."""
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            if method == "read_images":
                arr, props = reader.read_images((path,))
            else:
                arr, props = reader.read_seg(path)
    except BaseException as e:  # noqa: BLE001 (nnU-Net's registry catches everything too)
        return {"error": type(e).__name__, "message": str(e)[:200]}
    return {
        "shape": list(arr.shape),
        "dtype": str(arr.dtype),
        "spacing": [float(s) for s in props["spacing"]],
        "values": [float(v) if np.isfinite(v) else str(v) for v in arr.ravel()],
        "warning": "WARNING" in out.getvalue(),
    }


def describe(path):
    ending = "." + path.split(".")[-1]
    entry = {}
    # what skimage / tifffile give before nnU-Net's float32 cast (the native element type)
    try:
        raw = skimage.io.imread(path)
        entry["source_dtype"] = str(raw.dtype)
        entry["source_shape"] = list(raw.shape)
    except BaseException as e:  # noqa: BLE001
        entry["source_error"] = type(e).__name__
    natural, tiff = NaturalImage2DIO(), Tiff3DIO()
    if ending.lower() in NaturalImage2DIO.supported_file_endings:
        entry["natural_read_images"] = run(natural, "read_images", path)
        entry["natural_read_seg"] = run(natural, "read_seg", path)
    if ending.lower() in Tiff3DIO.supported_file_endings:
        entry["tiff3d_read_images"] = run(tiff, "read_images", path)
        entry["tiff3d_read_seg"] = run(tiff, "read_seg", path)
        if "shape" in entry["tiff3d_read_images"] or "shape" in entry["tiff3d_read_seg"]:
            entry["tiff3d_source_dtype"] = str(tifffile.imread(path).dtype)
    # the registry with an example file: NaturalImage2DIO, SimpleITKIO, Tiff3DIO, ...
    entry["registry"] = None
    for name, cls, key in (("NaturalImage2DIO", NaturalImage2DIO, "natural_read_images"),
                           ("Tiff3DIO", Tiff3DIO, "tiff3d_read_images")):
        if ending.lower() in cls.supported_file_endings and "shape" in entry.get(key, {}):
            entry["registry"] = name
            break
    return entry


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png_raw(path, arr, bits=16):
    """A PNG of `arr` (H × W × c, c = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA), 16 bits or grey of
    1/2/4 bits."""
    h, w, c = arr.shape
    color = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    if bits == 16:
        rows = [arr[y].astype(">u2").tobytes() for y in range(h)]
    else:
        rows = [np.packbits(np.unpackbits(arr[y].astype(np.uint8)[:, None], axis=1)[:, 8 - bits:])
                .tobytes() for y in range(h)]
    raw = b"".join(b"\x00" + r for r in rows)
    ihdr = struct.pack(">IIBBBBB", w, h, bits, color, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                + chunk(b"IEND", b""))


def write_png_adam7(path, arr):
    """An interlaced (Adam7) 8-bit RGB PNG of `arr` (H × W × 3)."""
    h, w, _ = arr.shape
    raw = b""
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
                           (1, 0, 2, 2), (0, 1, 1, 2)):
        sub = arr[y0::dy, x0::dx]
        if sub.shape[0] and sub.shape[1]:
            raw += b"".join(b"\x00" + row.tobytes() for row in sub)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                + chunk(b"IEND", b""))


def png_header_only(w, h):
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def tiff_absurd():
    """A little-endian TIFF whose one page claims 2^31 × 2^31 16-bit pixels."""
    entries = [(256, 4, 1, 1 << 31), (257, 4, 1, 1 << 31), (258, 3, 1, 16), (259, 3, 1, 1),
               (262, 3, 1, 1), (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, 1 << 31),
               (279, 4, 1, 16)]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        v = struct.pack("<H", value) + b"\0\0" if typ == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, typ, count) + v
    ifd += struct.pack("<I", 0)
    body = b"\0" * 16
    return b"II*\0" + struct.pack("<I", 8 + len(body)) + body + ifd


if __name__ == "__main__":
    main()
