//! Label-map resampling: batchgenerators' `resize_segmentation` and nnU-Net's separate-z
//! variant for segmentations, as installed with nnU-Net 2.8.1 (batchgenerators 0.25.5).
//!
//! `resize_segmentation(seg, shape, order)` with order >= 1 resamples every label's 0/1 mask
//! as a float image (skimage `resize`, clipped to `[0, 1]`) and takes, per voxel, the label
//! with the largest score (`_resample_seg_by_argmax`, `seg_tiebreak='nearest'`): labels are
//! visited in ascending order and only a strictly larger score takes the lead, so a tie stays
//! with the smaller label, unless the order-0 (nearest-neighbour) resize's label is among
//! those sharing the top score, in which case it wins. Exact ties are common: an even resize
//! factor puts every boundary voxel exactly halfway between two labels.
//!
//! For order 1 a label's score at an output voxel is the sum, over the 8 corners of its
//! trilinear cell that carry the label, of `w_z * w_y * w_x`. [`resize_labels_into`] computes
//! exactly that per voxel, summing in scipy's order (corners in C order, weights multiplied
//! axis 0 first), so equal scores are equal here too, without one float volume per label.
//! Order 3 goes through the float resampler one label at a time; our separable cubic agrees
//! with scipy only to rounding, so its rare exact ties are not guaranteed to match.

use std::collections::BTreeSet;

use ndarray::{Array3, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis, Zip};
use rayon::prelude::*;

use super::spline::{resample_axis_into, Taps};
use super::{resize_3d_into, spatial_shape3, ResampleSettings, SplineOrder};

/// `resize_segmentation(input, out.shape, order)` for one 3D label map (non-empty).
pub(crate) fn resize_labels_into(
    input: ArrayView3<'_, i16>,
    mut out: ArrayViewMut3<'_, i16>,
    order: SplineOrder,
) {
    if order == SplineOrder::Nearest {
        nearest_into(input, out);
        return;
    }
    let labels: Vec<i16> = input
        .iter()
        .copied()
        .collect::<BTreeSet<i16>>()
        .into_iter()
        .collect();
    let lowest = *labels.first().expect("the input has at least one voxel");
    if labels.len() == 1 {
        // batchgenerators: "nothing to interpolate".
        out.fill(lowest);
        return;
    }
    match order {
        SplineOrder::Linear => argmax_linear_into(input, out, lowest),
        _ => argmax_float_into(input, out, &labels, |scores, mask| {
            resize_3d_into(mask, scores, order, Some((0.0, 1.0)));
        }),
    }
}

/// nnU-Net's separate-z path for one label channel: per-slice `resize_segmentation` with
/// `order`, then along `axis` nearest slices (`order_z` 0) or one-hot interpolation with
/// threshold `> 0.5`, larger labels written last (nnU-Net:
/// `np.round(map_coordinates(..)) > 0.5`, in `default_resampling.py`, not batchgenerators).
pub(crate) fn resize_labels_separate_z(
    input: ArrayView3<'_, i16>,
    mut out: ArrayViewMut3<'_, i16>,
    axis: usize,
    settings: &ResampleSettings,
) {
    let n_slices = input.len_of(Axis(axis));
    let mut inplane_shape = spatial_shape3(out.dim());
    inplane_shape[axis] = n_slices;
    // Along the slice axis the shape is unchanged (weights 1 and 0, nearest = itself), so
    // every method reads each slice alone: the 3D routines are the per-slice 2D ones. Labels
    // missing from a slice score 0 there and change nothing.
    let mut inplane = Array3::<i16>::zeros(inplane_shape);
    resize_labels_into(input, inplane.view_mut(), settings.order);
    if n_slices == out.len_of(Axis(axis)) {
        out.assign(&inplane);
        return;
    }
    match settings.order_z {
        SplineOrder::Nearest => nearest_into(inplane.view(), out),
        order_z => one_hot_above_half_into(inplane.view(), out, |mask_out, mask| {
            resample_axis_into(mask, mask_out, axis, order_z, None);
        }),
    }
}

/// The order-0 tap per output index along one axis: input `floor(cc + 0.5)`, clamped.
fn nearest_taps(n_in: usize, n_out: usize) -> Vec<usize> {
    let taps = Taps::new(n_in, n_out, SplineOrder::Nearest);
    (0..n_out)
        .map(|o| taps.of(o).next().expect("order 0 has one tap").0)
        .collect()
}

/// Order-0 zoom: each output voxel copies the input voxel at `floor(cc + 0.5)` per axis.
pub(crate) fn nearest_into(input: ArrayView3<'_, i16>, mut out: ArrayViewMut3<'_, i16>) {
    let [iz, iy, ix] = spatial_shape3(input.dim());
    let [oz, oy, ox] = spatial_shape3(out.dim());
    let (tz, ty, tx) = (
        nearest_taps(iz, oz),
        nearest_taps(iy, oy),
        nearest_taps(ix, ox),
    );
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

/// Where one output axis reads the input: linear taps and the nearest-neighbour index.
struct AxisTaps {
    linear: Vec<[(usize, f64); 2]>,
    nearest: Vec<usize>,
}

impl AxisTaps {
    fn new(n_in: usize, n_out: usize) -> AxisTaps {
        AxisTaps {
            linear: linear_taps(n_in, n_out),
            nearest: nearest_taps(n_in, n_out),
        }
    }
}

/// Order-1 `resize_segmentation`, evaluated per voxel (see the module docs).
fn argmax_linear_into(input: ArrayView3<'_, i16>, mut out: ArrayViewMut3<'_, i16>, lowest: i16) {
    let [iz, iy, ix] = spatial_shape3(input.dim());
    let [oz, oy, ox] = spatial_shape3(out.dim());
    let taps = [
        AxisTaps::new(iz, oz),
        AxisTaps::new(iy, oy),
        AxisTaps::new(ix, ox),
    ];
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(z, plane)| argmax_linear_plane(input, plane, z, &taps, lowest));
}

fn argmax_linear_plane(
    input: ArrayView3<'_, i16>,
    mut plane: ArrayViewMut2<'_, i16>,
    z: usize,
    [tz, ty, tx]: &[AxisTaps; 3],
    lowest: i16,
) {
    for ((y, x), v) in plane.indexed_iter_mut() {
        let mut votes = LabelVotes::default();
        for &(zi, wz) in &tz.linear[z] {
            for &(yi, wy) in &ty.linear[y] {
                for &(xi, wx) in &tx.linear[x] {
                    let weight = wz * wy * wx;
                    if weight != 0.0 {
                        votes.add(input[[zi, yi, xi]], weight);
                    }
                }
            }
        }
        let nearest = input[[tz.nearest[z], ty.nearest[y], tx.nearest[x]]];
        *v = votes.winner(lowest, nearest);
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

    /// The argmax winner: the scores (clipped to `[0, 1]` like skimage) offered in ascending
    /// label order. Labels without votes score 0 and cannot take the lead, so `lowest`, the
    /// smallest label of the whole map, stands for them.
    fn winner(&self, lowest: i16, nearest: i16) -> i16 {
        let mut order = [0usize, 1, 2, 3, 4, 5, 6, 7];
        let order = &mut order[..self.len];
        order.sort_unstable_by_key(|&i| self.labels[i]);
        let mut leader = Leader::new(lowest);
        for &i in order.iter() {
            let label = self.labels[i];
            leader.offer(label, self.sums[i].min(1.0), label == nearest);
        }
        leader.winner(nearest)
    }
}

/// The running state of `_resample_seg_by_argmax` with `seg_tiebreak='nearest'` at one voxel.
#[derive(Clone, Copy, Debug)]
struct Leader {
    /// The top score so far (`best`); 0 before any label scored.
    best: f64,
    /// The first label that reached `best` (`win`).
    label: i16,
    /// Whether the nearest neighbour's label currently shares the top score (`nn_top`).
    nearest_on_top: bool,
}

impl Leader {
    /// Before any label is offered; `lowest` is the smallest label of the map, the argmax
    /// where every score is 0.
    fn new(lowest: i16) -> Leader {
        Leader {
            best: 0.0,
            label: lowest,
            nearest_on_top: false,
        }
    }

    /// Offer `label`'s score; labels come in ascending order. A strictly larger score takes
    /// the lead; the nearest neighbour's label drawing level (with a score above 0) marks
    /// the top as shared with it.
    fn offer(&mut self, label: i16, score: f64, is_nearest: bool) {
        if score > self.best {
            self.best = score;
            self.label = label;
            self.nearest_on_top = is_nearest;
        } else if is_nearest && score == self.best && score > 0.0 {
            self.nearest_on_top = true;
        }
    }

    /// The result: the nearest neighbour's label if it shares the top score, else the leader.
    fn winner(&self, nearest: i16) -> i16 {
        if self.nearest_on_top {
            nearest
        } else {
            self.label
        }
    }
}

/// Generic argmax resize: each label's mask (ascending) resampled by `resample` into a score
/// volume, offered voxel by voxel to a [`Leader`], ties settled by the order-0 resize.
fn argmax_float_into(
    input: ArrayView3<'_, i16>,
    mut out: ArrayViewMut3<'_, i16>,
    labels: &[i16],
    resample: impl Fn(ArrayViewMut3<'_, f64>, ArrayView3<'_, f32>),
) {
    let mut nearest = Array3::<i16>::zeros(out.raw_dim());
    nearest_into(input, nearest.view_mut());
    let lowest = *labels.first().expect("at least two labels");
    let mut leaders = Array3::from_elem(out.raw_dim(), Leader::new(lowest));
    let mut scores = Array3::<f64>::zeros(out.raw_dim());
    for &label in labels {
        let mask = input.mapv(|v| if v == label { 1.0f32 } else { 0.0 });
        resample(scores.view_mut(), mask.view());
        Zip::from(&mut leaders)
            .and(&scores)
            .and(&nearest)
            .par_for_each(|leader, &score, &nn| leader.offer(label, score, nn == label));
    }
    Zip::from(&mut out)
        .and(&leaders)
        .and(&nearest)
        .par_for_each(|o, leader, &nn| *o = leader.winner(nn));
}

/// For every label of `input` in ascending order: resample its 0/1 mask with `resample` and
/// write the label where the result is `> 0.5`; voxels no label reaches stay 0.
fn one_hot_above_half_into(
    input: ArrayView3<'_, i16>,
    mut out: ArrayViewMut3<'_, i16>,
    resample: impl Fn(ArrayViewMut3<'_, f64>, ArrayView3<'_, f32>),
) {
    let labels: BTreeSet<i16> = input.iter().copied().collect();
    out.fill(0);
    let mut resampled = Array3::<f64>::zeros(out.raw_dim());
    for label in labels {
        let mask = input.mapv(|v| if v == label { 1.0f32 } else { 0.0 });
        resample(resampled.view_mut(), mask.view());
        out.zip_mut_with(&resampled, |o, &v| {
            if v > 0.5 {
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
    fn linear_ties_go_to_the_nearest_neighbour() {
        // 2 -> 1 along x: cc = 0.5, weights 0.5 / 0.5, and the nearest neighbour is input
        // floor(0.5 + 0.5) = 1, whichever label that is.
        for (row, want) in [([3, 1], 1), ([1, 3], 3)] {
            let input = Array::from_shape_vec((1, 1, 2), row.to_vec()).unwrap();
            assert_eq!(
                resized(&input, (1, 1, 1), SplineOrder::Linear)[[0, 0, 0]],
                want,
                "{row:?}"
            );
        }
    }

    #[test]
    fn a_four_way_tie_goes_to_the_nearest_neighbour() {
        // 2x2 -> 1x1: cc = 0.5 on both axes, each label scores 0.25; nearest is (1, 1).
        let input = Array::from_shape_vec((1, 2, 2), vec![4, 5, 6, 7]).unwrap();
        assert_eq!(
            resized(&input, (1, 1, 1), SplineOrder::Linear)[[0, 0, 0]],
            7
        );
    }

    #[test]
    fn a_losing_nearest_neighbour_leaves_the_smallest_tied_label() {
        // batchgenerators' docstring case: 2x2x2 [3,1,1,1,2,2,2,3] at its centre scores 1 and
        // 2 at 0.375, 3 at 0.25; the nearest neighbour (1, 1, 1) is a 3, which lost.
        let input = Array::from_shape_vec((2, 2, 2), vec![3, 1, 1, 1, 2, 2, 2, 3]).unwrap();
        for order in [SplineOrder::Linear, SplineOrder::Cubic] {
            assert_eq!(resized(&input, (1, 1, 1), order)[[0, 0, 0]], 1, "{order:?}");
        }
    }

    #[test]
    fn a_single_label_fills_the_output() {
        let input = Array3::<i16>::from_elem((3, 2, 5), -1);
        for order in [SplineOrder::Linear, SplineOrder::Cubic] {
            assert!(resized(&input, (4, 7, 2), order).iter().all(|&v| v == -1));
        }
    }

    #[test]
    fn leader_keeps_the_first_label_reaching_the_top() {
        let mut leader = Leader::new(-1);
        leader.offer(0, 0.5, false);
        leader.offer(2, 0.5, false);
        assert_eq!(leader.winner(9), 0);
        leader.offer(3, 0.5, true);
        assert_eq!(leader.winner(3), 3);
        leader.offer(4, 0.75, false);
        assert_eq!(leader.winner(3), 4);
        // Every score 0: the smallest label of the map.
        assert_eq!(Leader::new(-1).winner(5), -1);
    }
}
