//! `plan`: fingerprint, dataset description and settings in; plans (and the reasons) out.
//!
//! nnU-Net: `default_experiment_planner.py::plan_experiment`.

use std::collections::BTreeMap;

use crate::configure::{plan_configuration, PlanContext, PlannedConfiguration};
use crate::lowres::{plan_lowres, LowresDecision};
use crate::numeric::product;
use crate::plans::{ArchitectureEntry, ConfigurationEntry, PLANS_SCHEMA_VERSION};
use crate::report::PlanReport;
use crate::rules::use_mask_for_norm;
use crate::rules::{median_resampled_shape, normalization_scheme, target_spacing, transpose};
use crate::ResamplingSettings;
use crate::{DatasetInfo, Fingerprint, NormalizationScheme, PlanError, PlannerSettings, Plans};

/// Plans every configuration nnU-Net would (`2d`, `3d_fullres`, and `3d_lowres` +
/// `3d_cascade_fullres` when the images are large). Deterministic.
///
/// # Errors
/// [`PlanError::ChannelCountMismatch`], [`PlanError::InvalidSetting`],
/// [`PlanError::EmptyMedianShape`], [`PlanError::BudgetTooSmall`] or
/// [`PlanError::InvalidConfiguration`] for images too small for a U-Net.
pub fn plan(
    fingerprint: &Fingerprint,
    dataset: &DatasetInfo,
    settings: &PlannerSettings,
) -> Result<Plans, PlanError> {
    plan_with_report(fingerprint, dataset, settings).map(|(plans, _)| plans)
}

/// [`plan`], also returning why each number was chosen.
///
/// # Errors
/// As [`plan`].
pub fn plan_with_report(
    fingerprint: &Fingerprint,
    dataset: &DatasetInfo,
    settings: &PlannerSettings,
) -> Result<(Plans, PlanReport), PlanError> {
    check_inputs(fingerprint, dataset, settings)?;
    let mut spacing = target_spacing(fingerprint);
    if let Some(target) = settings.target_spacing_override {
        spacing.target = target;
        spacing.overridden = true;
    }
    let (forward, backward) = transpose(&spacing.target);
    let median = median_resampled_shape(fingerprint, &spacing.target);
    let spacing_t: Vec<f64> = forward.iter().map(|&a| spacing.target[a]).collect();
    let median_t: Vec<f64> = forward.iter().map(|&a| median[a]).collect();
    if median_t.contains(&0.0) {
        return Err(PlanError::EmptyMedianShape {
            shape: median_t,
            spacing: spacing_t,
        });
    }
    let n_voxels = product(&median_t) * dataset.num_training() as f64;
    let ctx = PlanContext::new(settings, dataset.n_segmentation_classes_for_vram());
    let mut planned: Vec<(&str, PlannedConfiguration, bool)> = Vec::new();
    let mut lowres_decision = LowresDecision::No3d;
    if median_t[0] != 1.0 {
        let fullres = plan_configuration(&ctx, "3d_fullres", &spacing_t, &median_t, n_voxels)?;
        let (decision, lowres) = plan_lowres(&ctx, &fullres, &median_t, dataset.num_training())?;
        lowres_decision = decision;
        planned.push(("3d_fullres", fullres, lowres.is_some()));
        if let Some(lowres) = lowres {
            planned.push(("3d_lowres", lowres, false));
        }
    }
    let two_d = plan_configuration(&ctx, "2d", &spacing_t[1..], &median_t[1..], n_voxels)?;
    planned.push(("2d", two_d, true));
    let report = PlanReport {
        target_spacing: spacing,
        transpose_forward: forward,
        configurations: planned.iter().map(|(_, p, _)| p.report.clone()).collect(),
        lowres: lowres_decision,
    };
    let plans = Plans {
        schema_version: PLANS_SCHEMA_VERSION,
        dataset_name: dataset.name().to_string(),
        planner: settings.preset,
        gpu_memory_target_gb: settings.gpu_memory_target_gb,
        transpose_forward: forward,
        transpose_backward: backward,
        original_median_spacing_after_transp: Some(
            forward
                .iter()
                .map(|&a| report.target_spacing.median_spacing[a])
                .collect(),
        ),
        original_median_shape_after_transp: Some(
            forward
                .iter()
                .map(|&a| report.target_spacing.median_shape[a].round_ties_even() as u64)
                .collect(),
        ),
        foreground_intensity_properties: fingerprint.foreground_intensity_properties().to_vec(),
        configurations: configurations(&planned, fingerprint, dataset),
    };
    Ok((plans, report))
}

fn check_inputs(
    fingerprint: &Fingerprint,
    dataset: &DatasetInfo,
    settings: &PlannerSettings,
) -> Result<(), PlanError> {
    let n_fingerprint = fingerprint.foreground_intensity_properties().len();
    if n_fingerprint != dataset.channel_names().len() {
        return Err(PlanError::ChannelCountMismatch {
            dataset: dataset.name().to_string(),
            n_channels: dataset.channel_names().len(),
            n_fingerprint,
        });
    }
    let gb = settings.gpu_memory_target_gb;
    if !(gb.is_finite() && gb > 0.0) {
        return Err(PlanError::InvalidSetting {
            setting: "gpu_memory_target_gb",
            value: gb.to_string(),
            reason: "must be a positive number of GB",
        });
    }
    if let Some(target) = settings.target_spacing_override {
        if target.iter().any(|&s| !(s.is_finite() && s > 0.0)) {
            return Err(PlanError::InvalidSetting {
                setting: "target_spacing_override",
                value: format!("{target:?}"),
                reason: "every axis must be positive",
            });
        }
    }
    Ok(())
}

/// Writes the planned configurations as `plans.toml` entries; adds `3d_cascade_fullres` when a
/// 3d_lowres exists. `batch_dice`: 2d always, 3d_fullres only with a cascade, 3d_lowres never.
fn configurations(
    planned: &[(&str, PlannedConfiguration, bool)],
    fingerprint: &Fingerprint,
    dataset: &DatasetInfo,
) -> BTreeMap<String, ConfigurationEntry> {
    let relative_size = fingerprint.median_relative_size_after_cropping();
    let schemes: Vec<NormalizationScheme> = dataset
        .channel_names()
        .iter()
        .map(|c| normalization_scheme(c))
        .collect();
    let masks: Vec<bool> = schemes
        .iter()
        .map(|&s| use_mask_for_norm(s, relative_size))
        .collect();
    let mut entries = BTreeMap::new();
    for (name, plan, batch_dice) in planned {
        let entry = ConfigurationEntry {
            spacing: Some(plan.spacing.clone()),
            patch_size: Some(plan.patch_size.clone()),
            batch_size: Some(plan.batch_size),
            median_image_size_in_voxels: Some(plan.median_shape.clone()),
            normalization_schemes: Some(schemes.clone()),
            use_mask_for_norm: Some(masks.clone()),
            batch_dice: Some(*batch_dice),
            resampling_data: Some(ResamplingSettings::nnunet_data()),
            resampling_seg: Some(ResamplingSettings::nnunet_seg()),
            resampling_probabilities: Some(ResamplingSettings::nnunet_probabilities()),
            architecture: Some(ArchitectureEntry::from_spec(&plan.network)),
            ..ConfigurationEntry::default()
        };
        entries.insert(name.to_string(), entry);
    }
    if let Some(lowres) = entries.get_mut("3d_lowres") {
        lowres.next_stage = Some("3d_cascade_fullres".into());
        let cascade = ConfigurationEntry {
            inherits_from: Some("3d_fullres".into()),
            previous_stage: Some("3d_lowres".into()),
            ..ConfigurationEntry::default()
        };
        entries.insert("3d_cascade_fullres".into(), cascade);
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ForegroundIntensityProperties, LabelEntry, LabelValue};

    fn inputs(n_channels: usize) -> (Fingerprint, DatasetInfo) {
        let stats = ForegroundIntensityProperties {
            mean: 0.0,
            median: 0.0,
            std: 1.0,
            min: 0.0,
            max: 1.0,
            percentile_00_5: 0.0,
            percentile_99_5: 1.0,
        };
        let fp = Fingerprint::new(vec![[1.0; 3]; 10], vec![[36, 50, 35]; 10], 1.0, vec![stats])
            .expect("valid fingerprint");
        let labels = vec![LabelEntry {
            name: "background".into(),
            value: LabelValue::Single(0),
        }];
        let channels = (0..n_channels).map(|c| format!("ch{c}")).collect();
        let ds = DatasetInfo::new("d", channels, labels, 10, ".nii.gz").expect("valid dataset");
        (fp, ds)
    }

    #[test]
    fn inconsistent_inputs_and_settings_are_errors() {
        let (fp, ds) = inputs(2);
        let err = plan(&fp, &ds, &PlannerSettings::nnunet_default()).expect_err("2 vs 1 channels");
        assert!(matches!(
            err,
            PlanError::ChannelCountMismatch {
                n_channels: 2,
                n_fingerprint: 1,
                ..
            }
        ));
        let (fp, ds) = inputs(1);
        let zero_gb = PlannerSettings {
            gpu_memory_target_gb: 0.0,
            ..PlannerSettings::nnunet_default()
        };
        assert!(matches!(
            plan(&fp, &ds, &zero_gb),
            Err(PlanError::InvalidSetting {
                setting: "gpu_memory_target_gb",
                ..
            })
        ));
        let bad_spacing = PlannerSettings {
            target_spacing_override: Some([1.0, 0.0, 1.0]),
            ..PlannerSettings::nnunet_default()
        };
        assert!(plan(&fp, &ds, &bad_spacing).is_err());
    }

    #[test]
    fn target_spacing_override_drives_transpose_and_shapes() {
        let (fp, ds) = inputs(1);
        let settings = PlannerSettings {
            target_spacing_override: Some([1.0, 1.0, 2.0]),
            ..PlannerSettings::nnunet_default()
        };
        let (plans, report) = plan_with_report(&fp, &ds, &settings).expect("plannable");
        assert!(report.target_spacing.overridden);
        assert_eq!(plans.transpose_forward, [2, 0, 1]);
        assert_eq!(plans.transpose_backward, [1, 2, 0]);
        let full = plans.resolve("3d_fullres").expect("resolves");
        assert_eq!(full.spacing, vec![2.0, 1.0, 1.0]);
        // x: 35 voxels at 1 mm -> 17.5 -> 18 (half to even) at 2 mm, moved to the front.
        assert_eq!(full.median_image_size_in_voxels, vec![18.0, 36.0, 50.0]);
        assert!(report.lines()[0].contains("set by the user"));
    }
}
