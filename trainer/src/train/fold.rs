//! The trainer's entry for one fold, as `autoseg train` and `plan-and-train` run it: bring the
//! caches the plan says the fold needs up to date, choose the case store from the plan (a
//! cascade stage reads its previous stage's segmentations beside the cache), train, then run
//! nnU-Net's final validation unless it is newer than the final weights.
//!
//! nnU-Net: `run_training` (`nnUNetTrainer.run_training` then `perform_actual_validation`).

use std::path::Path;

use autoseg_inference::{
    evaluate_validation, predict_validation_cases, validate_fold, ValidationJob,
};
use autoseg_planner::{Plans, WorkLayout, SUMMARY_JSON};
use autoseg_preprocessing::{preprocess, Dataset, Labels, PreprocessSettings, Progress};

use super::TrainedFold;
use super::{train, CacheStore, CascadeStore, CaseStore, RunOptions, TrainError, TrainJob};
use crate::splits::Fold;
use autoseg_planner::Training;

/// One fold to train and validate.
#[derive(Clone, Copy)]
pub struct FoldJob<'a> {
    /// The raw dataset (cases, labels, `dataset.json`).
    pub dataset: &'a Dataset,
    /// Where its artifacts live.
    pub layout: &'a WorkLayout,
    /// The plans.
    pub plans: &'a Plans,
    /// Configuration to train.
    pub configuration: &'a str,
    /// Fold to train.
    pub fold: Fold,
    /// Epochs, iterations and the optimiser's settings.
    pub settings: &'a Training,
    /// Device, seed, resume, loader threads.
    pub run: &'a RunOptions,
}

/// What [`train_fold`] did, for the caller to report.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldOutcome {
    /// Cases preprocessed per cache brought up to date (only those that wrote any).
    pub preprocessed: Vec<(String, usize)>,
    /// The trained fold.
    pub trained: TrainedFold,
    /// The final validation's foreground Dice, `None` when it was already up to date (and on
    /// data-parallel ranks other than 0, which only predict their share).
    pub validation_dice: Option<f64>,
    /// `validation/summary.json`.
    pub summary: std::path::PathBuf,
}

/// Trains one fold of one configuration, then validates it (see the module docs). `progress`
/// reports preprocessing and every epoch.
///
/// # Errors
/// [`TrainError::Preprocess`] naming the configuration whose cache failed, the training errors
/// of [`train`], and [`TrainError::Validation`].
pub fn train_fold(job: &FoldJob<'_>, progress: &dyn Progress) -> Result<FoldOutcome, TrainError> {
    let plan_error = |source| TrainError::Plan {
        configuration: job.configuration.to_string(),
        source: Box::new(source),
    };
    let config = job.plans.resolve(job.configuration).map_err(plan_error)?;
    let caches = job
        .plans
        .caches_for_training(job.configuration)
        .map_err(plan_error)?;
    let mut preprocessed = Vec::new();
    let group = job.run.group.as_ref();
    // Data-parallel: rank 0 alone brings the caches up to date, then every rank reads them.
    if group.is_none_or(|g| g.rank() == 0) {
        for cache in &caches {
            let n_written = ensure_cache(job, cache, progress)?;
            if n_written > 0 {
                preprocessed.push((cache.clone(), n_written));
            }
        }
    }
    if let Some(g) = group {
        g.0.barrier()?;
    }
    let labels = &job.dataset.json.labels;
    let regions = labels.regions().map(|r| regions_i16(&r)).transpose()?;
    let cache_dir = job.layout.preprocessed(&caches[0]);
    let (store, cascade_labels): (Box<dyn CaseStore>, Option<Vec<i16>>) =
        match &config.previous_stage {
            Some(previous) => {
                let prev_dir = job.layout.predicted_next_stage(previous, job.configuration);
                let store = CascadeStore::open(&cache_dir, &prev_dir)?;
                (Box::new(store), Some(cascade_labels(labels)?))
            }
            None => (Box::new(CacheStore::open(&cache_dir)?), None),
        };
    let train_job = TrainJob {
        plans: job.plans,
        configuration: job.configuration,
        fold: job.fold,
        layout: job.layout,
        n_classes: labels.num_segmentation_heads(),
        ignore_label: labels.ignore_label().map(i64::from),
        regions: regions.as_deref(),
        cascade_labels: cascade_labels.as_deref(),
    };
    let trained = train(&train_job, store.as_ref(), job.settings, job.run, progress)?;
    drop(store);
    let summary = job
        .layout
        .validation(job.configuration, job.fold)
        .join(SUMMARY_JSON);
    let validation_dice = if is_newer(&summary, &trained.final_weights) {
        None
    } else {
        validate(job, &trained)?
    };
    Ok(FoldOutcome {
        preprocessed,
        trained,
        validation_dice,
        summary,
    })
}

/// nnU-Net's final validation of the trained fold; returns its foreground Dice. Data-parallel,
/// each rank predicts every `world_size`-th case from its rank on, and rank 0 evaluates the
/// folder once all have (the other ranks return `None`).
fn validate(job: &FoldJob<'_>, trained: &TrainedFold) -> Result<Option<f64>, TrainError> {
    let labels_dir = job.dataset.root.join("labelsTr");
    let fold = job.fold.to_string();
    let validation = ValidationJob {
        layout: job.layout,
        configuration: job.configuration,
        fold: &fold,
        cases: &trained.val_cases,
        labels_dir: &labels_dir,
        dataset: &job.dataset.json,
        device: job.run.device,
    };
    let failed = |source| TrainError::Validation {
        configuration: job.configuration.to_string(),
        fold: fold.clone(),
        source: Box::new(source),
    };
    let Some(group) = job.run.group.as_ref() else {
        return Ok(Some(
            validate_fold(&validation)
                .map_err(failed)?
                .foreground_dice(),
        ));
    };
    let mine: Vec<String> = trained
        .val_cases
        .iter()
        .skip(group.rank())
        .step_by(group.world_size())
        .cloned()
        .collect();
    predict_validation_cases(&ValidationJob {
        cases: &mine,
        ..validation
    })
    .map_err(failed)?;
    group.0.barrier()?;
    if group.rank() != 0 {
        return Ok(None);
    }
    Ok(Some(
        evaluate_validation(&validation)
            .map_err(failed)?
            .foreground_dice(),
    ))
}

/// Brings `preprocessed/<config>` up to date (current cases are skipped); returns how many
/// cases were written.
fn ensure_cache(
    job: &FoldJob<'_>,
    config: &str,
    progress: &dyn Progress,
) -> Result<usize, TrainError> {
    let settings = PreprocessSettings::per_thread();
    let summary = preprocess(
        job.dataset,
        job.plans,
        config,
        job.layout,
        &settings,
        progress,
    )
    .map_err(|source| TrainError::Preprocess {
        configuration: config.to_string(),
        source: Box::new(source),
    })?;
    Ok(summary.n_written)
}

/// True when `a` exists and was modified after `b` (or `b` is missing).
fn is_newer(a: &Path, b: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(a), modified(b)) {
        (Some(ta), Some(tb)) => ta > tb,
        (Some(_), None) => true,
        _ => false,
    }
}

/// The foreground labels a cascade one-hot encodes the previous stage's segmentation over:
/// every label but background and the ignore label, ascending (nnU-Net:
/// `LabelManager.foreground_labels`).
fn cascade_labels(labels: &Labels) -> Result<Vec<i16>, TrainError> {
    labels
        .foreground_labels()
        .into_iter()
        .map(label_i16)
        .collect()
}

/// The dataset's regions with the cache's `i16` label values.
fn regions_i16(regions: &[Vec<u16>]) -> Result<Vec<Vec<i16>>, TrainError> {
    regions
        .iter()
        .map(|region| region.iter().copied().map(label_i16).collect())
        .collect()
}

fn label_i16(label: u16) -> Result<i16, TrainError> {
    i16::try_from(label).map_err(|_| TrainError::LabelTooLarge { label })
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoseg_preprocessing::parse_dataset_json;

    fn labels(json_labels: &str) -> Labels {
        let text = format!(
            r#"{{"channel_names": {{"0": "CT"}}, "labels": {json_labels},
                "numTraining": 2, "file_ending": ".nii.gz"}}"#
        );
        parse_dataset_json(text.as_bytes(), Path::new("dataset.json"))
            .unwrap()
            .labels
    }

    #[test]
    fn cascade_inputs_are_the_foreground_labels_without_the_ignore_label() {
        let l = labels(r#"{"background": 0, "liver": 1, "tumour": 2, "ignore": 3}"#);
        assert_eq!(cascade_labels(&l).unwrap(), vec![1, 2]);
        assert_eq!(
            regions_i16(&[vec![1, 2], vec![2]]).unwrap(),
            vec![vec![1, 2], vec![2]]
        );
        let err = regions_i16(&[vec![40_000]]).unwrap_err().to_string();
        assert!(err.contains("label 40000"), "{err}");
    }
}
