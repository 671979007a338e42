//! The 3d_lowres / cascade rule: when the 3d_fullres patch covers less than a quarter of the
//! median image, coarsen the spacing by 3% per step until it covers a quarter, and keep the
//! low-resolution configuration only if it halves the image at least.
//!
//! nnU-Net: `default_experiment_planner.py::plan_experiment` (`lowres_creation_threshold`,
//! `spacing_increase_factor`).

use crate::configure::{plan_configuration, PlanContext, PlannedConfiguration};
use crate::numeric::product;
use crate::PlanError;

/// nnU-Net's `lowres_creation_threshold`.
const LOWRES_THRESHOLD: f64 = 0.25;
/// nnU-Net's `spacing_increase_factor`.
const SPACING_INCREASE: f64 = 1.03;

/// What became of the 3d_lowres configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum LowresDecision {
    /// No 3D configurations (the median image has one slice).
    No3d,
    /// The fullres patch already covers at least a quarter of the median image.
    NotNeeded {
        /// `prod(fullres patch) / prod(median shape)`.
        patch_fraction: f64,
    },
    /// A low-resolution configuration was found but the image shrank by less than half.
    Dropped {
        /// Spacing increase steps taken.
        n_steps: usize,
        /// `prod(fullres median) / prod(lowres median)`.
        size_ratio: f64,
    },
    /// 3d_lowres and 3d_cascade_fullres were added.
    Kept {
        /// Spacing increase steps taken.
        n_steps: usize,
        /// `prod(fullres median) / prod(lowres median)`.
        size_ratio: f64,
    },
}

/// nnU-Net's spacing step: axes more than 2x finer than the coarsest grow by 3%; if there are
/// none, all axes grow.
fn coarsen(spacing: &mut [f64]) {
    let max_spacing = spacing.iter().copied().fold(f64::MIN, f64::max);
    let any_fine = spacing.iter().any(|&s| max_spacing / s > 2.0);
    for s in spacing.iter_mut() {
        if !any_fine || max_spacing / *s > 2.0 {
            *s *= SPACING_INCREASE;
        }
    }
}

/// Searches the 3d_lowres configuration for `fullres`, whose median image (transposed) is
/// `median_shape`. Returns the decision and the kept configuration. The search also stops if
/// the coarsened median image would round to an empty axis (where nnU-Net would loop forever).
pub(crate) fn plan_lowres(
    ctx: &PlanContext,
    fullres: &PlannedConfiguration,
    median_shape: &[f64],
    num_training: usize,
) -> Result<(LowresDecision, Option<PlannedConfiguration>), PlanError> {
    let fullres_voxels = product(median_shape);
    let patch: Vec<f64> = fullres.patch_size.iter().map(|&p| p as f64).collect();
    let patch_fraction = product(&patch) / fullres_voxels;
    if patch_fraction >= LOWRES_THRESHOLD {
        return Ok((LowresDecision::NotNeeded { patch_fraction }, None));
    }
    let mut spacing = fullres.spacing.clone();
    let mut median_voxels = fullres_voxels;
    let mut lowres: Option<PlannedConfiguration> = None;
    let mut n_steps = 0;
    let mut fraction = patch_fraction;
    while fraction < LOWRES_THRESHOLD {
        coarsen(&mut spacing);
        let scaled: Vec<f64> = (0..spacing.len())
            .map(|a| fullres.spacing[a] / spacing[a] * median_shape[a])
            .collect();
        let rounded: Vec<f64> = scaled.iter().map(|v| v.round_ties_even()).collect();
        if rounded.contains(&0.0) {
            break;
        }
        median_voxels = product(&scaled);
        let approx = median_voxels * num_training as f64;
        let plan = plan_configuration(ctx, "3d_lowres", &spacing, &rounded, approx)?;
        let patch: Vec<f64> = plan.patch_size.iter().map(|&p| p as f64).collect();
        fraction = product(&patch) / median_voxels;
        lowres = Some(plan);
        n_steps += 1;
    }
    let size_ratio = fullres_voxels / median_voxels;
    match lowres {
        Some(plan) if size_ratio >= 2.0 => Ok((
            LowresDecision::Kept {
                n_steps,
                size_ratio,
            },
            Some(plan),
        )),
        _ => Ok((
            LowresDecision::Dropped {
                n_steps,
                size_ratio,
            },
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarsen_grows_fine_axes_first_then_all() {
        let mut s = vec![5.0, 1.0, 2.0];
        coarsen(&mut s);
        assert_eq!(s, vec![5.0, 1.03, 2.0 * 1.03]);
        let mut iso = vec![1.0, 0.767578125, 0.767578125];
        for _ in 0..30 {
            coarsen(&mut iso);
        }
        // nnunet.md §12 Liver-like: fullres x 1.03^30 = (2.427262, 1.863114, 1.863114).
        assert!((iso[0] - 2.427262).abs() < 1e-6, "{iso:?}");
        assert!((iso[1] - 1.863114).abs() < 1e-6, "{iso:?}");
    }
}
