//! The spatial transform: rotation and scaling in one resampling pass through a combined matrix,
//! or a pure centre crop when neither fires. The only transform that allocates new arrays.
//!
//! Geometry (batchgeneratorsv2 `SpatialTransform` with `align_corners=False` and the centre crop
//! nnU-Net uses): output voxel `o` reads the input at `q = M · (o - (P - 1) / 2) + (S - 1) / 2`
//! per axis `(z, y, x)`, where `P` is the patch, `S` the input shape and
//! `M = Rz(a2) · Ry(a1) · Rx(a0) · diag(s)` in array-index coordinates (`Rx` turns the `(y, x)`
//! plane). Scale `s > 1` zooms out. Images are sampled trilinearly with zeros outside. Label maps
//! are sampled as nnU-Net does (each label's one-hot map sampled trilinearly, the largest wins,
//! ties to the lowest label), computed in one pass from the 8 neighbours' weights; voxels whose
//! `q` leaves `[0, S - 1]` on any axis become -1. nnU-Net compares the one-hot values in fp16;
//! we compare in f32, so near-ties may resolve differently. No label is ever invented.
//!
//! nnU-Net: `get_training_transforms` → `SpatialTransform(p_rotation=0.2, p_scaling=0.2,
//! scaling=(0.7, 1.4), p_synchronize_scaling_across_axes=1, border_mode_seg='constant',
//! padding_value_seg=-1, bg_style_seg_sampling=False)`.

use ndarray::{Array4, ArrayView4};
use rand::Rng;

use super::setup::{DaSetup, SpatialMode};
use super::uniform;
use crate::sampling::crop_and_pad;

/// A 3 × 3 matrix acting on `(z, y, x)` index coordinates (row-major).
pub type Matrix3 = [[f64; 3]; 3];

/// Draws nnU-Net's spatial transform parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomSpatial {
    /// Output patch `(z, y, x)`.
    pub patch: [usize; 3],
    /// Which axes rotate and scale.
    pub mode: SpatialMode,
    /// Probability of rotating (0.2).
    pub p_rotation: f64,
    /// Angles drawn from `U(-rotation_max, rotation_max)` per axis (radians).
    pub rotation_max: f64,
    /// Probability of scaling (0.2).
    pub p_scaling: f64,
    /// Scale factor range, one factor for all axes (0.7, 1.4).
    pub scaling: (f64, f64),
}

impl RandomSpatial {
    /// nnU-Net's settings for `setup`.
    pub fn nnunet(setup: &DaSetup) -> RandomSpatial {
        RandomSpatial {
            patch: setup.patch,
            mode: setup.mode,
            p_rotation: 0.2,
            rotation_max: setup.rotation_max,
            p_scaling: 0.2,
            scaling: (0.7, 1.4),
        }
    }

    /// Draws one transform: rotation with `p_rotation`, scaling with `p_scaling`, else a crop.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> Spatial {
        let do_rotation = rng.gen::<f64>() < self.p_rotation;
        let do_scaling = rng.gen::<f64>() < self.p_scaling;
        if !do_rotation && !do_scaling {
            return Spatial::crop(self.patch);
        }
        let mut angles = [0.0; 3];
        if do_rotation {
            let r = self.rotation_max;
            let axes = if self.mode.in_plane() { 2..3 } else { 0..3 };
            for a in axes {
                angles[a] = uniform(rng, -r, r);
            }
        }
        let scale = if do_scaling {
            uniform(rng, self.scaling.0, self.scaling.1)
        } else {
            1.0
        };
        Spatial::rotate_scale(self.patch, self.mode, angles, scale)
    }
}

/// A deterministic spatial transform.
#[derive(Clone, Debug, PartialEq)]
pub struct Spatial {
    /// Output patch `(z, y, x)`.
    pub patch: [usize; 3],
    /// The combined rotation-scaling matrix; `None`: a pure centre crop.
    pub matrix: Option<Matrix3>,
}

impl Spatial {
    /// The centre crop (nnU-Net: `crop_tensor` around `floor(S / 2)`).
    pub fn crop(patch: [usize; 3]) -> Spatial {
        Spatial {
            patch,
            matrix: None,
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
        let scaling = diag([if mode.in_plane() { 1.0 } else { scale }, scale, scale]);
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
        }
    }

    /// Applies the transform to data `(c, z, y, x)` and seg `(1, z, y, x)` of one sample.
    pub fn apply(
        &self,
        data: ArrayView4<'_, f32>,
        seg: ArrayView4<'_, i16>,
    ) -> (Array4<f32>, Array4<i16>) {
        match &self.matrix {
            None => {
                let shape = &data.shape()[1..];
                let lower =
                    std::array::from_fn(|a| (shape[a] / 2) as isize - (self.patch[a] / 2) as isize);
                (
                    crop_and_pad(data, lower, self.patch, 0.0),
                    crop_and_pad(seg, lower, self.patch, -1),
                )
            }
            Some(m) => resample(m, self.patch, data, seg),
        }
    }
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

/// The 8 trilinear neighbours of a point: flat spatial offsets and weights (0 for neighbours
/// outside the volume), and whether the point lies inside `[0, S - 1]` on every axis.
struct Neighbours {
    offsets: [usize; 8],
    weights: [f32; 8],
    inside: bool,
}

fn neighbours(q: [f64; 3], shape: [usize; 3]) -> Neighbours {
    let mut lo = [0isize; 3];
    let mut frac = [0f32; 3];
    let mut inside = true;
    let mut interior = true;
    for a in 0..3 {
        let f = q[a].floor();
        lo[a] = f as isize;
        frac[a] = (q[a] - f) as f32;
        inside &= q[a] >= 0.0 && q[a] <= (shape[a] - 1) as f64;
        interior &= lo[a] >= 0 && lo[a] + 1 < shape[a] as isize;
    }
    if interior {
        return interior_neighbours(lo.map(|v| v as usize), frac, shape);
    }
    let mut n = Neighbours {
        offsets: [0; 8],
        weights: [0.0; 8],
        inside,
    };
    for k in 0..8 {
        let mut w = 1.0f32;
        let mut offset = 0usize;
        let mut valid = true;
        for a in 0..3 {
            let upper = (k >> (2 - a)) & 1 == 1;
            let idx = lo[a] + upper as isize;
            w *= if upper { frac[a] } else { 1.0 - frac[a] };
            valid &= idx >= 0 && (idx as usize) < shape[a];
            offset = offset * shape[a] + idx.max(0) as usize;
        }
        if valid && w != 0.0 {
            n.offsets[k] = offset;
            n.weights[k] = w;
        }
    }
    n
}

/// The fast path of [`neighbours`] when all 8 neighbours lie inside the volume.
fn interior_neighbours(lo: [usize; 3], frac: [f32; 3], shape: [usize; 3]) -> Neighbours {
    let row = shape[2];
    let plane = shape[1] * shape[2];
    let base = lo[0] * plane + lo[1] * row + lo[2];
    let [fz, fy, fx] = frac;
    let [gz, gy, gx] = frac.map(|f| 1.0 - f);
    Neighbours {
        offsets: [
            base,
            base + 1,
            base + row,
            base + row + 1,
            base + plane,
            base + plane + 1,
            base + plane + row,
            base + plane + row + 1,
        ],
        weights: [
            gz * gy * gx,
            gz * gy * fx,
            gz * fy * gx,
            gz * fy * fx,
            fz * gy * gx,
            fz * gy * fx,
            fz * fy * gx,
            fz * fy * fx,
        ],
        inside: true,
    }
}

/// The label whose summed neighbour weight is largest; ties go to the lowest label.
fn vote(seg: &[i16], n: &Neighbours) -> i16 {
    let first = seg[n.offsets[0]];
    if n.offsets.iter().all(|&o| seg[o] == first) {
        // Every neighbour (zero-weight ones included, all in bounds here) has the same label.
        return first;
    }
    let mut labels = [0i16; 8];
    let mut sums = [0f32; 8];
    let mut n_labels = 0;
    for k in 0..8 {
        if n.weights[k] == 0.0 {
            continue;
        }
        let label = seg[n.offsets[k]];
        match labels[..n_labels].iter().position(|&l| l == label) {
            Some(i) => sums[i] += n.weights[k],
            None => {
                labels[n_labels] = label;
                sums[n_labels] = n.weights[k];
                n_labels += 1;
            }
        }
    }
    let mut best = 0;
    for i in 1..n_labels {
        if sums[i] > sums[best] || (sums[i] == sums[best] && labels[i] < labels[best]) {
            best = i;
        }
    }
    labels[best]
}

/// Resamples data and seg through `m` (module docs for the geometry).
fn resample(
    m: &Matrix3,
    patch: [usize; 3],
    data: ArrayView4<'_, f32>,
    seg: ArrayView4<'_, i16>,
) -> (Array4<f32>, Array4<i16>) {
    let data = data.as_standard_layout();
    let seg = seg.as_standard_layout();
    let src = data.as_slice().expect("standard layout is contiguous");
    let src_seg = seg.as_slice().expect("standard layout is contiguous");
    let n_channels = data.shape()[0];
    let shape: [usize; 3] = std::array::from_fn(|a| data.shape()[a + 1]);
    let channel_len: usize = shape.iter().product();
    let out_len: usize = patch.iter().product();
    let mut out = Array4::<f32>::zeros((n_channels, patch[0], patch[1], patch[2]));
    let mut out_seg = Array4::<i16>::from_elem((1, patch[0], patch[1], patch[2]), -1);
    let dst = out.as_slice_mut().expect("fresh array is contiguous");
    let dst_seg = out_seg.as_slice_mut().expect("fresh array is contiguous");
    let c_in: [f64; 3] = std::array::from_fn(|a| (shape[a] as f64 - 1.0) / 2.0);
    let c_out: [f64; 3] = std::array::from_fn(|a| (patch[a] as f64 - 1.0) / 2.0);
    let mut voxel = 0;
    for oz in 0..patch[0] {
        for oy in 0..patch[1] {
            let p = [oz as f64 - c_out[0], oy as f64 - c_out[1], -c_out[2]];
            let base: [f64; 3] =
                std::array::from_fn(|i| c_in[i] + (0..3).map(|k| m[i][k] * p[k]).sum::<f64>());
            for ox in 0..patch[2] {
                let q = std::array::from_fn(|i| base[i] + m[i][2] * ox as f64);
                let n = neighbours(q, shape);
                for c in 0..n_channels {
                    let channel = &src[c * channel_len..(c + 1) * channel_len];
                    dst[c * out_len + voxel] =
                        (0..8).map(|k| n.weights[k] * channel[n.offsets[k]]).sum();
                }
                if n.inside {
                    dst_seg[voxel] = vote(src_seg, &n);
                }
                voxel += 1;
            }
        }
    }
    (out, out_seg)
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
    fn sampling_fires_with_nnunet_probabilities() {
        let setup = DaSetup::nnunet(&[64, 64, 64]).unwrap();
        let random = RandomSpatial::nnunet(&setup);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let n = 20_000;
        let crops = (0..n)
            .filter(|_| random.sample(&mut rng).matrix.is_none())
            .count() as f64;
        // P(neither) = 0.8 · 0.8.
        assert!((crops / n as f64 - 0.64).abs() < 0.015);
    }
}
