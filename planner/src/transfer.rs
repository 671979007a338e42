//! One dataset's plans used for another (`autoseg plan DATASET --plans-from OTHER`), so that a
//! network trained on one fits the other (`train --pretrained-weights`): nnU-Net's
//! `nnUNetv2_move_plans_between_datasets`.
//!
//! nnU-Net 2.8.1 (`experiment_planning/plans_for_pretraining/move_plans_between_datasets.py`)
//! copies the source plans whole and changes only what names them: `dataset_name` (the
//! target's), `plans_name` and the configurations' `data_identifier` (when the target plans
//! identifier differs), and `image_reader_writer` (the reader of the target's images). Nothing
//! is re-planned from the target: the spacing of every configuration, patch and batch sizes,
//! network topology, transpose, normalisation schemes, and the source's
//! `foreground_intensity_properties_per_channel` (so CT normalisation clips and scales the
//! target with the source's statistics) stay the source's. The labels are not part of the
//! plans: they come from the target's `dataset.json` (the segmentation heads differ, which
//! `--pretrained-weights` allows).
//!
//! autoseg's plans have no plans name, data identifier (a cache's key is computed from the plan
//! fields preprocessing uses) or reader field, so [`transfer_plans`] changes `dataset_name`
//! only. It also checks what nnU-Net leaves to a later failure: the target has as many image
//! channels as the plans describe (nnU-Net's pretraining documentation requires the same input
//! channels).

use serde_json::Value;

use crate::{DatasetInfo, PlanError, Plans};

/// The reader autoseg reads every image with (nnU-Net's `SimpleITKIO` axis order), which is
/// the target's reader when nnU-Net moves plans to a dataset autoseg reads.
const TARGET_READER: &str = "SimpleITKIO";

/// `source` as the plans of the dataset `target` describes: equal to `source` but for
/// `dataset_name` (see the module docs).
///
/// # Errors
/// [`PlanError::TransferChannels`] when the target's channel count differs from the plans'
/// (their foreground intensity properties or any configuration's normalisation schemes); the
/// errors of [`Plans::resolve`] for a configuration that does not resolve.
pub fn transfer_plans(source: &Plans, target: &DatasetInfo) -> Result<Plans, PlanError> {
    let n_target = target.channel_names().len();
    let mismatch = |n_plans: usize, what: String| PlanError::TransferChannels {
        source_dataset: source.dataset_name.clone(),
        target_dataset: target.name().to_string(),
        n_plans,
        n_target,
        what,
    };
    let n_intensities = source.foreground_intensity_properties.len();
    if n_intensities != n_target {
        let what = "foreground intensity properties".to_string();
        return Err(mismatch(n_intensities, what));
    }
    for name in source.configuration_names() {
        let n_schemes = source.resolve(&name)?.normalization_schemes.len();
        if n_schemes != n_target {
            return Err(mismatch(n_schemes, format!("{name} normalization schemes")));
        }
    }
    Ok(Plans {
        dataset_name: target.name().to_string(),
        ..source.clone()
    })
}

/// nnU-Net's plans (`nnUNetPlans.json` or a trained model's `plans.json`) read to be moved to a
/// dataset autoseg reads: as [`Plans::from_nnunet_json`], with `image_reader_writer` replaced by
/// the target's reader first, as `move_plans_between_datasets` replaces it (so plans written
/// for another reader are moved, not refused).
///
/// # Errors
/// As [`Plans::from_nnunet_json`].
pub fn nnunet_plans_to_move(text: &str) -> Result<Plans, PlanError> {
    let mut json: Value = serde_json::from_str(text).map_err(|e| PlanError::NnUnetPlans {
        what: format!("not JSON: {e}"),
    })?;
    if let Some(top) = json.as_object_mut() {
        top.insert(
            "image_reader_writer".to_string(),
            Value::String(TARGET_READER.to_string()),
        );
    }
    Plans::from_nnunet_json(&json.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{LabelEntry, LabelValue};

    /// The plans nnU-Net 2.8.1 wrote for the fixture model
    /// (`scripts/make_nnunet_model_fixture.sh`).
    fn nnunet_text() -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../fixtures/data/nnunet/model/nnUNetTrainer_autosegFixture__nnUNetPlans__3d_fullres/plans.json",
        );
        std::fs::read_to_string(path).unwrap()
    }

    fn target(channels: &[&str], n_labels: u16) -> DatasetInfo {
        let labels = (0..n_labels)
            .map(|v| LabelEntry {
                name: if v == 0 {
                    "background".into()
                } else {
                    format!("l{v}")
                },
                value: LabelValue::Single(v),
            })
            .collect();
        let channels = channels.iter().map(|c| c.to_string()).collect();
        DatasetInfo::new("Dataset042_Target", channels, labels, 7, ".nii.gz").unwrap()
    }

    /// Known answer: everything is the source's (spacing, patch, network, normalisation and the
    /// source's intensity statistics) but the dataset name; other labels are fine.
    #[test]
    fn moved_plans_are_the_source_but_for_the_dataset_name() {
        let source = Plans::from_nnunet_json(&nnunet_text()).unwrap();
        let moved = transfer_plans(&source, &target(&["CT"], 5)).unwrap();
        assert_eq!(moved.dataset_name, "Dataset042_Target");
        let expected = Plans {
            dataset_name: "Dataset042_Target".into(),
            ..source.clone()
        };
        assert_eq!(moved, expected);
        let fullres = moved.resolve("3d_fullres").unwrap();
        assert_eq!(fullres.spacing, vec![1.5, 1.0, 1.0]);
        assert_eq!(fullres.patch_size, vec![56, 56, 56]);
        assert_eq!(
            moved.foreground_intensity_properties[0].mean,
            153.72879028320312
        );
    }

    #[test]
    fn another_channel_count_is_refused() {
        let source = Plans::from_nnunet_json(&nnunet_text()).unwrap();
        let err = transfer_plans(&source, &target(&["T1", "T2"], 3)).unwrap_err();
        assert!(
            matches!(
                &err,
                PlanError::TransferChannels {
                    n_plans: 1,
                    n_target: 2,
                    ..
                }
            ),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("the plans of Dataset901_Demo3d are for 1 image channel(s)"),
            "{text}"
        );
        assert!(text.contains("Dataset042_Target has 2"), "{text}");
    }

    /// nnU-Net replaces the reader when it moves plans, so plans written for another reader
    /// move (they are refused as a model's plans).
    #[test]
    fn nnunet_plans_move_with_the_targets_reader() {
        let text = nnunet_text();
        let other_reader = text.replace("\"SimpleITKIO\"", "\"NibabelIOWithReorient\"");
        assert_ne!(text, other_reader);
        assert!(Plans::from_nnunet_json(&other_reader).is_err());
        let moved = nnunet_plans_to_move(&other_reader).unwrap();
        assert_eq!(moved, Plans::from_nnunet_json(&text).unwrap());
        assert!(nnunet_plans_to_move("[1, 2").is_err());
    }
}
