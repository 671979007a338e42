//! The dataset-level planning rules: target spacing (with nnU-Net's anisotropy rule), the axis
//! transpose, shapes after resampling, the initial patch size, and the normalization choice.
//!
//! nnU-Net: `default_experiment_planner.py` (`determine_fullres_target_spacing`,
//! `determine_transpose`, `plan_experiment`, `get_plans_for_configuration`,
//! `determine_normalization_scheme_and_whether_mask_is_used_for_norm`).

use crate::numeric::{argmax_first, median, per_axis, percentile, product};
use crate::{Fingerprint, NormalizationScheme, ANISO_THRESHOLD};

/// Why the 3d_fullres target spacing is what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSpacing {
    /// Per-axis 50th percentile of the case spacings, `(z, y, x)`.
    pub median_spacing: [f64; 3],
    /// Per-axis 50th percentile of the cropped shapes.
    pub median_shape: [f64; 3],
    /// Set when the anisotropy rule replaced the worst axis' spacing.
    pub anisotropy: Option<Anisotropy>,
    /// Set when the user overrode the result.
    pub overridden: bool,
    /// The target spacing used, `(z, y, x)` (not transposed).
    pub target: [f64; 3],
}

/// The anisotropy rule fired: one axis' spacing is more than 3x the others' and it has fewer
/// than a third of their voxels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anisotropy {
    /// The low-resolution axis.
    pub axis: usize,
    /// Its median spacing.
    pub median_spacing: f64,
    /// The largest median spacing of the other axes.
    pub max_other_spacing: f64,
    /// The 10th percentile of its spacings over cases.
    pub percentile_10: f64,
    /// The spacing chosen (the percentile, raised to just above the others if smaller).
    pub chosen: f64,
}

/// nnU-Net's `determine_fullres_target_spacing`: per-axis median spacing, except for an
/// anisotropic axis, which takes the 10th percentile of its spacings (never below the other
/// axes' spacing: then `max(other) + 1e-5`).
pub(crate) fn target_spacing(fingerprint: &Fingerprint) -> TargetSpacing {
    let spacings = fingerprint.spacings();
    let shapes: Vec<[f64; 3]> = fingerprint
        .shapes_after_crop()
        .iter()
        .map(|s| s.map(|v| v as f64))
        .collect();
    let mut target = per_axis(spacings, |v| percentile(v, 50.0));
    let median_spacing = target;
    let median_shape = per_axis(&shapes, |v| percentile(v, 50.0));
    let worst = argmax_first(&target);
    let others: Vec<usize> = (0..3).filter(|&a| a != worst).collect();
    let max_other_spacing = others.iter().map(|&a| target[a]).fold(f64::MIN, f64::max);
    let min_other_size = others
        .iter()
        .map(|&a| median_shape[a])
        .fold(f64::MAX, f64::min);
    let aniso_spacing = target[worst] > ANISO_THRESHOLD * max_other_spacing;
    let aniso_voxels = median_shape[worst] * ANISO_THRESHOLD < min_other_size;
    let mut anisotropy = None;
    if aniso_spacing && aniso_voxels {
        let column: Vec<f64> = spacings.iter().map(|s| s[worst]).collect();
        let percentile_10 = percentile(&column, 10.0);
        let chosen = if percentile_10 < max_other_spacing {
            max_other_spacing.max(percentile_10) + 1e-5
        } else {
            percentile_10
        };
        target[worst] = chosen;
        anisotropy = Some(Anisotropy {
            axis: worst,
            median_spacing: median_spacing[worst],
            max_other_spacing,
            percentile_10,
            chosen,
        });
    }
    TargetSpacing {
        median_spacing,
        median_shape,
        anisotropy,
        overridden: false,
        target,
    }
}

/// nnU-Net's `determine_transpose`: the largest-spacing axis first (first among ties), the
/// others in order. Returns `(transpose_forward, transpose_backward)`.
pub(crate) fn transpose(target_spacing: &[f64; 3]) -> ([usize; 3], [usize; 3]) {
    let first = argmax_first(target_spacing);
    let mut forward = [first, 0, 0];
    let mut rest = (0..3).filter(|&a| a != first);
    for slot in forward.iter_mut().skip(1) {
        *slot = rest.next().expect("two axes remain besides the first");
    }
    let mut backward = [0; 3];
    for (pos, &axis) in forward.iter().enumerate() {
        backward[axis] = pos;
    }
    (forward, backward)
}

/// `shape` resampled from `old_spacing` to `new_spacing`:
/// `round_half_even(old_spacing / new_spacing * shape)` per axis (Python's `round`). The one
/// definition: planning sizes with it and preprocessing resamples to it. Spacings are not
/// checked here (a zero or non-finite spacing gives a meaningless shape); the resampler refuses
/// them.
///
/// nnU-Net: `preprocessing/resampling/default_resampling.py::compute_new_shape`.
pub fn compute_new_shape<const N: usize>(
    shape: [usize; N],
    old_spacing: [f64; N],
    new_spacing: [f64; N],
) -> [usize; N] {
    std::array::from_fn(|i| {
        (old_spacing[i] / new_spacing[i] * shape[i] as f64).round_ties_even() as usize
    })
}

/// Median (numpy `np.median`, per axis) of every case's shape after resampling to `target`.
pub(crate) fn median_resampled_shape(fingerprint: &Fingerprint, target: &[f64; 3]) -> [f64; 3] {
    let new_shapes: Vec<[f64; 3]> = fingerprint
        .shapes_after_crop()
        .iter()
        .zip(fingerprint.spacings())
        .map(|(shape, spacing)| compute_new_shape(*shape, *spacing, *target).map(|n| n as f64))
        .collect();
    per_axis(&new_shapes, median)
}

/// nnU-Net's initial patch: the inverse spacing scaled to the volume of 256³ (3D) or 2048²
/// (2D), rounded half-to-even, then clipped per axis to the median shape (which may be
/// fractional, hence floats).
pub(crate) fn initial_patch_size(spacing: &[f64], median_shape: &[f64]) -> Vec<f64> {
    let inverse: Vec<f64> = spacing.iter().map(|s| 1.0 / s).collect();
    let scale = if spacing.len() == 3 {
        (256f64.powi(3) / product(&inverse)).powf(1.0 / 3.0)
    } else {
        (2048f64.powi(2) / product(&inverse)).powf(1.0 / 2.0)
    };
    inverse
        .iter()
        .zip(median_shape)
        .map(|(t, &m)| (t * scale).round_ties_even().min(m))
        .collect()
}

/// nnU-Net's `get_normalization_scheme`: by channel name, case-insensitively; anything
/// unrecognised is z-scored.
pub(crate) fn normalization_scheme(channel_name: &str) -> NormalizationScheme {
    match channel_name.to_lowercase().as_str() {
        "ct" => NormalizationScheme::CTNormalization,
        "nonorm" => NormalizationScheme::NoNormalization,
        "zscore" => NormalizationScheme::ZScoreNormalization,
        "rescale_to_0_1" => NormalizationScheme::RescaleTo01,
        "rgb_to_0_1" => NormalizationScheme::RgbTo01,
        _ => NormalizationScheme::ZScoreNormalization,
    }
}

/// Whether a channel is normalized inside the nonzero mask only: when cropping removed more
/// than a quarter of the typical image and the scheme is z-score (the only scheme that leaves
/// pixels outside the mask at zero).
pub(crate) fn use_mask_for_norm(scheme: NormalizationScheme, relative_size: f64) -> bool {
    relative_size < 0.75 && scheme == NormalizationScheme::ZScoreNormalization
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(spacings: Vec<[f64; 3]>, shape: [usize; 3]) -> Fingerprint {
        let shapes = vec![shape; spacings.len()];
        Fingerprint::new(spacings, shapes, 1.0, vec![]).expect("valid fingerprint")
    }

    #[test]
    fn prostate_like_target_uses_the_10th_percentile_of_z() {
        // nnunet.md §12: 24 cases at z 3.6 and 8 at 3.0, in-plane 0.625, shape (20, 320, 319).
        let mut spacings = vec![[3.6, 0.625, 0.625]; 24];
        spacings.extend(vec![[3.0, 0.625, 0.625]; 8]);
        let fp = fingerprint(spacings, [20, 320, 319]);
        let ts = target_spacing(&fp);
        assert_eq!(ts.target, [3.0, 0.625, 0.625]);
        let aniso = ts.anisotropy.expect("anisotropic");
        assert_eq!(
            (aniso.axis, aniso.median_spacing, aniso.percentile_10),
            (0, 3.6, 3.0)
        );
        assert_eq!(
            median_resampled_shape(&fp, &ts.target),
            [24.0, 320.0, 319.0]
        );
    }

    #[test]
    fn anisotropic_percentile_below_in_plane_is_raised_just_above_it() {
        // Median z 4.0 > 3 x 1.0, but 10% of cases have z 0.5 < 1.0 -> 1.0 + 1e-5.
        let mut spacings = vec![[4.0, 1.0, 1.0]; 8];
        spacings.extend(vec![[0.5, 1.0, 1.0]; 2]);
        let ts = target_spacing(&fingerprint(spacings, [10, 200, 200]));
        assert_eq!(ts.target, [1.0 + 1e-5, 1.0, 1.0]);
    }

    #[test]
    fn anisotropic_spacing_with_many_slices_keeps_the_median() {
        // z spacing 5 > 3 x 1 but 100 slices x 3 >= 200 voxels in-plane: not anisotropic.
        let ts = target_spacing(&fingerprint(
            vec![[5.0, 1.0, 1.0], [4.0, 1.0, 1.0]],
            [100, 200, 200],
        ));
        assert_eq!(ts.target, [4.5, 1.0, 1.0]);
        assert!(ts.anisotropy.is_none());
    }

    #[test]
    fn transpose_puts_the_coarsest_axis_first() {
        assert_eq!(transpose(&[0.8, 0.8, 3.0]), ([2, 0, 1], [1, 2, 0]));
        assert_eq!(transpose(&[1.0, 3.0, 3.0]), ([1, 0, 2], [1, 0, 2]));
        assert_eq!(transpose(&[1.0, 1.0, 1.0]), ([0, 1, 2], [0, 1, 2]));
    }

    #[test]
    fn compute_new_shape_rounds_half_to_even() {
        assert_eq!(
            compute_new_shape([20, 5, 3], [3.6, 1.0, 1.0], [3.0, 2.0, 2.0]),
            [24, 2, 2]
        );
        assert_eq!(compute_new_shape([7], [1.0], [2.0]), [4]); // 3.5 -> 4
        assert_eq!(compute_new_shape([5], [1.0], [2.0]), [2]); // 2.5 -> 2
                                                               // 5 * 0.5 = 2.5 -> 2 (Python round), 7 * 0.5 = 3.5 -> 4, 3 * 1.5 = 4.5 -> 4.
        assert_eq!(
            compute_new_shape([5, 7, 3], [1.0, 1.0, 1.5], [2.0, 2.0, 1.0]),
            [2, 4, 4]
        );
        // 512 * 0.7 = 358.4 -> 358.
        assert_eq!(
            compute_new_shape([400, 512, 512], [0.7; 3], [1.0; 3]),
            [280, 358, 358]
        );
    }

    #[test]
    fn initial_patch_is_256_cubed_volume_clipped_to_the_median() {
        assert_eq!(
            initial_patch_size(&[1.0; 3], &[36.0, 50.0, 35.0]),
            vec![36.0, 50.0, 35.0]
        );
        assert_eq!(initial_patch_size(&[1.0; 3], &[300.0; 3]), vec![256.0; 3]);
        assert_eq!(
            initial_patch_size(&[1.37, 1.25, 1.25], &[115.0, 320.0, 232.0]),
            vec![115.0, 264.0, 232.0]
        );
        assert_eq!(
            initial_patch_size(&[1.0, 1.0], &[4000.0, 4000.0]),
            vec![2048.0, 2048.0]
        );
    }

    #[test]
    fn normalization_follows_channel_names_and_mask_rule() {
        assert_eq!(
            normalization_scheme("Ct"),
            NormalizationScheme::CTNormalization
        );
        assert_eq!(
            normalization_scheme("T2"),
            NormalizationScheme::ZScoreNormalization
        );
        assert_eq!(
            normalization_scheme("rgb_to_0_1"),
            NormalizationScheme::RgbTo01
        );
        assert!(use_mask_for_norm(
            NormalizationScheme::ZScoreNormalization,
            0.6
        ));
        assert!(!use_mask_for_norm(
            NormalizationScheme::ZScoreNormalization,
            0.75
        ));
        assert!(!use_mask_for_norm(
            NormalizationScheme::CTNormalization,
            0.6
        ));
    }
}
