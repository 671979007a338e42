//! The spatial transform: rotation, scaling and (optionally) elastic deformation in one
//! resampling pass, or a pure centre crop when none fires. The only transform that allocates
//! new arrays.
//!
//! Geometry (batchgeneratorsv2 `SpatialTransform` with `align_corners=False` and the centre crop
//! nnU-Net uses): output voxel `o` reads the input at
//! `q = M · (o - (P - 1) / 2 + d(o)) + (S - 1) / 2` per axis `(z, y, x)`, where `P` is the patch,
//! `S` the input shape, `d` the elastic displacement (zero without one) and
//! `M = Rz(a2) · Ry(a1) · Rx(a0) · diag(s)` in array-index coordinates (`Rx` turns the `(y, x)`
//! plane). Scale `s > 1` zooms out. Images are sampled trilinearly with zeros outside. Label maps
//! (every channel on its own) are sampled as nnU-Net does (each label's one-hot map sampled
//! trilinearly, the largest wins, ties to the lowest label), computed in one pass from the 8
//! neighbours' weights; voxels whose `q` leaves `[0, S - 1]` on any axis become -1. nnU-Net
//! compares the one-hot values in fp16; we compare in f32, so near-ties may resolve differently.
//! No label is ever invented. The resampler walks output rows; points whose 8 neighbours all
//! lie inside take a fast path without border handling, 8 at a time with AVX2 where the CPU has
//! it (`spatial/resample/avx2.rs`, bit-identical).
//!
//! [`SpatialInterpolation`] can switch images and/or label maps to nearest-neighbour sampling
//! (bg2 `mode_image` / `mode_seg='nearest'`): the voxel at `round(q)` (half to even, as torch's
//! `grid_sample`), zero (image) or -1 (label maps) when that voxel lies outside. torch computes
//! `q` in f32 from an f32 grid and we in f64, so points exactly halfway between two voxels (an
//! identity or half-voxel-shifted grid) may round the other way.
//!
//! nnU-Net: `get_training_transforms` → `SpatialTransform(p_rotation=0.2, p_scaling=0.2,
//! scaling=(0.7, 1.4), p_synchronize_scaling_across_axes=1, border_mode_seg='constant',
//! padding_value_seg=-1, bg_style_seg_sampling=False)` ([`RandomSpatial::nnunet`]);
//! `nnUNetTrainerDA5` → `SpatialTransform(p_rotation=0.4, p_rot_per_axis=0.5, p_scaling=0.2,
//! scaling=(0.7, 1.43), p_synchronize_scaling_across_axes=0, ..)` ([`RandomSpatial::da5`]);
//! `nnUNetTrainer_DASegOrd0`, `nnUNetTrainerDA5Segord0` (`mode_seg='nearest'`) and
//! `nnUNetTrainerDA5ord0` (`mode_image='nearest', mode_seg='nearest'`).

use std::sync::Arc;

use ndarray::{Array4, ArrayView4};
use rand::Rng;

use super::elastic::ElasticDeformation;
use super::setup::{DaSetup, SpatialMode};
use super::uniform;
use crate::sampling::DataError;

mod resample;

/// A 3 × 3 matrix acting on `(z, y, x)` index coordinates (row-major).
pub type Matrix3 = [[f64; 3]; 3];

/// How the spatial transform samples images and label maps when it resamples (a pure crop
/// copies voxels either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SpatialInterpolation {
    /// nnU-Net's default: images trilinear, label maps by the largest trilinearly sampled
    /// one-hot value.
    #[default]
    Default,
    /// Images trilinear, label maps nearest neighbour (`mode_seg='nearest'`:
    /// `nnUNetTrainer_DASegOrd0`, `nnUNetTrainerDA5Segord0`).
    SegNearest,
    /// Images and label maps nearest neighbour (`mode_image='nearest', mode_seg='nearest'`:
    /// `nnUNetTrainerDA5ord0`).
    Nearest,
}

/// Draws nnU-Net's spatial transform parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomSpatial {
    /// Output patch `(z, y, x)`.
    pub patch: [usize; 3],
    /// Which axes rotate and scale.
    pub mode: SpatialMode,
    /// Probability of rotating (0.2; DA5 0.4).
    pub p_rotation: f64,
    /// Angles drawn from `U(-rotation_max, rotation_max)` per axis (radians).
    pub rotation_max: f64,
    /// When rotating, probability that each axis keeps its angle; the others get 0 (bg2
    /// `p_rot_per_axis`; 1: no coin is tossed; DA5 0.5). In-plane modes toss one coin for
    /// their single angle (bg2 draws two in 2D and uses the last).
    pub p_rot_per_axis: f64,
    /// Probability of scaling (0.2).
    pub p_scaling: f64,
    /// Scale factor range (0.7, 1.4; DA5 (0.7, 1.43)).
    pub scaling: (f64, f64),
    /// When scaling, probability of one factor for all axes rather than one per axis (bg2
    /// `p_synchronize_scaling_across_axes`; 1: always one, no coin is tossed; DA5 0). In-plane
    /// modes never scale axis 0.
    pub p_synchronize_scaling: f64,
    /// How the drawn transforms sample images and label maps.
    pub interpolation: SpatialInterpolation,
    /// Probability of an elastic deformation (0 in nnU-Net's default pipeline).
    pub p_elastic: f64,
    /// Range of the deformation's Gaussian sigma as a fraction of the patch edge, drawn per
    /// axis (bg2 `elastic_deform_scale`, default (0, 0.2)).
    pub elastic_scale: (f64, f64),
    /// Range of the largest displacement in voxels, drawn per axis (bg2
    /// `elastic_deform_magnitude`, default (0, 0.2)).
    pub elastic_magnitude: (f64, f64),
}

impl RandomSpatial {
    /// nnU-Net's settings for `setup` (no elastic deformation; bg2's default ranges).
    pub fn nnunet(setup: &DaSetup) -> RandomSpatial {
        RandomSpatial {
            patch: setup.patch,
            mode: setup.mode,
            p_rotation: 0.2,
            rotation_max: setup.rotation_max,
            p_rot_per_axis: 1.0,
            p_scaling: 0.2,
            scaling: (0.7, 1.4),
            p_synchronize_scaling: 1.0,
            interpolation: SpatialInterpolation::Default,
            p_elastic: 0.0,
            elastic_scale: (0.0, 0.2),
            elastic_magnitude: (0.0, 0.2),
        }
    }

    /// nnU-Net's DA5 settings for `setup` (from [`DaSetup::da5`]): rotation with p 0.4, each
    /// axis keeping its angle with p 0.5; scaling with p 0.2 by (0.7, 1.43), one factor per
    /// axis; no elastic deformation.
    pub fn da5(setup: &DaSetup) -> RandomSpatial {
        RandomSpatial {
            p_rotation: 0.4,
            p_rot_per_axis: 0.5,
            scaling: (0.7, 1.43),
            p_synchronize_scaling: 0.0,
            ..RandomSpatial::nnunet(setup)
        }
    }

    /// Draws one transform: rotation with `p_rotation`, scaling with `p_scaling`, elastic
    /// deformation with `p_elastic`, else a crop. The coins of elastic deformation, per-axis
    /// rotation and per-axis scaling are only tossed when their probability asks for one
    /// (`p_elastic > 0`, `p_rot_per_axis < 1`, `p_synchronize_scaling < 1`), so the default
    /// pipeline's random stream is unchanged.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> Spatial {
        let do_rotation = rng.gen::<f64>() < self.p_rotation;
        let do_scaling = rng.gen::<f64>() < self.p_scaling;
        let do_elastic = self.p_elastic > 0.0 && rng.gen::<f64>() < self.p_elastic;
        if !do_rotation && !do_scaling && !do_elastic {
            return Spatial::crop(self.patch).with_interpolation(self.interpolation);
        }
        let mut angles = [0.0; 3];
        if do_rotation {
            let r = self.rotation_max;
            let rotated = if self.mode.in_plane() { 2..3 } else { 0..3 };
            for a in rotated.clone() {
                angles[a] = uniform(rng, -r, r);
            }
            if self.p_rot_per_axis < 1.0 {
                for a in rotated {
                    if rng.gen::<f64>() >= self.p_rot_per_axis {
                        angles[a] = 0.0;
                    }
                }
            }
        }
        let mut scales = [1.0; 3];
        if do_scaling {
            let (lo, hi) = self.scaling;
            if self.p_synchronize_scaling >= 1.0 || rng.gen::<f64>() < self.p_synchronize_scaling {
                scales = [uniform(rng, lo, hi); 3];
            } else {
                let scaled = if self.mode.in_plane() { 1..3 } else { 0..3 };
                for a in scaled {
                    scales[a] = uniform(rng, lo, hi);
                }
            }
        }
        let mut spatial = if do_rotation || do_scaling {
            Spatial::rotate_scale_axes(self.patch, self.mode, angles, scales)
        } else {
            Spatial::crop(self.patch)
        }
        .with_interpolation(self.interpolation);
        if do_elastic {
            let deformation = ElasticDeformation::sample(
                rng,
                self.patch,
                self.mode.in_plane(),
                self.elastic_scale,
                self.elastic_magnitude,
            );
            spatial.displacement = Some(Arc::new(deformation.field(self.patch)));
        }
        spatial
    }
}

/// A deterministic spatial transform.
#[derive(Clone, Debug, PartialEq)]
pub struct Spatial {
    /// Output patch `(z, y, x)`.
    pub patch: [usize; 3],
    /// The combined rotation-scaling matrix; `None`: identity.
    pub matrix: Option<Matrix3>,
    /// Elastic displacement `(3, z, y, x)` in voxels, added to the centred output grid before
    /// the matrix; a field with `z = 1` applies to every slice. `None`: no deformation. With
    /// neither a matrix nor a displacement the transform is a pure centre crop.
    pub displacement: Option<Arc<Array4<f32>>>,
    /// How images and label maps are sampled when the transform resamples.
    pub interpolation: SpatialInterpolation,
}

impl Spatial {
    /// The centre crop (nnU-Net: `crop_tensor` around `floor(S / 2)`).
    pub fn crop(patch: [usize; 3]) -> Spatial {
        Spatial {
            patch,
            matrix: None,
            displacement: None,
            interpolation: SpatialInterpolation::Default,
        }
    }

    /// Rotation by `angles` (about axes 0, 1, 2) after isotropic `scale`. In-plane modes use
    /// only `angles[2]`, as a 2D rotation of `(y, x)` (nnU-Net: `create_affine_matrix_2d`).
    pub fn rotate_scale(
        patch: [usize; 3],
        mode: SpatialMode,
        angles: [f64; 3],
        scale: f64,
    ) -> Spatial {
        Spatial::rotate_scale_axes(patch, mode, angles, [scale; 3])
    }

    /// Rotation by `angles` after scaling each axis `(z, y, x)` by its own factor (bg2
    /// `create_affine_matrix_3d(angles, scales)`); in-plane modes use only `angles[2]` and
    /// `scales[1..]` (`create_affine_matrix_2d`).
    pub fn rotate_scale_axes(
        patch: [usize; 3],
        mode: SpatialMode,
        angles: [f64; 3],
        scales: [f64; 3],
    ) -> Spatial {
        let scaling = diag([
            if mode.in_plane() { 1.0 } else { scales[0] },
            scales[1],
            scales[2],
        ]);
        let rotation = if mode.in_plane() {
            rot_x(angles[2])
        } else {
            matmul(
                &matmul(&rot_z(angles[2]), &rot_y(angles[1])),
                &rot_x(angles[0]),
            )
        };
        Spatial {
            patch,
            matrix: Some(matmul(&rotation, &scaling)),
            displacement: None,
            interpolation: SpatialInterpolation::Default,
        }
    }

    /// The transform sampling images and label maps as `interpolation` says.
    pub fn with_interpolation(mut self, interpolation: SpatialInterpolation) -> Spatial {
        self.interpolation = interpolation;
        self
    }

    /// The transform with an elastic displacement `(3, z, y, x)` (voxels, per output voxel,
    /// components in `(z, y, x)` order); `z` may be 1 (one field for every slice). See
    /// [`ElasticDeformation`] for nnU-Net's random fields.
    ///
    /// # Errors
    /// [`DataError::ElasticField`] when the field does not match the patch.
    pub fn with_elastic(mut self, field: Array4<f32>) -> Result<Spatial, DataError> {
        let [pz, py, px] = self.patch;
        let s = field.shape();
        if s[0] != 3 || (s[1] != pz && s[1] != 1) || s[2] != py || s[3] != px {
            return Err(DataError::ElasticField {
                patch: self.patch,
                found: [s[0], s[1], s[2], s[3]],
            });
        }
        self.displacement = Some(Arc::new(field));
        Ok(self)
    }

    /// Whether the transform interpolates (rotation, scaling or deformation) rather than crops.
    pub fn resamples(&self) -> bool {
        self.matrix.is_some() || self.displacement.is_some()
    }

    /// Applies the transform to data `(c, z, y, x)` and seg `(k, z, y, x)` of one sample. Every
    /// seg channel (k ≥ 1; a cascade patch carries the previous stage's seg as channel 1) is
    /// sampled on its own; voxels outside the input are -1 in every seg channel. Resampling
    /// follows [`Spatial::interpolation`].
    pub fn apply(
        &self,
        data: ArrayView4<'_, f32>,
        seg: ArrayView4<'_, i16>,
    ) -> (Array4<f32>, Array4<i16>) {
        if !self.resamples() {
            let shape = &data.shape()[1..];
            let lower =
                std::array::from_fn(|a| (shape[a] / 2) as isize - (self.patch[a] / 2) as isize);
            return (
                crop_rows(data, lower, self.patch, 0.0),
                crop_rows(seg, lower, self.patch, -1),
            );
        }
        self.resample_with(data, seg, true)
    }

    /// Resamples data and seg through the transform (module docs for the geometry), with the
    /// AVX2 kernel only when `allow_simd` (tests compare both paths).
    fn resample_with(
        &self,
        data: ArrayView4<'_, f32>,
        seg: ArrayView4<'_, i16>,
        allow_simd: bool,
    ) -> (Array4<f32>, Array4<i16>) {
        let matrix = self.matrix.unwrap_or_else(|| diag([1.0; 3]));
        let displacement = self.displacement.as_deref();
        match self.interpolation {
            SpatialInterpolation::Default => {
                resample::resample(matrix, displacement, self.patch, data, seg, allow_simd)
            }
            SpatialInterpolation::SegNearest => {
                // Image channels through the trilinear resampler with no seg channel.
                let no_seg =
                    Array4::<i16>::zeros((0, seg.shape()[1], seg.shape()[2], seg.shape()[3]));
                let (data, _) = resample::resample(
                    matrix,
                    displacement,
                    self.patch,
                    data,
                    no_seg.view(),
                    allow_simd,
                );
                let seg = resample::resample_nearest(matrix, displacement, self.patch, seg, -1);
                (data, seg)
            }
            SpatialInterpolation::Nearest => (
                resample::resample_nearest(matrix, displacement, self.patch, data, 0.0),
                resample::resample_nearest(matrix, displacement, self.patch, seg, -1),
            ),
        }
    }
}

/// `array[:, lower.. lower + size]` with `pad` outside, copied one contiguous x row at a time
/// (the same result as `sampling::crop_and_pad`).
fn crop_rows<T: Copy>(
    array: ArrayView4<'_, T>,
    lower: [isize; 3],
    size: [usize; 3],
    pad: T,
) -> Array4<T> {
    let array = array.as_standard_layout();
    let src = array.as_slice().expect("standard layout is contiguous");
    let n_channels = array.shape()[0];
    let shape: [usize; 3] = std::array::from_fn(|a| array.shape()[a + 1]);
    let mut out = Array4::from_elem((n_channels, size[0], size[1], size[2]), pad);
    let dst = out.as_slice_mut().expect("fresh array is contiguous");
    // Output index range `[lo, hi)` per axis that reads inside the input.
    let span: [(usize, usize); 3] = std::array::from_fn(|a| {
        let lo = (-lower[a]).clamp(0, size[a] as isize) as usize;
        let hi = (shape[a] as isize - lower[a]).clamp(lo as isize, size[a] as isize) as usize;
        (lo, hi)
    });
    let (x_lo, x_hi) = span[2];
    if x_hi == x_lo {
        return out;
    }
    for c in 0..n_channels {
        for z in span[0].0..span[0].1 {
            let sz = (z as isize + lower[0]) as usize;
            for y in span[1].0..span[1].1 {
                let sy = (y as isize + lower[1]) as usize;
                let sx = (x_lo as isize + lower[2]) as usize;
                let from = ((c * shape[0] + sz) * shape[1] + sy) * shape[2] + sx;
                let to = ((c * size[0] + z) * size[1] + y) * size[2] + x_lo;
                dst[to..to + x_hi - x_lo].copy_from_slice(&src[from..from + x_hi - x_lo]);
            }
        }
    }
    out
}

fn diag(d: [f64; 3]) -> Matrix3 {
    [[d[0], 0.0, 0.0], [0.0, d[1], 0.0], [0.0, 0.0, d[2]]]
}

fn rot_x(a: f64) -> Matrix3 {
    let (s, c) = a.sin_cos();
    [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]]
}

fn rot_y(a: f64) -> Matrix3 {
    let (s, c) = a.sin_cos();
    [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]
}

fn rot_z(a: f64) -> Matrix3 {
    let (s, c) = a.sin_cos();
    [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
}

fn matmul(a: &Matrix3, b: &Matrix3) -> Matrix3 {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::BTreeSet;
    use std::f64::consts::PI;

    fn blob(shape: [usize; 3], centre: [f64; 3], sigma: f64) -> Array4<f32> {
        Array4::from_shape_fn((1, shape[0], shape[1], shape[2]), |(_, z, y, x)| {
            let d2 = (z as f64 - centre[0]).powi(2)
                + (y as f64 - centre[1]).powi(2)
                + (x as f64 - centre[2]).powi(2);
            (-d2 / (2.0 * sigma * sigma)).exp() as f32
        })
    }

    fn centroid(a: &Array4<f32>) -> [f64; 3] {
        let (mut sum, mut acc) = (0.0, [0.0; 3]);
        for ((_, z, y, x), &v) in a.indexed_iter() {
            let v = v as f64;
            sum += v;
            acc[0] += v * z as f64;
            acc[1] += v * y as f64;
            acc[2] += v * x as f64;
        }
        acc.map(|c| c / sum)
    }

    /// Solves `m · p = r` (Cramer's rule) for the expected output position.
    fn solve(m: &Matrix3, r: [f64; 3]) -> [f64; 3] {
        let det = |m: &Matrix3| {
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
                - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        };
        let d = det(m);
        std::array::from_fn(|col| {
            let mut mc = *m;
            for row in 0..3 {
                mc[row][col] = r[row];
            }
            det(&mc) / d
        })
    }

    #[test]
    fn rotated_point_lands_where_the_matrix_says() {
        let shape = [41, 45, 49];
        let patch = [33, 37, 35];
        let point = [24.0, 17.0, 28.0];
        let data = blob(shape, point, 1.5);
        let seg = Array4::<i16>::zeros((1, shape[0], shape[1], shape[2]));
        let t = Spatial::rotate_scale(patch, SpatialMode::Volumetric, [0.3, -0.2, 0.45], 1.1);
        let (out, _) = t.apply(data.view(), seg.view());
        let m = t.matrix.unwrap();
        let rel: [f64; 3] = std::array::from_fn(|a| point[a] - (shape[a] as f64 - 1.0) / 2.0);
        let p = solve(&m, rel);
        let want: [f64; 3] = std::array::from_fn(|a| p[a] + (patch[a] as f64 - 1.0) / 2.0);
        let got = centroid(&out);
        for a in 0..3 {
            assert!(
                (got[a] - want[a]).abs() < 0.05,
                "axis {a}: {got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn quarter_turn_moves_a_voxel_exactly() {
        // Rx(90°) maps output (y, x) offsets (dy, dx) to input offsets (-dx, dy).
        let mut data = Array4::<f32>::zeros((1, 5, 9, 9));
        data[[0, 2, 4 - 3, 4 + 1]] = 1.0;
        let seg = data.mapv(|v| v as i16);
        let t = Spatial::rotate_scale(
            [5, 9, 9],
            SpatialMode::Volumetric,
            [PI / 2.0, 0.0, 0.0],
            1.0,
        );
        let (out, out_seg) = t.apply(data.view(), seg.view());
        assert!((out[[0, 2, 4 + 1, 4 + 3]] - 1.0).abs() < 1e-5);
        assert!((out.sum() - 1.0).abs() < 1e-4);
        assert_eq!(out_seg[[0, 2, 5, 7]], 1);
        assert_eq!(out_seg.iter().filter(|&&v| v == 1).count(), 1);
    }

    #[test]
    fn scaling_shrinks_a_sphere_volume_by_s_cubed() {
        let n = 64;
        let r = 14.0;
        let c = (n as f64 - 1.0) / 2.0;
        let seg = Array4::from_shape_fn((1, n, n, n), |(_, z, y, x)| {
            let d2 = (z as f64 - c).powi(2) + (y as f64 - c).powi(2) + (x as f64 - c).powi(2);
            i16::from(d2 <= r * r)
        });
        let data = seg.mapv(f32::from);
        let before = seg.iter().filter(|&&v| v == 1).count() as f64;
        for s in [0.8, 1.3] {
            let t = Spatial::rotate_scale([n, n, n], SpatialMode::Volumetric, [0.2, 0.1, -0.3], s);
            let (_, out) = t.apply(data.view(), seg.view());
            let after = out.iter().filter(|&&v| v == 1).count() as f64;
            let ratio = after / before * s * s * s;
            assert!(
                (ratio - 1.0).abs() < 0.03,
                "scale {s}: volume ratio × s³ = {ratio}"
            );
        }
    }

    #[test]
    fn labels_are_never_invented() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let seg = Array4::from_shape_fn((1, 30, 30, 30), |(_, z, y, x)| {
            [0i16, 2, 5, -1][(z / 4 + y / 5 + x / 3) % 4]
        });
        let data = seg.mapv(f32::from);
        let input: BTreeSet<i16> = seg.iter().copied().collect();
        for _ in 0..5 {
            let angles = [
                rng.gen_range(-PI..PI),
                rng.gen_range(-PI..PI),
                rng.gen_range(-PI..PI),
            ];
            let t = Spatial::rotate_scale([24, 26, 28], SpatialMode::Volumetric, angles, 1.2);
            let (_, out) = t.apply(data.view(), seg.view());
            let labels: BTreeSet<i16> = out.iter().copied().collect();
            assert!(labels.is_subset(&input), "{labels:?} ⊄ {input:?}");
        }
    }

    #[test]
    fn identity_matrix_equals_the_centre_crop() {
        let data = Array4::from_shape_fn((2, 12, 14, 16), |(c, z, y, x)| {
            (c * 1000 + z * 100 + y * 10 + x) as f32
        });
        let seg = data
            .slice(ndarray::s![0..1, .., .., ..])
            .mapv(|v| (v as i32 % 7) as i16);
        let crop = Spatial::crop([8, 10, 20]).apply(data.view(), seg.view());
        let resampled = Spatial::rotate_scale([8, 10, 20], SpatialMode::Volumetric, [0.0; 3], 1.0)
            .apply(data.view(), seg.view());
        assert_eq!(crop.1, resampled.1);
        let diff = (&crop.0 - &resampled.0).mapv(f32::abs);
        assert!(diff.iter().all(|&d| d < 1e-3));
        // The crop pads x (20 > 16) with 0 / -1, two voxels on each side.
        assert_eq!(crop.1[[0, 0, 0, 0]], -1);
        assert_eq!(crop.0[[1, 0, 0, 2]], data[[1, 2, 2, 0]]);
    }

    #[test]
    fn in_plane_rotation_keeps_slices_apart() {
        let data = Array4::from_shape_fn((1, 4, 20, 20), |(_, z, _, _)| z as f32);
        let seg = Array4::<i16>::zeros((1, 4, 20, 20));
        let t = Spatial::rotate_scale([4, 12, 12], SpatialMode::Dummy2d, [1.0, 1.0, 0.7], 1.2);
        let (out, _) = t.apply(data.view(), seg.view());
        let slices = Array3::from_shape_fn((4, 12, 12), |(z, y, x)| out[[0, z, y, x]] - z as f32);
        assert!(slices.iter().all(|d| d.abs() < 1e-5));
    }

    #[test]
    fn seg_channels_are_voted_independently() {
        // Channel 0 labels z halves, channel 1 (a cascade's previous stage) x halves; rotating
        // a quarter turn about z maps output x to input -y, so channel 1 follows y instead.
        let shape = [10, 12, 12];
        let seg = Array4::from_shape_fn((2, 10, 12, 12), |(c, z, _, x)| {
            if c == 0 {
                i16::from(z >= 5) * 3
            } else {
                i16::from(x >= 6) * 7
            }
        });
        let data = Array4::<f32>::zeros((1, shape[0], shape[1], shape[2]));
        let one = Spatial::rotate_scale([10, 12, 16], SpatialMode::Dummy2d, [0.0, 0.0, 0.0], 1.0)
            .apply(data.view(), seg.view())
            .1;
        assert_eq!(one.shape(), &[2, 10, 12, 16]);
        // 16 > 12 along x: two voxels on each side are outside, -1 in both channels.
        for c in 0..2 {
            assert!((0..10).all(|z| one[[c, z, 3, 0]] == -1 && one[[c, z, 3, 15]] == -1));
        }
        assert_eq!((one[[0, 2, 3, 5]], one[[0, 7, 3, 5]]), (0, 3));
        assert_eq!((one[[1, 2, 3, 5]], one[[1, 2, 3, 10]]), (0, 7));
        let turned = Spatial::rotate_scale(
            [10, 12, 12],
            SpatialMode::Volumetric,
            [PI / 2.0, 0.0, 0.0],
            1.0,
        )
        .apply(data.view(), seg.view())
        .1;
        for ((c, z, y, x), &v) in turned.indexed_iter() {
            let want = if c == 0 {
                i16::from(z >= 5) * 3
            } else {
                // Output (y, x) reads input x = y (offsets: dx_in = dy_out).
                i16::from(y >= 6) * 7
            };
            assert_eq!(v, want, "channel {c} at ({z}, {y}, {x})");
        }
    }

    #[test]
    fn crop_moves_every_seg_channel() {
        let seg = Array4::from_shape_fn((2, 6, 6, 6), |(c, z, y, x)| {
            (c * 100 + z * 10 + y + x) as i16
        });
        let data = seg.mapv(f32::from);
        let (out_data, out_seg) = Spatial::crop([4, 4, 8]).apply(data.view(), seg.view());
        assert_eq!(out_seg.shape(), &[2, 4, 4, 8]);
        // lower corner (1, 1, -1): x pads one voxel on each side.
        assert_eq!(out_seg[[1, 0, 0, 0]], -1);
        assert_eq!(out_seg[[1, 0, 0, 1]], 100 + 10 + 1);
        assert_eq!(out_data[[1, 3, 3, 6]], 149.0);
    }

    #[test]
    fn zero_displacement_changes_nothing() {
        let data = blob([30, 32, 34], [14.0, 17.0, 15.0], 2.0);
        let seg = data.mapv(|v| i16::from(v > 0.5));
        let patch = [24, 26, 28];
        let zero = Array4::<f32>::zeros((3, 24, 26, 28));
        let rotated = Spatial::rotate_scale(patch, SpatialMode::Volumetric, [0.2, 0.4, -0.3], 0.9);
        let deformed = rotated.clone().with_elastic(zero.clone()).unwrap();
        assert!(deformed.resamples());
        assert_eq!(
            rotated.apply(data.view(), seg.view()),
            deformed.apply(data.view(), seg.view())
        );
        // Without a matrix, a zero field resamples through the identity (S - P even: a crop).
        let plain = Spatial::crop(patch).with_elastic(zero).unwrap();
        let crop = Spatial::crop(patch).apply(data.view(), seg.view());
        let (d, s) = plain.apply(data.view(), seg.view());
        assert_eq!(s, crop.1);
        assert!(d
            .iter()
            .zip(crop.0.iter())
            .all(|(a, b)| (a - b).abs() < 1e-6));
    }

    #[test]
    fn constant_displacement_shifts_the_blob_by_minus_d() {
        let shape = [41, 45, 49];
        let patch = [33, 37, 35];
        let point = [22.0, 21.0, 26.0];
        let d = [1.5f32, -2.25, 3.0];
        let data = blob(shape, point, 1.5);
        let seg = Array4::<i16>::zeros((1, shape[0], shape[1], shape[2]));
        let field = Array4::from_shape_fn((3, patch[0], patch[1], patch[2]), |(a, _, _, _)| d[a]);
        let t = Spatial::rotate_scale(patch, SpatialMode::Volumetric, [0.3, -0.2, 0.45], 1.1);
        let m = t.matrix.unwrap();
        let (out, _) = t
            .with_elastic(field)
            .unwrap()
            .apply(data.view(), seg.view());
        // q = M (o - c_out + d) + c_in: the blob appears at M⁻¹ (X - c_in) + c_out - d.
        let rel: [f64; 3] = std::array::from_fn(|a| point[a] - (shape[a] as f64 - 1.0) / 2.0);
        let p = solve(&m, rel);
        let got = centroid(&out);
        for a in 0..3 {
            let want = p[a] + (patch[a] as f64 - 1.0) / 2.0 - d[a] as f64;
            assert!(
                (got[a] - want).abs() < 0.05,
                "axis {a}: {got:?}, want {want}"
            );
        }
    }

    #[test]
    fn deformation_never_invents_labels() {
        let seg = Array4::from_shape_fn((2, 30, 30, 30), |(c, z, y, x)| {
            [0i16, 2, 5, -1][(z / 4 + y / 5 + x / 3 + c) % 4]
        });
        let data = Array4::<f32>::zeros((1, 30, 30, 30));
        let input: BTreeSet<i16> = seg.iter().copied().collect();
        let random = RandomSpatial {
            p_elastic: 1.0,
            elastic_scale: (0.05, 0.2),
            elastic_magnitude: (2.0, 6.0),
            ..RandomSpatial::nnunet(&DaSetup::nnunet(&[24, 26, 28]).unwrap())
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..4 {
            let t = random.sample(&mut rng);
            assert!(t.displacement.is_some());
            let (_, out) = t.apply(data.view(), seg.view());
            let labels: BTreeSet<i16> = out.iter().copied().collect();
            assert!(labels.is_subset(&input), "{labels:?} ⊄ {input:?}");
        }
    }

    #[test]
    fn elastic_fields_must_match_the_patch() {
        let t = Spatial::crop([4, 5, 6]);
        assert!(t.clone().with_elastic(Array4::zeros((3, 1, 5, 6))).is_ok());
        assert!(matches!(
            t.with_elastic(Array4::zeros((3, 4, 6, 5))).unwrap_err(),
            DataError::ElasticField {
                patch: [4, 5, 6],
                found: [3, 4, 6, 5]
            }
        ));
    }

    #[test]
    fn sampling_fires_with_nnunet_probabilities() {
        let setup = DaSetup::nnunet(&[64, 64, 64]).unwrap();
        let random = RandomSpatial::nnunet(&setup);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let n = 20_000;
        let draws: Vec<Spatial> = (0..n).map(|_| random.sample(&mut rng)).collect();
        assert!(draws.iter().all(|t| t.displacement.is_none()));
        let crops = draws.iter().filter(|t| t.matrix.is_none()).count() as f64;
        // P(neither) = 0.8 · 0.8.
        assert!((crops / n as f64 - 0.64).abs() < 0.015);
    }

    /// The golden input of `scripts/golden_da5.py` and its label map `k mod 3`.
    fn golden(shape: [usize; 3]) -> (Array4<f32>, Array4<i16>) {
        let k = Array4::from_shape_fn((1, shape[0], shape[1], shape[2]), |(c, z, y, x)| {
            ((c * 11 + z * 7 + y * 3 + x * 5) % 17) as i16
        });
        (k.mapv(|v| f32::from(v) * 0.25 - 1.0), k.mapv(|v| v % 3))
    }

    fn check_picks(got: &Array4<f32>, picks: &[(usize, f32)], sum: f32, tol: f32) {
        let flat: Vec<f32> = got.iter().copied().collect();
        for &(i, want) in picks {
            assert!(
                (flat[i] - want).abs() <= tol,
                "voxel {i}: {} vs {want}",
                flat[i]
            );
        }
        assert!((flat.iter().sum::<f32>() - sum).abs() < 1e-3);
    }

    fn check_seg(got: &Array4<i16>, picks: &[(usize, i16)], counts: [usize; 4]) {
        let flat: Vec<i16> = got.iter().copied().collect();
        for &(i, want) in picks {
            assert_eq!(flat[i], want, "voxel {i}");
        }
        let found: [usize; 4] =
            std::array::from_fn(|l| flat.iter().filter(|&&v| v == l as i16 - 1).count());
        assert_eq!(found, counts);
    }

    // Golden values: scripts/golden_da5.py (bg2 `SpatialTransform` with angles (0.31, -0.17,
    // 0.52), scales (0.8, 1.25, 1.1) per axis, a (9, 10, 11) input and a (6, 7, 8) patch;
    // `mode_image`/`mode_seg` nearest, and bilinear image with nearest seg).
    #[test]
    fn nearest_modes_match_bg2() {
        let (data, seg) = golden([9, 10, 11]);
        let t = Spatial::rotate_scale_axes(
            [6, 7, 8],
            SpatialMode::Volumetric,
            [0.31, -0.17, 0.52],
            [0.8, 1.25, 1.1],
        );
        let (d, s) = t
            .clone()
            .with_interpolation(SpatialInterpolation::Nearest)
            .apply(data.view(), seg.view());
        check_picks(
            &d,
            &GOLDEN_NEAREST_IMAGE_PICKS,
            GOLDEN_NEAREST_IMAGE_SUM,
            0.0,
        );
        check_seg(&s, &GOLDEN_NEAREST_SEG_PICKS, GOLDEN_NEAREST_SEG_COUNTS);
        let (d, s) = t
            .clone()
            .with_interpolation(SpatialInterpolation::SegNearest)
            .apply(data.view(), seg.view());
        check_picks(
            &d,
            &GOLDEN_SEG_NEAREST_IMAGE_PICKS,
            GOLDEN_SEG_NEAREST_IMAGE_SUM,
            1e-5,
        );
        check_seg(
            &s,
            &GOLDEN_SEG_NEAREST_SEG_PICKS,
            GOLDEN_SEG_NEAREST_SEG_COUNTS,
        );
        // The image path of `SegNearest` is the default's, bit for bit.
        let (linear, _) = t.apply(data.view(), seg.view());
        assert_eq!(linear, d);
        // 2D: one angle, per-axis scales (y 1.2, x 0.85), a (13, 14) input, a (9, 10) patch.
        let (data, seg) = golden([1, 13, 14]);
        let (d, _) = Spatial::rotate_scale_axes(
            [1, 9, 10],
            SpatialMode::Planar,
            [0.0, 0.0, 0.6],
            [1.0, 1.2, 0.85],
        )
        .with_interpolation(SpatialInterpolation::Nearest)
        .apply(data.view(), seg.view());
        assert_eq!(
            d.iter().copied().collect::<Vec<f32>>(),
            GOLDEN_NEAREST_2D.to_vec()
        );
    }

    const GOLDEN_NEAREST_IMAGE_PICKS: [(usize, f32); 31] = [
        (0, -1.0),
        (11, 2.75),
        (22, 1.75),
        (33, 0.25),
        (44, -0.75),
        (55, 1.25),
        (66, 1.5),
        (77, 2.25),
        (88, 1.0),
        (99, 0.5),
        (110, -0.5),
        (121, -0.25),
        (132, 1.75),
        (143, 2.5),
        (154, 0.0),
        (165, 0.75),
        (176, 1.0),
        (187, 3.0),
        (198, 2.0),
        (209, 1.25),
        (220, 0.25),
        (231, 0.75),
        (242, 0.0),
        (253, -1.0),
        (264, 1.75),
        (275, 0.75),
        (286, 2.0),
        (297, 3.0),
        (308, -0.5),
        (319, 1.5),
        (330, 2.0),
    ];
    const GOLDEN_NEAREST_IMAGE_SUM: f32 = 314.25;
    const GOLDEN_NEAREST_SEG_PICKS: [(usize, i16); 68] = [
        (0, 0),
        (5, 2),
        (10, 1),
        (15, 0),
        (20, 1),
        (25, 2),
        (30, 1),
        (35, 0),
        (40, 1),
        (45, 0),
        (50, 1),
        (55, 0),
        (60, 1),
        (65, 2),
        (70, 0),
        (75, 0),
        (80, 1),
        (85, 0),
        (90, 0),
        (95, 0),
        (100, 2),
        (105, 0),
        (110, 2),
        (115, 0),
        (120, 1),
        (125, 0),
        (130, 1),
        (135, 0),
        (140, 2),
        (145, 0),
        (150, 2),
        (155, 0),
        (160, 0),
        (165, 1),
        (170, 1),
        (175, 2),
        (180, 2),
        (185, 0),
        (190, 2),
        (195, 0),
        (200, 2),
        (205, 1),
        (210, 2),
        (215, 1),
        (220, 2),
        (225, 0),
        (230, 2),
        (235, 0),
        (240, 2),
        (245, 1),
        (250, 2),
        (255, 1),
        (260, 2),
        (265, 1),
        (270, 0),
        (275, 1),
        (280, 2),
        (285, 1),
        (290, 2),
        (295, 1),
        (300, 2),
        (305, 1),
        (310, 0),
        (315, 1),
        (320, 2),
        (325, 1),
        (330, 0),
        (335, 2),
    ];
    const GOLDEN_NEAREST_SEG_COUNTS: [usize; 4] = [2, 120, 109, 105];
    const GOLDEN_SEG_NEAREST_IMAGE_PICKS: [(usize, f32); 31] = [
        (0, -0.23368698),
        (11, 1.3175656),
        (22, 1.2257519),
        (33, 0.9678129),
        (44, -0.28756315),
        (55, 1.51624),
        (66, 1.097794),
        (77, 1.840019),
        (88, 0.960382),
        (99, 1.2526664),
        (110, 1.0022365),
        (121, 0.8104856),
        (132, 1.1223233),
        (143, 1.4088042),
        (154, 0.67653835),
        (165, 0.54101455),
        (176, 0.44594324),
        (187, 2.3696196),
        (198, 1.2550547),
        (209, 1.2932109),
        (220, 0.58940506),
        (231, 0.5202358),
        (242, 0.68553543),
        (253, 0.9060701),
        (264, 1.5250642),
        (275, 0.7884919),
        (286, 0.9668385),
        (297, 1.1332058),
        (308, 0.557595),
        (319, 1.5634689),
        (330, 1.3819522),
    ];
    const GOLDEN_SEG_NEAREST_IMAGE_SUM: f32 = 320.8388;
    const GOLDEN_SEG_NEAREST_SEG_PICKS: [(usize, i16); 68] = [
        (0, 0),
        (5, 2),
        (10, 1),
        (15, 0),
        (20, 1),
        (25, 2),
        (30, 1),
        (35, 0),
        (40, 1),
        (45, 0),
        (50, 1),
        (55, 0),
        (60, 1),
        (65, 2),
        (70, 0),
        (75, 0),
        (80, 1),
        (85, 0),
        (90, 0),
        (95, 0),
        (100, 2),
        (105, 0),
        (110, 2),
        (115, 0),
        (120, 1),
        (125, 0),
        (130, 1),
        (135, 0),
        (140, 2),
        (145, 0),
        (150, 2),
        (155, 0),
        (160, 0),
        (165, 1),
        (170, 1),
        (175, 2),
        (180, 2),
        (185, 0),
        (190, 2),
        (195, 0),
        (200, 2),
        (205, 1),
        (210, 2),
        (215, 1),
        (220, 2),
        (225, 0),
        (230, 2),
        (235, 0),
        (240, 2),
        (245, 1),
        (250, 2),
        (255, 1),
        (260, 2),
        (265, 1),
        (270, 0),
        (275, 1),
        (280, 2),
        (285, 1),
        (290, 2),
        (295, 1),
        (300, 2),
        (305, 1),
        (310, 0),
        (315, 1),
        (320, 2),
        (325, 1),
        (330, 0),
        (335, 2),
    ];
    const GOLDEN_SEG_NEAREST_SEG_COUNTS: [usize; 4] = [2, 120, 109, 105];
    const GOLDEN_NEAREST_2D: [f32; 90] = [
        -1.0, -1.0, -0.5, 0.75, 0.0, 1.25, 1.75, 3.0, 2.25, -0.75, -0.25, 1.0, 1.5, 1.5, 2.0, -1.0,
        -0.5, -0.5, 0.0, 1.25, 1.75, 3.0, 2.25, -0.75, -0.25, -0.25, 0.25, 1.5, 2.0, 2.0, -0.5,
        -0.5, 0.0, 1.25, 0.5, 1.75, 2.25, -0.75, 2.75, -0.25, 0.25, 1.5, 2.0, 2.0, 2.5, -0.5, 0.0,
        0.0, 0.5, 1.75, 2.25, -0.75, 2.75, -0.25, 0.25, 1.5, 0.75, 2.0, 2.5, 2.5, 0.0, 0.0, 0.5,
        1.75, 2.25, 2.25, 2.75, -0.25, -1.0, 0.25, 0.75, 2.0, 2.5, 2.5, 3.0, 0.0, 0.5, 0.5, 1.0,
        2.25, 2.75, -0.25, -1.0, 0.25, 0.75, 2.0, 1.25, 2.5, 3.0, 3.0,
    ];

    #[test]
    fn nearest_pads_outside_and_never_invents_labels() {
        let seg = Array4::from_shape_fn((2, 12, 12, 12), |(c, z, y, x)| {
            [0i16, 2, 5, -1][(z / 4 + y / 5 + x / 3 + c) % 4]
        });
        let data = seg.mapv(f32::from);
        let input: BTreeSet<i16> = seg.iter().copied().collect();
        // Zooming out by 1.5: the border of the patch reads outside the input.
        let t = Spatial::rotate_scale([12, 12, 12], SpatialMode::Volumetric, [0.4, 0.2, -0.3], 1.5)
            .with_interpolation(SpatialInterpolation::Nearest);
        let (d, s) = t.apply(data.view(), seg.view());
        let labels: BTreeSet<i16> = s.iter().copied().collect();
        assert!(labels.is_subset(&input));
        assert_eq!(
            (s[[0, 0, 0, 0]], s[[1, 0, 0, 0]], d[[0, 0, 0, 0]]),
            (-1, -1, 0.0)
        );
        // Nearest images only hold input values (or 0 outside).
        assert!(d.iter().all(|&v| v == 0.0 || input.contains(&(v as i16))));
        // A crop copies voxels whatever the interpolation.
        let crop = Spatial::crop([8, 8, 8]);
        assert_eq!(
            crop.clone()
                .with_interpolation(SpatialInterpolation::Nearest)
                .apply(data.view(), seg.view()),
            crop.apply(data.view(), seg.view())
        );
    }

    #[test]
    fn da5_sampling_rotates_axes_independently_and_scales_per_axis() {
        let setup = DaSetup::da5(&[64, 64, 64]).unwrap();
        let random = RandomSpatial::da5(&setup);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 20_000;
        let mut crops = 0usize;
        for _ in 0..n {
            let t = random.sample(&mut rng);
            assert!(t.displacement.is_none());
            crops += usize::from(t.matrix.is_none());
        }
        // P(neither rotation nor scaling) = 0.6 · 0.8.
        assert!((crops as f64 / n as f64 - 0.48).abs() < 0.015, "{crops}");
        // Rotation only: each axis keeps its angle with p 0.5 (count the identity rotations).
        let rotating = RandomSpatial {
            p_rotation: 1.0,
            p_scaling: 0.0,
            ..random.clone()
        };
        let identity = (0..n)
            .filter(|_| {
                let m = rotating.sample(&mut rng).matrix.unwrap();
                (0..3)
                    .all(|i| (0..3).all(|j| (m[i][j] - f64::from(u8::from(i == j))).abs() < 1e-15))
            })
            .count();
        assert!(
            (identity as f64 / n as f64 - 0.125).abs() < 0.01,
            "{identity}"
        );
        // Scaling only: a diagonal with three independent factors in [0.7, 1.43].
        let scaling = RandomSpatial {
            p_rotation: 0.0,
            p_scaling: 1.0,
            ..random.clone()
        };
        for _ in 0..200 {
            let m = scaling.sample(&mut rng).matrix.unwrap();
            let d = [m[0][0], m[1][1], m[2][2]];
            assert!(d.iter().all(|s| (0.7..1.43).contains(s)));
            assert!(d[0] != d[1] && d[1] != d[2]);
        }
        // In-plane modes: z neither rotates nor scales.
        let planar = RandomSpatial {
            p_rotation: 1.0,
            p_scaling: 1.0,
            ..RandomSpatial::da5(&DaSetup::da5(&[20, 192, 160]).unwrap())
        };
        for _ in 0..200 {
            let m = planar.sample(&mut rng).matrix.unwrap();
            assert_eq!(m[0], [1.0, 0.0, 0.0]);
        }
    }

    #[test]
    fn default_sampling_is_unchanged_by_the_new_options() {
        // The default draws no per-axis coins: the same stream as one isotropic factor and
        // all rotation angles (the pre-DA5 code), checked against a hand-rolled sampler.
        let setup = DaSetup::nnunet(&[32, 40, 48]).unwrap();
        let random = RandomSpatial::nnunet(&setup);
        let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(9), ChaCha8Rng::seed_from_u64(9));
        for _ in 0..2000 {
            let got = random.sample(&mut a);
            let rot = b.gen::<f64>() < 0.2;
            let scale = b.gen::<f64>() < 0.2;
            let want = if !rot && !scale {
                Spatial::crop(setup.patch)
            } else {
                let r = setup.rotation_max;
                let mut angles = [0.0; 3];
                if rot {
                    for angle in &mut angles {
                        *angle = uniform(&mut b, -r, r);
                    }
                }
                let s = if scale {
                    uniform(&mut b, 0.7, 1.4)
                } else {
                    1.0
                };
                Spatial::rotate_scale(setup.patch, setup.mode, angles, s)
            };
            assert_eq!(got, want);
            assert_eq!(got.interpolation, SpatialInterpolation::Default);
        }
    }

    #[test]
    fn the_avx2_kernel_equals_the_scalar_path_bit_for_bit() {
        // Two data and two seg channels with label boundaries everywhere, random transforms
        // (zoom-out so that border and outside points occur), and an elastic one. Without
        // AVX2 both runs take the scalar path and the test compares it with itself.
        let shape = (37, 41, 45);
        let data = Array4::from_shape_fn((2, shape.0, shape.1, shape.2), |(c, z, y, x)| {
            ((z * 31 + y * 17 + x * 7 + c * 5) % 23) as f32 * 0.37 - 3.1
        });
        let seg = Array4::from_shape_fn((2, shape.0, shape.1, shape.2), |(c, z, y, x)| {
            [0i16, 1, 3, 2][(z / 3 + y / (2 + c) + x / 4) % 4]
        });
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut transforms: Vec<Spatial> = (0..6)
            .map(|_| {
                let angles = std::array::from_fn(|_| rng.gen_range(-0.6..0.6));
                Spatial::rotate_scale(
                    [30, 33, 35],
                    SpatialMode::Volumetric,
                    angles,
                    rng.gen_range(0.7..1.4),
                )
            })
            .collect();
        let field = Array4::from_shape_fn((3, 30, 33, 35), |(a, z, y, x)| {
            ((a * 7 + z + 2 * y + 3 * x) % 11) as f32 * 0.3 - 1.5
        });
        transforms.push(transforms[0].clone().with_elastic(field).unwrap());
        for t in &transforms {
            let (d_simd, s_simd) = t.resample_with(data.view(), seg.view(), true);
            let (d_scalar, s_scalar) = t.resample_with(data.view(), seg.view(), false);
            assert_eq!(s_simd, s_scalar);
            assert!(s_scalar.iter().any(|&l| l == -1) || t.displacement.is_some());
            let bits = |a: &Array4<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&d_simd), bits(&d_scalar));
        }
    }
}
