//! Label-map resampling: batchgenerators' `resize_segmentation` and nnU-Net's separate-z
//! variant for segmentations.
//!
//! `resize_segmentation(seg, shape, order)` resamples, for every label in ascending order, the
//! label's mask as a float image and writes the label where the result is `>= 0.5`; voxels no
//! label reaches stay 0. For order 1 the mask value at an output voxel is the sum, over the 8
//! corners of its trilinear cell that carry the label, of `w_z * w_y * w_x`, and "last label
//! wins" means "the largest label whose sum reaches 0.5". [`resize_labels_into`] computes
//! exactly that per voxel, summing in scipy's order (corners in C order, weights multiplied
//! axis 0 first), so the 0.5 decisions match scipy bit for bit without one float volume per
//! label. Other orders go through the float resampler one label at a time.

use std::collections::BTreeSet;

use ndarray::{Array3, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis};
use rayon::prelude::*;

use super::spline::{resample_axis_into, SplineOrder, Taps};
use super::{resize_3d_into, spatial_shape3, ResampleSettings};

/// `resize_segmentation(input, out.shape, order)` for one 3D label map.
pub(crate) fn resize_labels_into(
    input: ArrayView3<'_, i16>,
    out: ArrayViewMut3<'_, i16>,
    order: SplineOrder,
) {
    match order {
        SplineOrder::Nearest => nearest_into(input, out),
        SplineOrder::Linear => one_hot_linear_into(input, out),
        SplineOrder::Cubic => one_hot_float_into(input, out, |mask_out, mask| {
            resize_3d_into(mask, mask_out, order, None);
        }),
    }
}

/// nnU-Net's separate-z path for one label channel: per-slice `resize_segmentation` with
/// `order`, then along `axis` nearest slices (`order_z` 0) or one-hot interpolation with
/// threshold `> 0.5` (nnU-Net: `np.round(map_coordinates(..)) > 0.5`).
pub(crate) fn resize_labels_separate_z(
    input: ArrayView3<'_, i16>,
    mut out: ArrayViewMut3<'_, i16>,
    axis: usize,
    settings: &ResampleSettings,
) {
    let n_slices = input.len_of(Axis(axis));
    let mut inplane_shape = spatial_shape3(out.dim());
    inplane_shape[axis] = n_slices;
    // Along the slice axis the shape is unchanged, so every method reads each slice alone:
    // the 3D routines are exactly the per-slice 2D ones.
    let mut inplane = Array3::<i16>::zeros(inplane_shape);
    resize_labels_into(input, inplane.view_mut(), settings.order);
    if n_slices == out.len_of(Axis(axis)) {
        out.assign(&inplane);
        return;
    }
    match settings.order_z {
        SplineOrder::Nearest => nearest_into(inplane.view(), out),
        order_z => one_hot_threshold_into(inplane.view(), out, 0.5, false, |mask_out, mask| {
            resample_axis_into(mask, mask_out, axis, order_z, None);
        }),
    }
}

/// Order-0 zoom: each output voxel copies the input voxel at `floor(cc + 0.5)` per axis.
pub(crate) fn nearest_into(input: ArrayView3<'_, i16>, mut out: ArrayViewMut3<'_, i16>) {
    let [iz, iy, ix] = spatial_shape3(input.dim());
    let [oz, oy, ox] = spatial_shape3(out.dim());
    let first_tap = |n_in: usize, n_out: usize| -> Vec<usize> {
        let taps = Taps::new(n_in, n_out, SplineOrder::Nearest);
        (0..n_out)
            .map(|o| taps.of(o).next().expect("order 0 has one tap").0)
            .collect()
    };
    let (tz, ty, tx) = (first_tap(iz, oz), first_tap(iy, oy), first_tap(ix, ox));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(z, mut plane)| {
            let src = input.index_axis(Axis(0), tz[z]);
            for (y, mut row) in plane.outer_iter_mut().enumerate() {
                let src_row = src.index_axis(Axis(0), ty[y]);
                for (v, &x) in row.iter_mut().zip(&tx) {
                    *v = src_row[x];
                }
            }
        });
}

/// Two linear taps `(index, weight)` per output index along one axis.
fn linear_taps(n_in: usize, n_out: usize) -> Vec<[(usize, f64); 2]> {
    let taps = Taps::new(n_in, n_out, SplineOrder::Linear);
    (0..n_out)
        .map(|o| {
            let mut it = taps.of(o);
            let first = it.next().expect("order 1 has two taps");
            let second = it.next().expect("order 1 has two taps");
            [first, second]
        })
        .collect()
}

/// One-hot order-1 `resize_segmentation`, evaluated per voxel (see the module docs).
fn one_hot_linear_into(input: ArrayView3<'_, i16>, mut out: ArrayViewMut3<'_, i16>) {
    let [iz, iy, ix] = spatial_shape3(input.dim());
    let [oz, oy, ox] = spatial_shape3(out.dim());
    let (tz, ty, tx) = (
        linear_taps(iz, oz),
        linear_taps(iy, oy),
        linear_taps(ix, ox),
    );
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(z, plane)| one_hot_linear_plane(input, plane, &tz[z], &ty, &tx));
}

fn one_hot_linear_plane(
    input: ArrayView3<'_, i16>,
    mut plane: ArrayViewMut2<'_, i16>,
    tz: &[(usize, f64); 2],
    ty: &[[(usize, f64); 2]],
    tx: &[[(usize, f64); 2]],
) {
    for ((y, x), v) in plane.indexed_iter_mut() {
        let mut votes = LabelVotes::default();
        for &(zi, wz) in tz {
            for &(yi, wy) in &ty[y] {
                for &(xi, wx) in &tx[x] {
                    let weight = wz * wy * wx;
                    if weight != 0.0 {
                        votes.add(input[[zi, yi, xi]], weight);
                    }
                }
            }
        }
        *v = votes.winner(0.5);
    }
}

/// Per-label sums of corner weights for one voxel (at most 8 distinct labels).
#[derive(Default)]
struct LabelVotes {
    labels: [i16; 8],
    sums: [f64; 8],
    len: usize,
}

impl LabelVotes {
    fn add(&mut self, label: i16, weight: f64) {
        match self.labels[..self.len].iter().position(|&l| l == label) {
            Some(i) => self.sums[i] += weight,
            None => {
                self.labels[self.len] = label;
                self.sums[self.len] = weight;
                self.len += 1;
            }
        }
    }

    /// The largest label whose sum reaches `threshold`, else 0 (the background
    /// `resize_segmentation` starts from).
    fn winner(&self, threshold: f64) -> i16 {
        (0..self.len)
            .filter(|&i| self.sums[i] >= threshold)
            .map(|i| self.labels[i])
            .max()
            .unwrap_or(0)
    }
}

/// Generic one-hot resize: each label's mask resampled by `resample`, label written where the
/// result is `>= 0.5`.
fn one_hot_float_into(
    input: ArrayView3<'_, i16>,
    out: ArrayViewMut3<'_, i16>,
    resample: impl Fn(ArrayViewMut3<'_, f64>, ArrayView3<'_, f32>),
) {
    one_hot_threshold_into(input, out, 0.5, true, resample);
}

/// For every label of `input` in ascending order: resample its 0/1 mask with `resample` and
/// write the label where the result is `>= threshold` (`inclusive`) or `> threshold`.
fn one_hot_threshold_into(
    input: ArrayView3<'_, i16>,
    mut out: ArrayViewMut3<'_, i16>,
    threshold: f64,
    inclusive: bool,
    resample: impl Fn(ArrayViewMut3<'_, f64>, ArrayView3<'_, f32>),
) {
    let labels: BTreeSet<i16> = input.iter().copied().collect();
    out.fill(0);
    let mut resampled = Array3::<f64>::zeros(out.raw_dim());
    for label in labels {
        let mask = input.mapv(|v| if v == label { 1.0f32 } else { 0.0 });
        resample(resampled.view_mut(), mask.view());
        out.zip_mut_with(&resampled, |o, &v| {
            if v > threshold || (inclusive && v == threshold) {
                *o = label;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    fn resized(
        input: &Array3<i16>,
        shape: (usize, usize, usize),
        order: SplineOrder,
    ) -> Array3<i16> {
        let mut out = Array3::<i16>::zeros(shape);
        resize_labels_into(input.view(), out.view_mut(), order);
        out
    }

    #[test]
    fn label_sets_survive_every_order() {
        let input = Array::from_shape_fn((6, 8, 10), |(z, y, x)| match (z / 3, y / 4, x / 5) {
            (0, 0, _) => -1,
            (0, 1, 0) => 0,
            (0, 1, 1) => 1,
            (1, 0, _) => 2,
            _ => 3,
        });
        for order in [
            SplineOrder::Nearest,
            SplineOrder::Linear,
            SplineOrder::Cubic,
        ] {
            for shape in [(11, 15, 19), (4, 5, 6)] {
                let out = resized(&input, shape, order);
                let got: BTreeSet<i16> = out.iter().copied().collect();
                assert_eq!(got, BTreeSet::from([-1, 0, 1, 2, 3]), "{order:?} {shape:?}");
            }
        }
    }

    #[test]
    fn linear_one_hot_keeps_a_thin_structure_without_intermediate_labels() {
        // Interpolating labels 0 and 2 numerically would create 1s at the boundary.
        let input = Array::from_shape_fn((2, 2, 6), |(_, _, x)| if x < 3 { 0 } else { 2 });
        let out = resized(&input, (2, 2, 12), SplineOrder::Linear);
        let row: Vec<i16> = out.slice(ndarray::s![0, 0, ..]).to_vec();
        assert_eq!(row, [0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2]);
    }

    #[test]
    fn linear_ties_at_one_half_go_to_the_larger_label() {
        // 2 -> 1 along x: cc = 0.5, weights 0.5 / 0.5; both labels reach 0.5 and the larger
        // one is written last.
        let input = Array::from_shape_vec((1, 1, 2), vec![3, 1]).unwrap();
        assert_eq!(
            resized(&input, (1, 1, 1), SplineOrder::Linear)[[0, 0, 0]],
            3
        );
    }

    #[test]
    fn voxels_no_label_reaches_stay_background() {
        // 2x2 -> 1x1: cc = 0.5 on both axes, so each of the four labels gets 0.25.
        let input = Array::from_shape_vec((1, 2, 2), vec![4, 5, 6, 7]).unwrap();
        assert_eq!(
            resized(&input, (1, 1, 1), SplineOrder::Linear)[[0, 0, 0]],
            0
        );
    }
}
