//! One-dimensional B-spline resampling along one axis of a 3D array: the building block of
//! scipy's `zoom(grid_mode=True, mode='nearest')` and of `map_coordinates(mode='nearest')` at
//! nnU-Net's pixel-centre coordinates.
//!
//! scipy evaluates the tensor-product spline at every output voxel in one go; the same value
//! is obtained by resampling one axis at a time (both the prefilter and the interpolation are
//! separable), which is what this module does. The results agree with scipy to rounding
//! (about 1e-15 relative).
//!
//! Semantics reproduced (scipy 1.17 `ndimage/_interpolation.py` and `src/ni_interpolation.c`,
//! `src/ni_splines.c`):
//! - Output index `o` reads input coordinate `cc = ((o + 0.5) * (n_in / n_out)) - 0.5`.
//! - Order 0 takes input `floor(cc + 0.5)`, order 1 `floor(cc)` and `floor(cc) + 1` with
//!   weights `1 - x`, `x` (`x = cc - floor(cc)`); indices outside the line clamp to its ends
//!   (mode `'nearest'`).
//! - Order 3 first pads the line with 12 copies of each end value (`np.pad(.., 'edge')`),
//!   prefilters the padded line with the cubic B-spline pole `sqrt(3) - 2` and scipy's
//!   mirror-symmetric ("reflect") initial conditions, and evaluates at `cc + 12`.

use ndarray::{s, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis};
use rayon::prelude::*;

use autoseg_planner::SplineOrder;

/// Number of taps an output voxel reads: `order + 1`.
fn n_taps(order: SplineOrder) -> usize {
    usize::from(order.as_u8()) + 1
}

/// Number of edge copies scipy pads on each side before the cubic prefilter
/// (`_prepad_for_spline_filter`, mode `'nearest'`).
const CUBIC_PAD: usize = 12;

/// The pole of the cubic B-spline prefilter, `sqrt(3) - 2` (scipy `get_filter_poles`).
const CUBIC_POLE: f64 = -0.267_949_192_431_122_7;

/// Terms of the causal initial sum below this weight cannot change a double result at the
/// scale of the data, so the sum stops there (scipy runs it to the end of the line, through
/// denormals).
const NEGLIGIBLE_POLE_POWER: f64 = 1e-22;

/// Lines processed together: the prefilter and interpolation run on rows of this many
/// independent lines, which the compiler vectorises.
const LINES_PER_BLOCK: usize = 32;

/// An element type the resampler reads and writes; all arithmetic is in `f64`.
pub(crate) trait Sample: Copy + Send + Sync + Default {
    /// Widen to `f64`.
    fn to_f64(self) -> f64;
    /// Narrow from `f64` (rounding to nearest for `f32`, like numpy's `astype`).
    fn from_f64(value: f64) -> Self;
}

impl Sample for f32 {
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

impl Sample for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(value: f64) -> Self {
        value
    }
}

/// For every output index along an axis, the input rows it reads and their weights.
#[derive(Clone, Debug)]
pub(crate) struct Taps {
    n_taps: usize,
    /// Row indices into the (padded, for cubic) line, `n_out * n_taps`.
    index: Vec<usize>,
    /// Weights, `n_out * n_taps`, in scipy's tap order.
    weight: Vec<f64>,
}

impl Taps {
    /// Taps of scipy's grid-mode zoom from `n_in` to `n_out` samples (both non-zero).
    pub(crate) fn new(n_in: usize, n_out: usize, order: SplineOrder) -> Taps {
        let scale = n_in as f64 / n_out as f64;
        let (pad, len) = match order {
            SplineOrder::Cubic => (CUBIC_PAD, n_in + 2 * CUBIC_PAD),
            _ => (0, n_in),
        };
        let n_taps = n_taps(order);
        let mut index = Vec::with_capacity(n_out * n_taps);
        let mut weight = Vec::with_capacity(n_out * n_taps);
        for o in 0..n_out {
            let cc = (o as f64 + 0.5) * scale - 0.5 + pad as f64;
            let (start, weights) = tap_weights(cc, order);
            for (k, w) in weights[..n_taps].iter().enumerate() {
                index.push(clamp_index(start + k as i64, len));
                weight.push(*w);
            }
        }
        Taps {
            n_taps,
            index,
            weight,
        }
    }

    /// Number of output samples.
    pub(crate) fn n_out(&self) -> usize {
        self.index.len() / self.n_taps
    }

    /// The taps of output sample `o`: (row index, weight) pairs.
    pub(crate) fn of(&self, o: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let range = o * self.n_taps..(o + 1) * self.n_taps;
        self.index[range.clone()]
            .iter()
            .copied()
            .zip(self.weight[range].iter().copied())
    }
}

/// scipy's first tap index and spline weights at coordinate `cc`
/// (`get_spline_interpolation_weights`).
fn tap_weights(cc: f64, order: SplineOrder) -> (i64, [f64; 4]) {
    match order {
        SplineOrder::Nearest => ((cc + 0.5).floor() as i64, [1.0, 0.0, 0.0, 0.0]),
        SplineOrder::Linear => {
            let floor = cc.floor();
            let w0 = 1.0 - (cc - floor);
            (floor as i64, [w0, 1.0 - w0, 0.0, 0.0])
        }
        SplineOrder::Cubic => {
            let floor = cc.floor();
            let y = cc - floor;
            let z = 1.0 - y;
            let w1 = (y * y * (y - 2.0) * 3.0 + 4.0) / 6.0;
            let w2 = (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0;
            let w0 = z * z * z / 6.0;
            let w3 = 1.0 - w0 - w1 - w2;
            (floor as i64 - 1, [w0, w1, w2, w3])
        }
    }
}

/// Mode `'nearest'` outside the line: clamp to its first or last sample.
fn clamp_index(idx: i64, len: usize) -> usize {
    idx.clamp(0, len as i64 - 1) as usize
}

/// Resample `input` along `axis` to `output.shape()[axis]` samples, writing into `output`
/// (same shape as `input` on the other axes). `clip` clamps every result to `[lo, hi]` before
/// it is narrowed to `O`. Parallel over the outer axis; each worker keeps its own scratch.
pub(crate) fn resample_axis_into<I: Sample, O: Sample>(
    input: ArrayView3<'_, I>,
    output: ArrayViewMut3<'_, O>,
    axis: usize,
    order: SplineOrder,
    clip: Option<(f64, f64)>,
) {
    let n_in = input.len_of(Axis(axis));
    let n_out = output.len_of(Axis(axis));
    let taps = Taps::new(n_in, n_out, order);
    // Put the resampled axis in the middle and a remaining axis (preferably the contiguous x)
    // last, so that each worker owns one plane `(n, lines)` of the output.
    let perm = match axis {
        0 => [1, 0, 2],
        1 => [0, 1, 2],
        _ => [0, 2, 1],
    };
    let src = input.permuted_axes(perm);
    let mut dst = output.permuted_axes(perm);
    dst.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(src.axis_iter(Axis(0)).into_par_iter())
        .for_each_init(Vec::new, |scratch, (dst_plane, src_plane)| {
            resample_plane(src_plane, dst_plane, &taps, order, clip, scratch);
        });
}

/// Resample the columns of one plane `(n_in, lines)` into `(n_out, lines)`, a block of
/// [`LINES_PER_BLOCK`] lines at a time.
fn resample_plane<I: Sample, O: Sample>(
    src: ArrayView2<'_, I>,
    mut dst: ArrayViewMut2<'_, O>,
    taps: &Taps,
    order: SplineOrder,
    clip: Option<(f64, f64)>,
    scratch: &mut Vec<f64>,
) {
    let n_lines = src.len_of(Axis(1));
    let mut start = 0;
    while start < n_lines {
        let width = LINES_PER_BLOCK.min(n_lines - start);
        let block = src.slice(s![.., start..start + width]);
        load_block(block, order, scratch);
        let out_block = dst.slice_mut(s![.., start..start + width]);
        interpolate_block(scratch, width, taps, clip, out_block);
        start += width;
    }
}

/// Copy a block of lines into `scratch` (row-major `(rows, width)`), padded and prefiltered
/// for the cubic spline.
fn load_block<I: Sample>(block: ArrayView2<'_, I>, order: SplineOrder, scratch: &mut Vec<f64>) {
    let (n, width) = block.dim();
    let pad = if order == SplineOrder::Cubic {
        CUBIC_PAD
    } else {
        0
    };
    let rows = n + 2 * pad;
    scratch.clear();
    scratch.resize(rows * width, 0.0);
    for (r, line) in block.outer_iter().enumerate() {
        let row = &mut scratch[(r + pad) * width..(r + pad + 1) * width];
        for (dst, v) in row.iter_mut().zip(line.iter()) {
            *dst = v.to_f64();
        }
    }
    if order == SplineOrder::Cubic {
        pad_edges(scratch, width, pad, n);
        cubic_prefilter(scratch, width);
    }
}

/// `np.pad(.., pad, mode='edge')` on every line of the block.
fn pad_edges(scratch: &mut [f64], width: usize, pad: usize, n: usize) {
    let (head, rest) = scratch.split_at_mut(pad * width);
    let first = &rest[..width];
    for row in head.chunks_exact_mut(width) {
        row.copy_from_slice(first);
    }
    let last_start = (pad + n - 1) * width;
    let (body, tail) = scratch.split_at_mut(last_start + width);
    let last = &body[last_start..];
    for row in tail.chunks_exact_mut(width) {
        row.copy_from_slice(last);
    }
}

/// scipy's `spline_filter1d(order=3, mode='nearest')` on every line of the block: gain, then a
/// causal and an anti-causal recursive pass with the reflect-mode initial values.
fn cubic_prefilter(c: &mut [f64], width: usize) {
    let z = CUBIC_POLE;
    let len = c.len() / width;
    let gain = (1.0 - z) * (1.0 - 1.0 / z);
    c.iter_mut().for_each(|v| *v *= gain);
    init_causal_reflect(c, width, len, z);
    for r in 1..len {
        let (prev, cur) = c.split_at_mut(r * width);
        let prev = &prev[(r - 1) * width..];
        for (v, p) in cur[..width].iter_mut().zip(prev) {
            *v += z * p;
        }
    }
    let factor = z / (z - 1.0);
    c[(len - 1) * width..].iter_mut().for_each(|v| *v *= factor);
    for r in (0..len - 1).rev() {
        let (cur, next) = c.split_at_mut((r + 1) * width);
        let cur = &mut cur[r * width..];
        for (v, n) in cur.iter_mut().zip(&next[..width]) {
            *v = z * (n - *v);
        }
    }
}

/// scipy `_init_causal_reflect`, for every line of the block at once.
fn init_causal_reflect(c: &mut [f64], width: usize, len: usize, z: f64) {
    let z_n = z.powf(len as f64);
    let row = |r: usize| r * width..(r + 1) * width;
    let mut sum: Vec<f64> = c[row(0)]
        .iter()
        .zip(&c[row(len - 1)])
        .map(|(first, last)| first + z_n * last)
        .collect();
    let mut z_i = z;
    for i in 1..len {
        if z_i.abs() < NEGLIGIBLE_POLE_POWER {
            break;
        }
        let (ahead, behind) = (row(i), row(len - 1 - i));
        for (j, s) in sum.iter_mut().enumerate() {
            *s += z_i * (c[ahead.start + j] + z_n * c[behind.start + j]);
        }
        z_i *= z;
    }
    let scale = z / (1.0 - z_n * z_n);
    for (v, s) in c[row(0)].iter_mut().zip(&sum) {
        *v += s * scale;
    }
}

/// Evaluate every output row of the block from the loaded (prefiltered) rows.
fn interpolate_block<O: Sample>(
    rows: &[f64],
    width: usize,
    taps: &Taps,
    clip: Option<(f64, f64)>,
    mut out: ArrayViewMut2<'_, O>,
) {
    let mut acc = vec![0.0f64; width];
    for (o, mut out_row) in out.outer_iter_mut().enumerate().take(taps.n_out()) {
        acc.iter_mut().for_each(|a| *a = 0.0);
        for (idx, w) in taps.of(o) {
            let row = &rows[idx * width..(idx + 1) * width];
            for (a, v) in acc.iter_mut().zip(row) {
                *a += w * v;
            }
        }
        for (dst, a) in out_row.iter_mut().zip(&acc) {
            let v = match clip {
                Some((lo, hi)) => a.clamp(lo, hi),
                None => *a,
            };
            *dst = O::from_f64(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn resample_line(values: &[f64], n_out: usize, order: SplineOrder) -> Vec<f64> {
        let input = Array3::from_shape_vec((1, 1, values.len()), values.to_vec())
            .expect("shape matches the values");
        let mut out = Array3::<f64>::zeros((1, 1, n_out));
        resample_axis_into(input.view(), out.view_mut(), 2, order, None);
        out.iter().copied().collect()
    }

    #[test]
    fn linear_taps_follow_pixel_centre_coordinates() {
        // 4 -> 8: output 1 reads cc = 1.5 * 0.5 - 0.5 = 0.25, weights 0.75 / 0.25 on 0 and 1;
        // output 0 reads cc = -0.25: floor -1 clamps to 0, so both taps are sample 0.
        let taps = Taps::new(4, 8, SplineOrder::Linear);
        assert_eq!(taps.of(1).collect::<Vec<_>>(), [(0, 0.75), (1, 0.25)]);
        assert_eq!(taps.of(0).collect::<Vec<_>>(), [(0, 0.25), (0, 0.75)]);
    }

    #[test]
    fn nearest_rounds_half_up_like_scipy() {
        // 2 -> 4: cc = -0.25, 0.25, 0.75, 1.25 -> floor(cc + 0.5) = 0, 0, 1, 1.
        let out = resample_line(&[10.0, 20.0], 4, SplineOrder::Nearest);
        assert_eq!(out, [10.0, 10.0, 20.0, 20.0]);
    }

    #[test]
    fn cubic_reproduces_a_constant_exactly_enough() {
        let out = resample_line(&[2.5; 7], 13, SplineOrder::Cubic);
        for v in out {
            assert!((v - 2.5).abs() < 1e-12, "{v}");
        }
    }

    #[test]
    fn cubic_reproduces_a_ramp_away_from_the_borders() {
        // A cubic B-spline interpolant reproduces linear functions; the edge padding bends it
        // near the ends, by a factor |sqrt(3) - 2|^d at distance d (1e-6 at d = 10).
        let ramp: Vec<f64> = (0..40).map(|i| 3.0 * i as f64 - 7.0).collect();
        let out = resample_line(&ramp, 64, SplineOrder::Cubic);
        let scale = 40.0 / 64.0;
        let mut n_checked = 0;
        for (o, v) in out.iter().enumerate() {
            let cc = (o as f64 + 0.5) * scale - 0.5;
            if (10.0..=29.0).contains(&cc) {
                assert!((v - (3.0 * cc - 7.0)).abs() < 1e-4, "o {o}: {v}");
                n_checked += 1;
            }
        }
        assert_eq!(n_checked, 30);
    }

    #[test]
    fn cubic_interpolates_the_samples_at_identity_scale() {
        let values = [0.0, 4.0, -1.0, 3.0, 8.0, 2.0];
        let out = resample_line(&values, 6, SplineOrder::Cubic);
        for (v, want) in out.iter().zip(values) {
            assert!((v - want).abs() < 1e-12, "{v} vs {want}");
        }
    }
}
