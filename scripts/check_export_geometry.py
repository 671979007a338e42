#!/usr/bin/env python3
"""Checks with nibabel that `autoseg predict` exported every mask in its input's geometry.

For each mask PRED_DIR/<case><ending> and its first channel INPUT_DIR/<case>_0000<ending>:
  - the shapes are equal and the affines are identical (numpy array_equal, not just allclose),
  - sform/qform codes and matrices and the voxel sizes (pixdim) are equal,
  - the mask is uint8 (or uint16 beyond 254 labels);
and, where PRED_DIR/<case>.npz exists, its `probabilities` are float32 (c, z, y, x) with
(z, y, x) = the input's nibabel shape reversed, summing to 1 over c (argmax datasets).

Run with any venv holding numpy and nibabel, e.g. the peer venv:
    /work/peer-venv/bin/python scripts/check_export_geometry.py INPUT_DIR PRED_DIR [--ending .nii.gz]
Exit status 0 when every mask agrees.
"""
import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np


def check_case(image_path, mask_path, npz_path):
    faults = []
    image, mask = nib.load(str(image_path)), nib.load(str(mask_path))
    if image.shape != mask.shape:
        faults.append(f'shape {mask.shape} != input {image.shape}')
    if not np.array_equal(image.affine, mask.affine):
        diff = np.abs(image.affine - mask.affine).max()
        faults.append(f'affine differs (max abs diff {diff:g})')
    ih, mh = image.header, mask.header
    for key in ['sform_code', 'qform_code', 'srow_x', 'srow_y', 'srow_z', 'quatern_b', 'quatern_c',
                'quatern_d', 'qoffset_x', 'qoffset_y', 'qoffset_z']:
        if not np.array_equal(ih[key], mh[key]):
            faults.append(f'{key} {mh[key]} != input {ih[key]}')
    if not np.array_equal(ih['pixdim'][1:4], mh['pixdim'][1:4]):
        faults.append(f"pixdim {mh['pixdim'][1:4]} != input {ih['pixdim'][1:4]}")
    if mask.get_data_dtype() not in (np.uint8, np.uint16):
        faults.append(f'mask dtype {mask.get_data_dtype()}')
    if npz_path.is_file():
        p = np.load(npz_path)['probabilities']
        if p.dtype != np.float32 or p.shape[1:] != image.shape[:3][::-1]:
            faults.append(f'probabilities {p.dtype} {p.shape} vs input shape {image.shape}')
        elif not np.allclose(p.sum(0), 1.0, atol=1e-5):
            faults.append('probabilities do not sum to 1 over the channels')
    return faults


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('input_dir', type=Path)
    ap.add_argument('pred_dir', type=Path)
    ap.add_argument('--ending', default='.nii.gz')
    args = ap.parse_args()
    masks = sorted(args.pred_dir.glob('*' + args.ending))
    if not masks:
        sys.exit(f'{args.pred_dir}: no *{args.ending} masks')
    n_bad = 0
    for mask in masks:
        case = mask.name[:-len(args.ending)]
        image = args.input_dir / f'{case}_0000{args.ending}'
        faults = check_case(image, mask, args.pred_dir / f'{case}.npz')
        n_bad += bool(faults)
        print(f"{case}: {'OK' if not faults else '; '.join(faults)}")
    print(f'{len(masks) - n_bad} of {len(masks)} masks in their input geometry')
    sys.exit(1 if n_bad else 0)


if __name__ == '__main__':
    main()
