//! nnU-Net's final validation of a trained fold (`perform_actual_validation`), which the
//! trainer's fold entry runs after training.

use std::path::Path;

use autoseg_evaluation::{evaluate_folder, settings_from_dataset_json, Summary};
use autoseg_network::checkpoint::CheckpointKind;
use autoseg_planner::{WorkLayout, SUMMARY_JSON};
use autoseg_preprocessing::cache::{
    append_one_hot, case_path, prev_stage_path, read_prev_stage_seg, CachedCase,
};
use autoseg_preprocessing::DatasetJson;
use tch::Device;

use super::error::PredictError;
use super::next_stage::NextStage;
use super::{PredictOptions, Predictor};
use crate::Phase;

/// Where one fold's final validation reads and writes.
#[derive(Clone, Copy, Debug)]
pub struct ValidationJob<'a> {
    /// The dataset's work folder: checkpoints under `results/`, the cache under `preprocessed/`.
    pub layout: &'a WorkLayout,
    /// Configuration trained.
    pub configuration: &'a str,
    /// Fold folder suffix (`"0"`..`"4"` or `"all"`).
    pub fold: &'a str,
    /// The fold's validation cases (their preprocessed files must exist).
    pub cases: &'a [String],
    /// The reference label maps (`labelsTr`), named `<case><file_ending>`.
    pub labels_dir: &'a Path,
    /// The dataset's description.
    pub dataset: &'a DatasetJson,
    /// Where the network runs.
    pub device: Device,
}

/// nnU-Net's final validation of a fold (`perform_actual_validation`): predicts every
/// validation case from the preprocessed cache with `checkpoint_final` (step 0.5, Gaussian,
/// mirroring), exports `fold_<k>/validation/<case><file_ending>` plus `<case>.npz` and
/// `<case>.props.toml`, evaluates the folder against `labels_dir` (voxel metrics) and writes
/// `validation/summary.json`. A configuration with a next stage also writes that stage's
/// inputs. Returns the summary.
///
/// # Errors
/// [`Predictor::load_with`]'s errors; [`PredictError::Cache`] for a missing or unreadable
/// preprocessed case; prediction, export and write errors naming the case;
/// [`PredictError::Evaluation`].
pub fn validate_fold(job: &ValidationJob<'_>) -> Result<Summary, PredictError> {
    predict_validation_cases(job)?;
    evaluate_validation(job)
}

/// The prediction half of [`validate_fold`]: predicts and exports `job.cases` (a data-parallel
/// rank predicts its share of the fold's cases, as nnU-Net's `val_keys[rank::world_size]`).
///
/// # Errors
/// As [`validate_fold`], but for the evaluation.
pub fn predict_validation_cases(job: &ValidationJob<'_>) -> Result<(), PredictError> {
    let fold = [job.fold.to_string()];
    let mut predictor = Predictor::load_with(
        job.layout,
        job.configuration,
        &fold,
        job.device,
        Some(job.dataset),
        CheckpointKind::Final,
    )?;
    predictor.set_options(PredictOptions {
        save_probabilities: true,
        ..PredictOptions::nnunet()
    })?;
    let out_dir = job.layout.validation(job.configuration, job.fold);
    let plans = &predictor.plans;
    let cache = job
        .layout
        .preprocessed(plans.data_configuration(job.configuration));
    let previous_dir = predictor
        .configuration
        .previous_stage
        .as_ref()
        .map(|previous| job.layout.predicted_next_stage(previous, job.configuration));
    let next_stage = match &predictor.configuration.next_stage {
        Some(next) => Some(NextStage::new(job.layout, plans, job.configuration, next)?),
        None => None,
    };
    for case in job.cases {
        let cached = CachedCase::open(&case_path(&cache, case))?;
        let (mut data, _) = cached.read_all()?;
        if let (Some(cascade), Some(dir)) = (&predictor.cascade, &previous_dir) {
            let seg = read_prev_stage_seg(&prev_stage_path(dir, case), cached.shape())?;
            data = append_one_hot(data, seg.view(), &cascade.labels);
        }
        let logits = predictor
            .clock
            .time(Phase::SlidingWindow, || predictor.logits(&data, case))?;
        drop(data);
        if let Some(next) = &next_stage {
            next.write(&predictor, &logits, case)?;
        }
        let prediction = predictor.export_prediction(&logits, cached.properties().clone())?;
        predictor.write_prediction(prediction, &out_dir, None)?;
    }
    Ok(())
}

/// The evaluation half of [`validate_fold`]: evaluates the fold's `validation/` folder against
/// `job.labels_dir` and writes `summary.json` (once every case is predicted).
///
/// # Errors
/// [`PredictError::Evaluation`] and [`PredictError::Summary`].
pub fn evaluate_validation(job: &ValidationJob<'_>) -> Result<Summary, PredictError> {
    let out_dir = job.layout.validation(job.configuration, job.fold);
    let settings = settings_from_dataset_json(job.dataset, None);
    let summary = evaluate_folder(
        &out_dir,
        job.labels_dir,
        &settings,
        &job.dataset.file_ending,
    )?;
    let summary_path = out_dir.join(SUMMARY_JSON);
    summary
        .write(&summary_path)
        .map_err(|source| PredictError::Summary {
            path: summary_path.clone(),
            source,
        })?;
    Ok(summary)
}
