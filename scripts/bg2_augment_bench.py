# batchgeneratorsv2 0.3.6 configured as nnU-Net 2.8.1 get_training_transforms for a 3D 128^3
# patch (rotation +-30 deg, no dummy 2D, mirror (0,1,2), 5 deep-supervision levels), fed 205^3
# crops, 1 torch thread. Synthetic crop identical to trainer/examples/augment_bench.rs.
import sys, time
import numpy as np
import torch
from batchgeneratorsv2.helpers.scalar_type import RandomScalar
from batchgeneratorsv2.transforms.intensity.brightness import MultiplicativeBrightnessTransform
from batchgeneratorsv2.transforms.intensity.contrast import ContrastTransform, BGContrast
from batchgeneratorsv2.transforms.intensity.gamma import GammaTransform
from batchgeneratorsv2.transforms.intensity.gaussian_noise import GaussianNoiseTransform
from batchgeneratorsv2.transforms.noise.gaussian_blur import GaussianBlurTransform
from batchgeneratorsv2.transforms.spatial.low_resolution import SimulateLowResolutionTransform
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
from batchgeneratorsv2.transforms.utils.random import RandomTransform
from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTansform

torch.set_num_threads(1)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
ps = (128, 128, 128)
rot = (-30. / 360 * 2. * np.pi, 30. / 360 * 2. * np.pi)
t = [
    SpatialTransform(ps, patch_center_dist_from_border=0, random_crop=False, p_elastic_deform=0,
                     p_rotation=0.2, rotation=rot, p_scaling=0.2, scaling=(0.7, 1.4),
                     p_synchronize_scaling_across_axes=1, bg_style_seg_sampling=False,
                     border_mode_seg='constant', padding_value_seg=-1),
    RandomTransform(GaussianNoiseTransform(noise_variance=(0, 0.1), p_per_channel=1, synchronize_channels=True), apply_probability=0.1),
    RandomTransform(GaussianBlurTransform(blur_sigma=(0.5, 1.), synchronize_channels=False, synchronize_axes=False, p_per_channel=0.5, benchmark=True), apply_probability=0.2),
    RandomTransform(MultiplicativeBrightnessTransform(multiplier_range=BGContrast((0.75, 1.25)), synchronize_channels=False, p_per_channel=1), apply_probability=0.15),
    RandomTransform(ContrastTransform(contrast_range=BGContrast((0.75, 1.25)), preserve_range=True, synchronize_channels=False, p_per_channel=1), apply_probability=0.15),
    RandomTransform(SimulateLowResolutionTransform(scale=(0.5, 1), synchronize_channels=False, synchronize_axes=True, ignore_axes=None, allowed_channels=None, p_per_channel=0.5), apply_probability=0.25),
    RandomTransform(GammaTransform(gamma=BGContrast((0.7, 1.5)), p_invert_image=1, synchronize_channels=False, p_per_channel=1, p_retain_stats=1), apply_probability=0.1),
    RandomTransform(GammaTransform(gamma=BGContrast((0.7, 1.5)), p_invert_image=0, synchronize_channels=False, p_per_channel=1, p_retain_stats=1), apply_probability=0.3),
    MirrorTransform(allowed_axes=(0, 1, 2)),
    RemoveLabelTansform(-1, 0),
    DownsampleSegForDSTransform(ds_scales=[[1.0] * 3, [0.5] * 3, [0.25] * 3, [0.125] * 3, [0.0625] * 3]),
]
pipeline = ComposeTransforms(t)

z = y = x = 205
c = (z - 1) / 2
zz, yy, xx = np.meshgrid(np.arange(z), np.arange(y), np.arange(x), indexing='ij')
d2 = (zz - c) ** 2 + (yy - c) ** 2 + (xx - c) ** 2
inside = d2 <= (205 / 4) ** 2
data = torch.from_numpy((((zz * 7 + yy * 3 + xx) % 17) / 17.0 + inside).astype(np.float32)[None])
seg = torch.from_numpy(inside.astype(np.int16)[None])

np.random.seed(0); torch.manual_seed(0)
for _ in range(3):  # warm-up (blur benchmark cache)
    pipeline(image=data.clone(), segmentation=seg.clone())
total = 0.0
for _ in range(n):
    img, sg = data.clone(), seg.clone()
    st = time.perf_counter()
    pipeline(image=img, segmentation=sg)
    total += time.perf_counter() - st
full = total / n

sp = SpatialTransform(ps, 0, False, p_rotation=1, rotation=0.3, p_scaling=1, scaling=1.2,
                      p_synchronize_scaling_across_axes=1, bg_style_seg_sampling=False,
                      border_mode_seg='constant', padding_value_seg=-1)
m = max(1, (n + 3) // 4)
st = time.perf_counter()
for _ in range(m):
    sp(image=data.clone(), segmentation=seg.clone())
res = (time.perf_counter() - st) / m
print(f"bg2 full nnU-Net pipeline: {full * 1e3:.1f} ms/patch, {1 / full:.2f} patches/s/core")
print(f"bg2 rotation+scaling SpatialTransform only (incl. 2 clones): {res * 1e3:.1f} ms/patch")
