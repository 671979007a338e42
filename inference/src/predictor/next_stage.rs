//! The cascade's next-stage writer: a first stage's validation writes, for every validation
//! case, its segmentation resampled onto the next stage's grid
//! (`results/<config>/predicted_next_stage/<next>/<case>.nii.gz`, the file format of
//! `autoseg_preprocessing::cache::prev_stage`), which the next stage trains on.
//!
//! nnU-Net: `nnUNetTrainer.perform_actual_validation` (`resample_and_save` of the next stage).

use std::path::PathBuf;

use autoseg_planner::{Plans, WorkLayout};
use autoseg_preprocessing::cache::{case_path, prev_stage_path, write_prev_stage_seg, CachedCase};
use autoseg_preprocessing::pipeline::resample_settings;
use autoseg_preprocessing::resample::ResampleSettings;
use tch::Tensor;

use super::error::io_err;
use super::error::PredictError;
use super::Predictor;
use crate::next_stage_segmentation;

/// Where a first stage's validation writes the segmentations its next stage trains on.
pub(super) struct NextStage {
    /// `results/<config>/predicted_next_stage/<next>/`.
    dir: PathBuf,
    /// The next stage's preprocessed cache, whose case shapes are the targets.
    cache: PathBuf,
    /// This configuration's spacing (current and target spacing of nnU-Net's resampling).
    spacing: [f64; 3],
    /// This configuration's probability resampling.
    resampling: ResampleSettings,
}

impl NextStage {
    /// The writer for `configuration`'s next stage `next`, creating its folder.
    pub(super) fn new(
        layout: &WorkLayout,
        plans: &Plans,
        configuration: &str,
        next: &str,
    ) -> Result<NextStage, PredictError> {
        let path = layout.plans();
        let config = plans
            .resolve(configuration)
            .map_err(|source| PredictError::Plan {
                path: path.clone(),
                source: Box::new(source),
            })?;
        let spacing = match config.spacing.as_slice() {
            &[z, y, x] => [z, y, x],
            _ => {
                return Err(PredictError::NextStageNot3d {
                    path,
                    configuration: configuration.to_string(),
                })
            }
        };
        let resampling = resample_settings(&config.resampling_probabilities);
        let dir = layout.predicted_next_stage(configuration, next);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir, "create the folder"))?;
        Ok(NextStage {
            dir,
            cache: layout.preprocessed(plans.data_configuration(next)),
            spacing,
            resampling,
        })
    }

    /// Resamples `logits` of `case` onto the next stage's grid and writes its segmentation.
    pub(super) fn write(
        &self,
        predictor: &Predictor,
        logits: &Tensor,
        case: &str,
    ) -> Result<(), PredictError> {
        let target = case_path(&self.cache, case);
        if !target.is_file() {
            return Err(PredictError::MissingNextStageCase { path: target });
        }
        let shape = CachedCase::open(&target)?.shape();
        let seg = next_stage_segmentation(
            logits,
            shape,
            self.spacing,
            &self.resampling,
            &predictor.export.rule,
        )
        .map_err(|source| PredictError::Inference {
            case: case.to_string(),
            source,
        })?;
        write_prev_stage_seg(&prev_stage_path(&self.dir, case), seg.view())?;
        Ok(())
    }
}
