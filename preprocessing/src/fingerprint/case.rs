//! One training case's part of the fingerprint: spacing, shape after cropping to the nonzero
//! region, relative size, and the sampled foreground intensities per channel.
//!
//! nnU-Net: `DatasetFingerprintExtractor.analyze_case` and `collect_foreground_intensities`
//! (`reference/nnunet.md` §2).

use std::path::Path;

use ndarray::{ArrayView3, ArrayView4, Axis};

use super::FingerprintError;
use crate::crop::{bbox, nonzero_mask};
use crate::rng::RandomState;
use crate::{read_label_map, read_stacked, Case};

/// nnU-Net's seed of the per-case `RandomState` in `collect_foreground_intensities`.
const SAMPLING_SEED: u32 = 1234;

/// What one case contributes to the fingerprint.
#[derive(Debug)]
pub(crate) struct CaseFingerprint {
    /// Spacing `(z, y, x)` of the case's images.
    pub spacing: [f64; 3],
    /// Shape `(z, y, x)` of the bounding box of the nonzero mask.
    pub shape_after_crop: [usize; 3],
    /// `prod(shape_after_crop) / prod(shape)`.
    pub relative_size: f64,
    /// Whether the case has foreground; without, its sample slots were left untouched.
    pub has_foreground: bool,
}

/// Reads one case and computes its contribution, filling `slots[c]` (one per channel, all of
/// the same length) with foreground intensities of channel `c` drawn with replacement.
///
/// # Errors
/// Unreadable files, a channel count other than `n_channels`, channels or label of different
/// shapes, NaN intensities, a missing label path.
pub(crate) fn analyze_case(
    case: &Case,
    n_channels: usize,
    slots: &mut [&mut [f32]],
) -> Result<CaseFingerprint, FingerprintError> {
    let label_path = case
        .label
        .as_deref()
        .ok_or_else(|| FingerprintError::MissingLabel {
            case: case.id.clone(),
        })?;
    let (data, geometry) = read_stacked(&case.images, n_channels, true).map_err(|source| {
        FingerprintError::Channels {
            case: case.id.clone(),
            n_channels,
            source: Box::new(source),
        }
    })?;
    let spacing = geometry.spacing().0;
    let shape = spatial_shape(data.view());
    let labels = read_label_map(label_path).map_err(|source| FingerprintError::Read {
        case: case.id.clone(),
        source,
    })?;
    check_shape(case, label_path, shape, labels.data_shape().0)?;
    // nnU-Net crop_to_nonzero: the box of the hole-filled OR-over-channels nonzero mask. Its
    // -1 marking only touches background, so "cropped seg > 0" is "label > 0" inside the box.
    let bounding_box = bbox(nonzero_mask(data.view()).view());
    let cropped = bounding_box.crop(data.view());
    let cropped_labels = bounding_box.crop3(labels.data.index_axis(Axis(0), 0));
    let has_foreground = sample_foreground(cropped, cropped_labels, slots);
    let shape_after_crop = bounding_box.shape();
    let n_voxels = |s: [usize; 3]| s.iter().product::<usize>() as f64;
    Ok(CaseFingerprint {
        spacing,
        shape_after_crop,
        relative_size: n_voxels(shape_after_crop) / n_voxels(shape),
        has_foreground,
    })
}

fn check_shape(
    case: &Case,
    path: &Path,
    expected: [usize; 3],
    found: [usize; 3],
) -> Result<(), FingerprintError> {
    if expected == found {
        return Ok(());
    }
    Err(FingerprintError::ShapeMismatch {
        case: case.id.clone(),
        path: path.to_path_buf(),
        expected,
        found,
    })
}

fn spatial_shape(data: ArrayView4<'_, f32>) -> [usize; 3] {
    let (_, z, y, x) = data.dim();
    [z, y, x]
}

/// nnU-Net `collect_foreground_intensities`: one `RandomState(1234)` per case, shared by its
/// channels in order; per channel the foreground voxels (label > 0) in C order, and
/// `rs.choice(foreground, n_samples, replace=True)` (masked rejection draws of indices) into
/// that channel's slot. Without foreground (the mask is shared by the channels) nothing is
/// drawn and `false` is returned.
fn sample_foreground(
    data: ArrayView4<'_, f32>,
    labels: ArrayView3<'_, u16>,
    slots: &mut [&mut [f32]],
) -> bool {
    let mut rs = RandomState::new(SAMPLING_SEED);
    for (channel, slot) in data.outer_iter().zip(slots.iter_mut()) {
        // ndarray's `iter` walks views in logical (C) order, as numpy's boolean indexing.
        let foreground: Vec<f32> = channel
            .iter()
            .zip(labels.iter())
            .filter(|(_, &label)| label > 0)
            .map(|(&v, _)| v)
            .collect();
        if foreground.is_empty() {
            return false;
        }
        let max_index = (foreground.len() - 1) as u64;
        for value in slot.iter_mut() {
            *value = foreground[rs.bounded(max_index) as usize];
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, Array4};

    // numpy 2.4.6: rs = np.random.RandomState(1234)
    //   rs.choice(np.array([10, 20, 30], np.float32), 6, replace=True) -> [30 20 10 10 10 20]
    //   rs.choice(np.array([1, 2, 3], np.float32), 6, replace=True)    -> [2 2 3 3 3 1]
    //   (a fresh RandomState(1234) would give [3 2 1 1 1 2] for the second channel)
    #[test]
    fn channels_share_one_random_state_per_case() {
        let mut data = Array4::<f32>::zeros((2, 1, 2, 5));
        let mut labels = Array3::<u16>::zeros((1, 2, 5));
        for x in 0..3 {
            data[[0, 0, 1, x]] = 10.0 * (x + 1) as f32;
            data[[1, 0, 1, x]] = (x + 1) as f32;
            labels[[0, 1, x]] = 1 + x as u16 % 2;
        }
        data[[0, 0, 0, 0]] = 99.0; // background: never sampled
        data[[1, 0, 1, 4]] = 7.0;
        let (mut first, mut second) = ([0.0; 6], [0.0; 6]);
        let mut slots = [&mut first[..], &mut second[..]];
        assert!(sample_foreground(data.view(), labels.view(), &mut slots));
        assert_eq!(first, [30.0, 20.0, 10.0, 10.0, 10.0, 20.0]);
        assert_eq!(second, [2.0, 2.0, 3.0, 3.0, 3.0, 1.0]);
        let mut untouched = [-1.0; 6];
        let background = Array3::zeros((1, 2, 5));
        assert!(!sample_foreground(
            data.view(),
            background.view(),
            &mut [&mut untouched[..]]
        ));
        assert_eq!(untouched, [-1.0; 6]);
    }
}
