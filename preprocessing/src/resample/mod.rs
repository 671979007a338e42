//! Resampling of images and label maps to a new shape, exactly as nnU-Net does it.
//!
//! nnU-Net: `preprocessing/resampling/default_resampling.py` (`determine_do_sep_z_and_axis`, `resample_data_or_seg`), with skimage's
//! `resize(mode='edge', anti_aliasing=False)` (= scipy `zoom(grid_mode=True, mode='nearest')`
//! followed by clipping to the input's range) and batchgenerators' `resize_segmentation`
//! (one-hot resampling of label maps). See `reference/nnunet.md` §3.8.
//!
//! Images are `(c, z, y, x)` `f32` arrays resampled in `f64`, one channel at a time, one axis at
//! a time (the spline is separable), in parallel over planes; label maps are `(c, z, y, x)`
//! `i16` (−1 marks "outside the nonzero mask").
//!
//! ```
//! use autoseg_planner::compute_new_shape;
//! use autoseg_preprocessing::resample::{resample_data, ResampleSettings};
//! use ndarray::Array4;
//!
//! let image = Array4::<f32>::from_elem((1, 4, 6, 6), 1.5);
//! let new_shape = compute_new_shape([4, 6, 6], [2.0, 1.0, 1.0], [1.0, 1.5, 1.5]);
//! assert_eq!(new_shape, [8, 4, 4]);
//! let out = resample_data(
//!     image.view(), new_shape, [2.0, 1.0, 1.0], [1.0, 1.5, 1.5], &ResampleSettings::nnunet_data(),
//! ).unwrap();
//! assert_eq!(out.dim(), (1, 8, 4, 4));
//! assert!(out.iter().all(|v| (v - 1.5).abs() < 1e-6));
//! ```

#[cfg(test)]
mod golden;
mod labels;
mod spline;

use crate::limits;
use ndarray::{Array3, Array4, ArrayView3, ArrayView4, ArrayViewMut3, Axis};
use thiserror::Error;

pub use autoseg_planner::{SplineOrder, ANISO_THRESHOLD};

use spline::{resample_axis_into, Sample};

/// Why a resampling request cannot be carried out.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ResampleError {
    /// A spacing is zero, negative or not finite.
    #[error("spacing {spacing:?} must be positive and finite on every axis")]
    InvalidSpacing {
        /// The offending spacing `(z, y, x)`.
        spacing: [f64; 3],
    },
    /// An input or target shape has an empty axis.
    #[error(
        "cannot resample from shape {from:?} to shape {to:?}: every axis needs at least one voxel"
    )]
    EmptyShape {
        /// Input shape `(z, y, x)`.
        from: [usize; 3],
        /// Target shape `(z, y, x)`.
        to: [usize; 3],
    },
    /// The resampled volume would take more memory than the ceiling allows (a spacing far from
    /// the target, or a target spacing edited to something tiny).
    #[error("resampling from shape {from:?} to shape {to:?} (z, y, x) {memory}")]
    OverCeiling {
        /// Input shape `(z, y, x)`.
        from: [usize; 3],
        /// Target shape `(z, y, x)`.
        to: [usize; 3],
        /// The memory needed and the ceiling.
        memory: crate::limits::OverCeiling,
    },
}

/// Whether to resample the low-resolution axis separately (nnU-Net's `force_separate_z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeparateZ {
    /// `force_separate_z: null`: decide from the spacings' anisotropy.
    Auto,
    /// `force_separate_z: true`: always, along the current spacing's low-resolution axis.
    Always,
    /// `force_separate_z: false`: never.
    Never,
}

/// How one plan entry (`resampling_data`, `resampling_seg`, `resampling_probabilities`)
/// resamples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResampleSettings {
    /// Order of the (in-plane, when separate) resampling.
    pub order: SplineOrder,
    /// Order along the low-resolution axis when it is resampled separately.
    pub order_z: SplineOrder,
    /// The separate-z rule.
    pub separate_z: SeparateZ,
}

impl ResampleSettings {
    /// nnU-Net's image resampling: order 3, order_z 0, separate z decided automatically
    /// (`resampling_fn_data_kwargs`).
    pub fn nnunet_data() -> ResampleSettings {
        ResampleSettings {
            order: SplineOrder::Cubic,
            order_z: SplineOrder::Nearest,
            separate_z: SeparateZ::Auto,
        }
    }

    /// nnU-Net's segmentation resampling: one-hot order 1, order_z 0, automatic separate z
    /// (`resampling_fn_seg_kwargs`).
    pub fn nnunet_seg() -> ResampleSettings {
        ResampleSettings {
            order: SplineOrder::Linear,
            order_z: SplineOrder::Nearest,
            separate_z: SeparateZ::Auto,
        }
    }

    /// nnU-Net's probability resampling at export: order 1, order_z 0, automatic separate z
    /// (`resampling_fn_probabilities_kwargs`).
    pub fn nnunet_probabilities() -> ResampleSettings {
        ResampleSettings {
            order: SplineOrder::Linear,
            order_z: SplineOrder::Nearest,
            separate_z: SeparateZ::Auto,
        }
    }
}

fn check_spacing(spacing: [f64; 3]) -> Result<(), ResampleError> {
    if spacing.iter().all(|s| s.is_finite() && *s > 0.0) {
        Ok(())
    } else {
        Err(ResampleError::InvalidSpacing { spacing })
    }
}

/// The axis to resample separately, or `None` to resample all axes together.
/// nnU-Net: `default_resampling.py::determine_do_sep_z_and_axis`: with [`SeparateZ::Auto`],
/// the current spacing is tested first (max/min > [`ANISO_THRESHOLD`]), then the new one, and
/// the low-resolution axis is taken from the spacing that passed; with [`SeparateZ::Always`],
/// from the current spacing. If two or three axes share the largest spacing there is no
/// unique low-resolution axis and the answer is `None`.
pub fn separate_z_axis(
    separate_z: SeparateZ,
    current_spacing: [f64; 3],
    new_spacing: [f64; 3],
) -> Option<usize> {
    let decisive = match separate_z {
        SeparateZ::Never => return None,
        SeparateZ::Always => current_spacing,
        SeparateZ::Auto if is_anisotropic(current_spacing) => current_spacing,
        SeparateZ::Auto if is_anisotropic(new_spacing) => new_spacing,
        SeparateZ::Auto => return None,
    };
    unique_lowres_axis(decisive)
}

fn is_anisotropic(spacing: [f64; 3]) -> bool {
    let max = spacing.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = spacing.iter().copied().fold(f64::INFINITY, f64::min);
    max / min > ANISO_THRESHOLD
}

/// nnU-Net `get_lowres_axis`: the axes where `max(spacing) / spacing == 1`, if exactly one.
fn unique_lowres_axis(spacing: [f64; 3]) -> Option<usize> {
    let max = spacing.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut axes = (0..3).filter(|&i| max / spacing[i] == 1.0);
    match (axes.next(), axes.next()) {
        (Some(axis), None) => Some(axis),
        _ => None,
    }
}

/// Resample an image `(c, z, y, x)` to `new_shape`, channel by channel, as nnU-Net's
/// `resample_data_or_seg_to_shape(is_seg=False)` does: skimage `resize` with `order`
/// (clipped to each channel's input range), or, when [`separate_z_axis`] picks an axis, a 2D
/// resize of each slice across that axis (clipped per slice) followed by unclipped
/// `order_z` interpolation along it (`map_coordinates(mode='nearest')`). If the shape already
/// matches, the data is returned unchanged (a copy, without clipping).
///
/// # Shapes
/// `data`: `(c, z, y, x)`; returns `(c, new_shape...)`.
///
/// # Errors
/// [`ResampleError::InvalidSpacing`], [`ResampleError::EmptyShape`] or
/// [`ResampleError::OverCeiling`].
pub fn resample_data(
    data: ArrayView4<'_, f32>,
    new_shape: [usize; 3],
    current_spacing: [f64; 3],
    new_spacing: [f64; 3],
    settings: &ResampleSettings,
) -> Result<Array4<f32>, ResampleError> {
    let shape = spatial_shape(data.dim());
    let spacings = [current_spacing, new_spacing];
    check_request::<f32>(data.len_of(Axis(0)), shape, new_shape, spacings)?;
    if shape == new_shape {
        return Ok(data.to_owned());
    }
    let axis = separate_z_axis(settings.separate_z, current_spacing, new_spacing);
    let [nz, ny, nx] = new_shape;
    let mut out = Array4::<f32>::zeros((data.len_of(Axis(0)), nz, ny, nx));
    for (channel, out_channel) in data.outer_iter().zip(out.outer_iter_mut()) {
        match axis {
            None => resize_image_into(channel, out_channel, settings.order),
            Some(axis) => resize_image_separate_z(channel, out_channel, axis, settings),
        }
    }
    Ok(out)
}

/// Resample a label map `(c, z, y, x)` to `new_shape` as nnU-Net's
/// `resample_data_or_seg_to_shape(is_seg=True)` does: batchgenerators' `resize_segmentation`
/// as installed with nnU-Net 2.8.1 (batchgenerators 0.25.5; order 0: nearest; otherwise each
/// label's mask is resampled as a float image and every voxel takes the label with the highest
/// score; exact ties go to the nearest neighbour's label if it is among the tied, else to the
/// smallest tied label). `shared/reference/nnunet.md` §3.8 still describes the older
/// ">= 0.5, later label wins" rule; the installed code is what we match.
/// or the separate-z variant (per-slice `resize_segmentation`, then nearest slices along the
/// axis for `order_z` 0, else one-hot interpolation along it with threshold `> 0.5`). If the
/// shape already matches, the labels are returned unchanged.
///
/// # Shapes
/// `seg`: `(c, z, y, x)`; returns `(c, new_shape...)`.
///
/// # Errors
/// [`ResampleError::InvalidSpacing`], [`ResampleError::EmptyShape`] or
/// [`ResampleError::OverCeiling`].
pub fn resample_labels(
    seg: ArrayView4<'_, i16>,
    new_shape: [usize; 3],
    current_spacing: [f64; 3],
    new_spacing: [f64; 3],
    settings: &ResampleSettings,
) -> Result<Array4<i16>, ResampleError> {
    let shape = spatial_shape(seg.dim());
    let spacings = [current_spacing, new_spacing];
    check_request::<i16>(seg.len_of(Axis(0)), shape, new_shape, spacings)?;
    if shape == new_shape {
        return Ok(seg.to_owned());
    }
    let axis = separate_z_axis(settings.separate_z, current_spacing, new_spacing);
    let [nz, ny, nx] = new_shape;
    let mut out = Array4::<i16>::zeros((seg.len_of(Axis(0)), nz, ny, nx));
    for (channel, out_channel) in seg.outer_iter().zip(out.outer_iter_mut()) {
        match axis {
            None => labels::resize_labels_into(channel, out_channel, settings.order),
            Some(axis) => labels::resize_labels_separate_z(channel, out_channel, axis, settings),
        }
    }
    Ok(out)
}

/// skimage `resize(image, out.shape, order, mode='edge', anti_aliasing=False)` of one 3D
/// volume: scipy grid-mode zoom, then clipping to the input's `[min, max]` (NaN ignored).
///
/// # Shapes
/// `input`: `(z, y, x)`; `out`: the target shape, every axis non-empty.
pub fn resize_image_into(
    input: ArrayView3<'_, f32>,
    out: ArrayViewMut3<'_, f32>,
    order: SplineOrder,
) {
    let clip = value_range(input.iter().copied());
    resize_3d_into(input, out, order, clip);
}

/// Resize every axis whose length differs, most-shrinking axis first (least intermediate
/// memory); intermediates are `f64`, `clip` applies to the final values.
pub(crate) fn resize_3d_into<I: Sample, O: Sample>(
    input: ArrayView3<'_, I>,
    mut out: ArrayViewMut3<'_, O>,
    order: SplineOrder,
    clip: Option<(f64, f64)>,
) {
    let in_shape = spatial_shape3(input.dim());
    let out_shape = spatial_shape3(out.dim());
    let mut axes: Vec<usize> = (0..3).filter(|&a| in_shape[a] != out_shape[a]).collect();
    axes.sort_by(|&a, &b| {
        let ratio = |i: usize| out_shape[i] as f64 / in_shape[i] as f64;
        ratio(a).total_cmp(&ratio(b))
    });
    let Some((&last, leading)) = axes.split_last() else {
        out.zip_mut_with(&input, |o, i| *o = O::from_f64(clamp_opt(i.to_f64(), clip)));
        return;
    };
    let Some((&first, middle)) = leading.split_first() else {
        resample_axis_into(input, out, last, order, clip);
        return;
    };
    let mut shape = in_shape;
    shape[first] = out_shape[first];
    let mut current = Array3::<f64>::zeros(shape);
    resample_axis_into(input, current.view_mut(), first, order, None);
    for &axis in middle {
        shape[axis] = out_shape[axis];
        let mut next = Array3::<f64>::zeros(shape);
        resample_axis_into(current.view(), next.view_mut(), axis, order, None);
        current = next;
    }
    resample_axis_into(current.view(), out, last, order, clip);
}

/// nnU-Net's separate-z path for one image channel.
fn resize_image_separate_z(
    input: ArrayView3<'_, f32>,
    mut out: ArrayViewMut3<'_, f32>,
    axis: usize,
    settings: &ResampleSettings,
) {
    let mut inplane_shape = spatial_shape3(out.dim());
    let n_slices = input.len_of(Axis(axis));
    inplane_shape[axis] = n_slices;
    let mut inplane = Array3::<f64>::zeros(inplane_shape);
    resize_3d_into(input, inplane.view_mut(), settings.order, None);
    // skimage clips each 2D slice to that slice's own input range.
    for (slice_in, mut slice_out) in input
        .axis_iter(Axis(axis))
        .zip(inplane.axis_iter_mut(Axis(axis)))
    {
        if let Some((lo, hi)) = value_range(slice_in.iter().copied()) {
            slice_out.mapv_inplace(|v| v.clamp(lo, hi));
        }
    }
    if n_slices == out.len_of(Axis(axis)) {
        out.zip_mut_with(&inplane, |o, v| *o = *v as f32);
    } else {
        resample_axis_into(inplane.view(), out, axis, settings.order_z, None);
    }
}

/// `[min, max]` of the values, ignoring NaN (skimage falls back to `nanmin`/`nanmax`);
/// `None` when there is no number.
fn value_range(values: impl Iterator<Item = f32>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| !v.is_nan())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    (lo <= hi).then_some((f64::from(lo), f64::from(hi)))
}

fn clamp_opt(v: f64, clip: Option<(f64, f64)>) -> f64 {
    match clip {
        Some((lo, hi)) => v.clamp(lo, hi),
        None => v,
    }
}

/// Refuses bad spacings, empty shapes and a resample whose arrays would pass the memory
/// ceiling: the output (`channels` volumes of `T`) plus two `f64` intermediates as large as the
/// per-axis maximum of both shapes.
fn check_request<T>(
    channels: usize,
    shape: [usize; 3],
    new_shape: [usize; 3],
    [current_spacing, new_spacing]: [[f64; 3]; 2],
) -> Result<(), ResampleError> {
    check_spacing(current_spacing)?;
    check_spacing(new_spacing)?;
    if shape.contains(&0) || new_shape.contains(&0) {
        return Err(ResampleError::EmptyShape {
            from: shape,
            to: new_shape,
        });
    }
    let output = limits::volume_bytes(channels, new_shape, std::mem::size_of::<T>());
    let largest = std::array::from_fn(|i| shape[i].max(new_shape[i]));
    let intermediates = limits::volume_bytes(2, largest, std::mem::size_of::<f64>());
    limits::check_volume_bytes(output.saturating_add(intermediates)).map_err(|memory| {
        ResampleError::OverCeiling {
            from: shape,
            to: new_shape,
            memory,
        }
    })
}

fn spatial_shape((_, z, y, x): (usize, usize, usize, usize)) -> [usize; 3] {
    [z, y, x]
}

fn spatial_shape3((z, y, x): (usize, usize, usize)) -> [usize; 3] {
    [z, y, x]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    #[test]
    fn separate_z_follows_nnunet_rules() {
        // Current spacing anisotropic: its lowres axis.
        assert_eq!(
            separate_z_axis(SeparateZ::Auto, [5.0, 1.0, 1.0], [1.0, 1.0, 1.0]),
            Some(0)
        );
        // Only the new spacing anisotropic: its lowres axis.
        assert_eq!(
            separate_z_axis(SeparateZ::Auto, [1.0, 1.0, 1.0], [1.0, 4.0, 1.0]),
            Some(1)
        );
        // Ratio exactly 3 is not anisotropic.
        assert_eq!(
            separate_z_axis(SeparateZ::Auto, [3.0, 1.0, 1.0], [3.0, 1.0, 1.0]),
            None
        );
        // Two axes share the max spacing (0.24, 1.25, 1.25): no unique lowres axis.
        assert_eq!(
            separate_z_axis(SeparateZ::Auto, [0.24, 1.25, 1.25], [1.0; 3]),
            None
        );
        // Forced: lowres axis of the current spacing even when isotropic enough.
        assert_eq!(
            separate_z_axis(SeparateZ::Always, [1.0, 1.0, 2.0], [1.0; 3]),
            Some(2)
        );
        assert_eq!(
            separate_z_axis(SeparateZ::Always, [1.0; 3], [1.0, 1.0, 9.0]),
            None
        );
        assert_eq!(
            separate_z_axis(SeparateZ::Never, [9.0, 1.0, 1.0], [1.0; 3]),
            None
        );
    }

    fn ramp(shape: (usize, usize, usize)) -> Array4<f32> {
        Array::from_shape_fn((1, shape.0, shape.1, shape.2), |(_, z, y, x)| {
            (0.5 * z as f64 - 1.25 * y as f64 + 2.0 * x as f64) as f32
        })
    }

    fn ramp_at(z: f64, y: f64, x: f64) -> f64 {
        0.5 * z - 1.25 * y + 2.0 * x
    }

    /// Compare with the ramp at every output voxel whose input coordinates lie at least
    /// `margin` samples inside the input on every axis; returns how many were checked.
    fn check_ramp(out: &Array4<f32>, from: [usize; 3], margin: f64, tol: f64) -> usize {
        let (_, nz, ny, nx) = out.dim();
        let to = [nz, ny, nx];
        let coord =
            |axis: usize, o: usize| (o as f64 + 0.5) * from[axis] as f64 / to[axis] as f64 - 0.5;
        let inside = |axis: usize, c: f64| c >= margin && c <= from[axis] as f64 - 1.0 - margin;
        let mut n_checked = 0;
        for ((_, z, y, x), got) in out.indexed_iter() {
            let c = [coord(0, z), coord(1, y), coord(2, x)];
            if (0..3).all(|axis| inside(axis, c[axis])) {
                let want = ramp_at(c[0], c[1], c[2]);
                assert!(
                    (f64::from(*got) - want).abs() < tol,
                    "({z},{y},{x}): {got} vs {want}"
                );
                n_checked += 1;
            }
        }
        n_checked
    }

    #[test]
    fn linear_reproduces_a_ramp_exactly_inside() {
        let data = ramp((6, 9, 8));
        let settings = ResampleSettings {
            order: SplineOrder::Linear,
            ..ResampleSettings::nnunet_data()
        };
        let out = resample_data(data.view(), [11, 5, 13], [1.0; 3], [1.0; 3], &settings).unwrap();
        assert!(check_ramp(&out, [6, 9, 8], 0.0, 1e-5) > 100);
    }

    #[test]
    fn cubic_reproduces_a_ramp_away_from_borders() {
        let data = ramp((30, 32, 34));
        let out = resample_data(
            data.view(),
            [41, 23, 47],
            [1.0; 3],
            [1.0; 3],
            &ResampleSettings::nnunet_data(),
        )
        .unwrap();
        // The edge padding bends the spline by |sqrt(3) - 2|^d at distance d: 2e-6 at d = 10.
        assert!(check_ramp(&out, [30, 32, 34], 10.0, 1e-4) > 500);
    }

    #[test]
    fn constants_survive_every_order() {
        let data = Array4::<f32>::from_elem((2, 5, 6, 7), -3.25);
        for order in [
            SplineOrder::Nearest,
            SplineOrder::Linear,
            SplineOrder::Cubic,
        ] {
            let settings = ResampleSettings {
                order,
                ..ResampleSettings::nnunet_data()
            };
            let out =
                resample_data(data.view(), [9, 4, 11], [1.0; 3], [1.0; 3], &settings).unwrap();
            assert_eq!(out.dim(), (2, 9, 4, 11));
            assert!(out.iter().all(|v| *v == -3.25), "order {order:?}");
        }
    }

    #[test]
    fn cubic_output_stays_within_the_input_range() {
        // A step overshoots with a cubic spline; skimage clips to the input's [min, max].
        let data = Array::from_shape_fn(
            (1, 4, 4, 12),
            |(_, _, _, x)| if x < 6 { 0.0f32 } else { 10.0 },
        );
        let out = resample_data(
            data.view(),
            [4, 4, 29],
            [1.0; 3],
            [1.0; 3],
            &ResampleSettings::nnunet_data(),
        )
        .unwrap();
        assert!(out.iter().all(|v| (0.0..=10.0).contains(v)));
        assert!(out.iter().any(|v| *v == 0.0) && out.iter().any(|v| *v == 10.0));
    }

    #[test]
    fn equal_shapes_return_the_data_unclipped() {
        let data = ramp((3, 4, 5));
        let out = resample_data(
            data.view(),
            [3, 4, 5],
            [1.0; 3],
            [2.0; 3],
            &ResampleSettings::nnunet_data(),
        )
        .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn separate_z_picks_the_nearest_slices() {
        // Spacing (5, 1, 1) -> separate along z with order_z 0; in-plane shape unchanged, so
        // output slice o is input slice floor((o + 0.5) * 3 / 7 - 0.5 + 0.5), clamped.
        let data = Array::from_shape_fn((1, 3, 4, 4), |(_, z, _, _)| 10.0 * z as f32);
        let out = resample_data(
            data.view(),
            [7, 4, 4],
            [5.0, 1.0, 1.0],
            [2.0, 1.0, 1.0],
            &ResampleSettings::nnunet_data(),
        )
        .unwrap();
        let picked: Vec<f32> = (0..7).map(|z| out[[0, z, 1, 2]]).collect();
        assert_eq!(picked, [0.0, 0.0, 10.0, 10.0, 10.0, 20.0, 20.0]);
    }

    #[test]
    fn empty_target_is_an_error() {
        let data = Array4::<f32>::zeros((1, 2, 2, 2));
        let err = resample_data(
            data.view(),
            [0, 2, 2],
            [1.0; 3],
            [1.0; 3],
            &ResampleSettings::nnunet_data(),
        );
        assert_eq!(
            err,
            Err(ResampleError::EmptyShape {
                from: [2, 2, 2],
                to: [0, 2, 2]
            })
        );
    }
}
