"""Known answers for the DA5 augmentation tests (trainer/src/augment/).

Calls batchgeneratorsv2's transforms (the classes nnU-Net 2.8.1's `nnUNetTrainerDA5` uses) with
forced parameters on small deterministic arrays and prints the numbers the Rust tests compare
against. Reference only, never a runtime dependency:

    PYTHONPATH=<site-packages with torch, scipy, batchgeneratorsv2> python scripts/golden_da5.py

The golden input is `((c * 11 + z * 7 + y * 3 + x * 5) % 17) * 0.25 - 1` (float32), the same
formula the Rust tests use.
"""

import math

import numpy as np
import scipy.stats as st
import torch
from batchgeneratorsv2.transforms.intensity.contrast import ContrastTransform
from batchgeneratorsv2.transforms.local.brightness_gradient import BrightnessGradientAdditiveTransform
from batchgeneratorsv2.transforms.local.local_gamma import LocalGammaTransform
from batchgeneratorsv2.transforms.noise.blank_rectangle import BlankRectangleTransform
from batchgeneratorsv2.transforms.noise.gaussian_blur import GaussianBlurTransform
from batchgeneratorsv2.transforms.noise.median_filter import MedianFilterTransform
from batchgeneratorsv2.transforms.noise.sharpen import SharpeningTransform
from batchgeneratorsv2.transforms.spatial.rot90 import Rot90Transform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.spatial.transpose import TransposeAxesTransform

torch.set_num_threads(1)


def golden_input(shape):
    c, z, y, x = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    return torch.from_numpy((((c * 11 + z * 7 + y * 3 + x * 5) % 17) * 0.25 - 1.0).astype(np.float32))


def lit(v):
    """A Rust f32 literal: the shortest repr that round-trips the float32 value."""
    text = str(np.float32(v))
    return text if any(ch in text for ch in ".en") else text + ".0"


def f32(values):
    return ", ".join(lit(v) for v in np.asarray(values, dtype=np.float32).ravel())


def show(name, values):
    values = np.asarray(values, dtype=np.float32).ravel()
    print(f"const {name}: [f32; {values.size}] = [{f32(values)}];")


def picks(name, flat, every=17):
    flat = np.asarray(flat, dtype=np.float32).ravel()
    idx = list(range(0, flat.size, every))
    body = ", ".join(f"({i}, {lit(flat[i])})" for i in idx)
    print(f"const {name}: [(usize, f32); {len(idx)}] = [{body}];")
    print(f"const {name.replace('PICKS', 'SUM')}: f32 = {lit(flat.astype(np.float64).sum())};")


def seg_picks(name, seg, every):
    flat = np.asarray(seg).ravel()
    idx = list(range(0, flat.size, every))
    body = ", ".join(f"({i}, {int(flat[i])})" for i in idx)
    print(f"const {name}: [(usize, i16); {len(idx)}] = [{body}];")
    counts = [int((flat == v).sum()) for v in (-1, 0, 1, 2)]
    print(f"const {name.replace('PICKS', 'COUNTS')}: [usize; 4] = {counts};")


def rot90_and_transpose():
    print("// rot90: torch.rot90 through Rot90Transform")
    t = Rot90Transform(1, (0, 1, 2, 3), {0, 1, 2})
    a = torch.arange(9).reshape(1, 1, 3, 3)
    out = t._apply_to_image(a.clone(), num_rot_per_combination=[1], axis_combinations=[[2, 3]])
    print("rot90 k=1 dims (y, x) of [[0,1,2],[10,11,12],[20,21,22]] ->",
          (out[0, 0] // 3 * 10 + out[0, 0] % 3).tolist())
    tt = TransposeAxesTransform({0, 1, 2})
    b = torch.arange(27).reshape(1, 3, 3, 3)
    out = tt._apply_to_image(b.clone(), axis_order=[0, 3, 1, 2])
    print("transpose order [2, 0, 1]: out[0, 1, 2, 0] =", int(out[0, 1, 2, 0]),
          "= in[0, 2, 0, 1] =", int(b[0, 2, 0, 1]))


def median():
    print("// median (scipy.ndimage.median_filter via MedianFilterTransform)")
    t = MedianFilterTransform((2, 8), 0, 1)
    a = golden_input((2, 4, 5, 6))
    out = t._apply_to_image(a.clone(), filter_sizes=[3, 4], apply_channel=[True, True])
    show("GOLDEN_MEDIAN_3D_C0_Z1", out[0, 1])
    show("GOLDEN_MEDIAN_3D_C1_Z3", out[1, 3])
    b = golden_input((1, 1, 5, 6))[:, 0]
    out = t._apply_to_image(b.clone(), filter_sizes=[2], apply_channel=[True])
    show("GOLDEN_MEDIAN_2D", out)


def blur():
    print("// blur with one sigma for all axes (GaussianBlurTransform(synchronize_axes=True))")
    t = GaussianBlurTransform((0.3, 1.5), synchronize_channels=False, synchronize_axes=True, p_per_channel=1)
    a = golden_input((2, 6, 7, 8))
    out = t._apply_to_image(a.clone(), apply_to_channel=torch.tensor([False, True]), sigmas=[[1.3, 1.3, 1.3]])
    show("GOLDEN_BLUR_C1_Z2", out[1, 2])
    assert torch.equal(out[0], a[0])


def contrast():
    print("// contrast without preserving the range")
    t = ContrastTransform(lambda **_: 1.0, preserve_range=False, synchronize_channels=False, p_per_channel=1)
    a = golden_input((2, 2, 3, 4))
    out = t._apply_to_image(a.clone(), apply_to_channel=torch.tensor([1]),
                            multipliers=torch.tensor([1.7], dtype=torch.float32))
    show("GOLDEN_CONTRAST_FREE_C1", out[1])


def rectangles():
    print("// blank rectangles (rectangle_value=torch.mean)")
    t = BlankRectangleTransform([[1, 2]] * 3, torch.mean, (1, 5), p_per_channel=1)
    a = golden_input((1, 4, 5, 6))
    rects = [([0, 1, 2], [2, 4, 5]), ([1, 0, 0], [4, 2, 4])]
    out = t._apply_to_image(a.clone(), apply_channel=[True], rectangles=[rects])
    show("GOLDEN_RECT_SUMS", [float(out[0, z].double().sum()) for z in range(4)])
    print(f"const GOLDEN_RECT_OVERLAP: f32 = {lit(out[0, 1, 1, 1])};")


LOC = (0.3, -0.2, 0.9)
SCALE = (1.7, 2.5, 0.8)


def local():
    print("// local transforms: loc", LOC, "scale", SCALE)
    shape = (5, 6, 7)
    loc = lambda shp, d: LOC[d]
    scale = lambda shp, d: SCALE[d]
    g = BrightnessGradientAdditiveTransform(scale, loc, max_strength=-2.5, same_for_all_channels=False,
                                            mean_centered=False, p_per_channel=1)
    kernel = g._generate_kernel(shape)
    picks("GOLDEN_KERNEL_PICKS", kernel)
    a = golden_input((1,) + shape)
    out = g._apply_to_image(a.clone(), **g.get_parameters(image=a))
    picks("GOLDEN_GRADIENT_PICKS", out)
    lg = LocalGammaTransform(scale, loc, gamma=2.7, same_for_all_channels=False, p_per_channel=1)
    out = lg._apply_to_image(a.clone(), **lg.get_parameters(image=a))
    picks("GOLDEN_LOCAL_GAMMA_PICKS", out)
    zs = [-40.0, -10.0, -3.3, -1.0, -0.7, -0.2, 0.0, 0.3, 0.75, 1.5, 2.9, 4.0, 8.0]
    body = ", ".join(f"({z!r}, {float(st.norm.cdf(z))!r})" for z in zs)
    # (f64 literals: Python's repr is the shortest round-trip form.)
    print(f"const GOLDEN_NDTR: [(f64, f64); {len(zs)}] = [{body}];")


def sharpen():
    print("// sharpening")
    t = SharpeningTransform((0.1, 1), 0, 1)
    a = golden_input((2, 4, 5, 6))
    out = t._apply_to_image(a.clone(), strengths=[0.9, 0.6], clamp_intensities=[False, False],
                            apply_channel=[False, True])
    show("GOLDEN_SHARPEN_3D_C1_Z3", out[1, 3])
    b = golden_input((1, 1, 5, 6))[:, 0]
    out = t._apply_to_image(b.clone(), strengths=[0.35], clamp_intensities=[False], apply_channel=[True])
    show("GOLDEN_SHARPEN_2D", out)


def spatial():
    print("// spatial: per-axis angles and scales, nearest and linear")
    angles = (0.31, -0.17, 0.52)
    scales = (0.8, 1.25, 1.1)
    # Two calls per draw: angles/scales per axis (dim 0, 1, 2), as SpatialTransform asks.
    for mode_image, mode_seg, name in (("nearest", "nearest", "NEAREST"), ("bilinear", "nearest", "SEG_NEAREST")):
        t = SpatialTransform((6, 7, 8), 0, False, p_rotation=1, rotation=lambda image, dim: angles[dim],
                             p_rot_per_axis=1, p_scaling=1, scaling=lambda image, dim: scales[dim],
                             p_synchronize_scaling_across_axes=0, border_mode_seg="constant",
                             padding_value_seg=-1, mode_image=mode_image, mode_seg=mode_seg)
        img = golden_input((1, 9, 10, 11))
        seg = ((img * 4 + 4).round().short() % 3)
        d = {"image": img, "segmentation": seg}
        np.random.seed(0)
        p = t.get_parameters(**d)
        out = t._apply_to_image(img.clone(), **p)
        out_seg = t._apply_to_segmentation(seg.clone(), **p)
        picks(f"GOLDEN_{name}_IMAGE_PICKS", out, every=11)
        seg_picks(f"GOLDEN_{name}_SEG_PICKS", out_seg, every=5)
    # 2D: (c, y, x), one angle used (the last), per-axis scales.
    t = SpatialTransform((9, 10), 0, False, p_rotation=1, rotation=lambda image, dim: (0.0, 0.6)[dim],
                         p_rot_per_axis=1, p_scaling=1, scaling=lambda image, dim: (1.2, 0.85)[dim],
                         p_synchronize_scaling_across_axes=0, border_mode_seg="constant",
                         padding_value_seg=-1, mode_image="nearest", mode_seg="nearest")
    img = golden_input((1, 1, 13, 14))[:, 0]
    np.random.seed(0)
    p = t.get_parameters(image=img)
    out = t._apply_to_image(img.clone(), **p)
    show("GOLDEN_NEAREST_2D", out)


if __name__ == "__main__":
    rot90_and_transpose()
    median()
    blur()
    contrast()
    rectangles()
    local()
    sharpen()
    spatial()
