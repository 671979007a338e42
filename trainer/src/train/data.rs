//! The data side of a fold: the cases of its split (from `splits.toml`, made when missing), the
//! training and validation samplers and pipelines, and a fresh, seeded loader per epoch so that
//! every epoch's batches depend only on the seed and the epoch.
//!
//! nnU-Net: `nnUNetTrainer.do_split`, `get_dataloaders` (training loader at the enlarged patch
//! with augmentation; validation loader at the final patch with validation transforms only).

use std::path::Path;
use std::sync::Arc;

use autoseg_planner::{AugmentationPreset, Configuration, Training, UNetSpec};
use autoseg_preprocessing::write_atomic;
use tch::Device;

use super::ddp::rank_batch;
use super::{RunOptions, TrainError};
use crate::augment::{DaSetup, Pipeline, SpatialInterpolation, TargetOptions};
use crate::loader::{DataLoader, LoaderPosition, LoaderSettings};
use crate::loss::deep_supervision_scales;
use crate::sampling::{CaseSource, InMemoryCase, InMemorySource, PatchSampler, SourceError};
use crate::splits::{
    fold_cases, kfold_splits, Fold, Split, Splits, NNUNET_N_FOLDS, NNUNET_SPLIT_SEED,
};

/// Where the trainer gets its preprocessed cases from (the preprocessed cache, or memory).
pub trait CaseStore {
    /// Identifiers of every training case.
    fn case_ids(&self) -> Vec<String>;

    /// A source over the cases `ids`, in that order.
    ///
    /// # Errors
    /// Whatever opening the cases can fail with (missing or unreadable files).
    fn open(&self, ids: &[String]) -> Result<Arc<dyn CaseSource>, SourceError>;
}

/// A [`CaseStore`] over cases held in memory (tests, benchmarks, small datasets).
#[derive(Clone, Debug, Default)]
pub struct InMemoryStore {
    /// The cases.
    pub cases: Vec<InMemoryCase>,
}

impl CaseStore for InMemoryStore {
    fn case_ids(&self) -> Vec<String> {
        self.cases.iter().map(|c| c.name.clone()).collect()
    }

    fn open(&self, ids: &[String]) -> Result<Arc<dyn CaseSource>, SourceError> {
        let cases = ids
            .iter()
            .map(|id| {
                self.cases
                    .iter()
                    .find(|c| &c.name == id)
                    .cloned()
                    .ok_or_else(|| SourceError::from(format!("case '{id}' is not in the store")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(InMemorySource::new(cases)?))
    }
}

/// The cases of `fold`: `all` uses every case for both; an index reads `splits_path`
/// (`splits.toml`), writing nnU-Net's 5-fold split there first when the file is missing.
///
/// # Errors
/// [`TrainError::Splits`] for an unreadable, invalid or unmakeable split file;
/// [`TrainError::Io`] when it cannot be read or written.
pub fn fold_split(
    splits_path: &Path,
    case_ids: &[String],
    fold: Fold,
) -> Result<Split, TrainError> {
    if fold == Fold::All {
        return Ok(fold_cases(
            &Splits {
                schema_version: 0,
                folds: Vec::new(),
            },
            case_ids,
            fold,
        ));
    }
    let path = splits_path.to_path_buf();
    let with_path = |source| TrainError::Splits {
        path: path.clone(),
        source,
    };
    let splits = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let splits = Splits::from_toml_str(&text).map_err(with_path)?;
            splits.check_cases(case_ids).map_err(with_path)?;
            splits
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let splits =
                kfold_splits(case_ids, NNUNET_N_FOLDS, NNUNET_SPLIT_SEED).map_err(with_path)?;
            let text = splits.to_toml_string().map_err(with_path)?;
            write_atomic(&path, text.as_bytes()).map_err(|e| TrainError::io(&path, "write", e))?;
            tracing::info!(path = %path.display(), "created the cross-validation splits");
            splits
        }
        Err(e) => return Err(TrainError::io(&path, "read", e)),
    };
    Ok(fold_cases(&splits, case_ids, fold))
}

/// Everything that makes the batches of one fold.
pub(crate) struct FoldData {
    train_source: Arc<dyn CaseSource>,
    val_source: Arc<dyn CaseSource>,
    train_sampler: PatchSampler,
    val_sampler: PatchSampler,
    train_pipeline: Pipeline,
    val_pipeline: Pipeline,
    n_workers: usize,
    pin_to: Option<Device>,
}

impl FoldData {
    /// Opens the fold's cases and sets up nnU-Net's samplers and pipelines for `config`, both
    /// pipelines making the cascade inputs and region targets `targets` asks for, with the
    /// augmentation, mirror axes and foreground oversampling of `training` (no augmentation:
    /// training batches at the network's patch with the validation transforms, as
    /// `nnUNetTrainerNoDA`).
    pub fn new(
        store: &dyn CaseStore,
        split: &Split,
        fold: Fold,
        config: &Configuration,
        targets: &TargetOptions,
        training: &Training,
        run: &RunOptions,
    ) -> Result<FoldData, TrainError> {
        let has_ignore_label = targets.ignore_label.is_some();
        let open = |ids: &[String], which: &'static str| {
            if ids.is_empty() {
                return Err(TrainError::EmptyFold {
                    fold: fold.to_string(),
                    which,
                });
            }
            store.open(ids).map_err(|source| TrainError::Cases {
                which,
                fold: fold.to_string(),
                source,
            })
        };
        let train_source = open(&split.train, "training")?;
        let val_source = open(&split.val, "validation")?;
        let da5 = matches!(
            training.augmentation,
            AugmentationPreset::Da5 | AugmentationPreset::Da5Ord0 | AugmentationPreset::Da5SegOrd0
        );
        let mut setup = if da5 {
            DaSetup::da5(&config.patch_size)?
        } else {
            DaSetup::nnunet(&config.patch_size)?
        };
        if let Some(axes) = &training.mirror_axes {
            // Plan axes count the patch's axes; a 2D patch is (y, x) = axes 1 and 2 here.
            let offset = 3 - config.patch_size.len();
            setup.mirror_axes = axes.iter().map(|a| a + offset).collect();
        }
        // A data-parallel rank samples its share of the plan's batch.
        let (batch_size, share) = match &run.group {
            Some(g) => rank_batch(
                config.batch_size,
                g.world_size(),
                g.rank(),
                training.oversample_foreground,
                &config.name,
            )?,
            None => (config.batch_size, training.oversample_foreground),
        };
        let scales = ds_scales(config.unet_spec());
        let sampler = |crop| -> Result<PatchSampler, TrainError> {
            Ok(
                PatchSampler::new(crop, setup.patch, batch_size, has_ignore_label)?
                    .with_oversampling(share),
            )
        };
        let validation_pipeline = || Pipeline::nnunet_validation(&scales);
        let masks = &config.use_mask_for_norm;
        let (train_sampler, train_pipeline) = match training.augmentation {
            AugmentationPreset::None => (sampler(setup.patch)?, validation_pipeline()?),
            preset => {
                let pipeline = if da5 {
                    Pipeline::da5_training(&setup, masks, &scales)?
                } else {
                    Pipeline::nnunet_training(&setup, masks, &scales)?
                };
                let pipeline = match preset {
                    AugmentationPreset::Ord0 | AugmentationPreset::Da5SegOrd0 => {
                        pipeline.with_interpolation(SpatialInterpolation::SegNearest)
                    }
                    AugmentationPreset::Da5Ord0 => {
                        pipeline.with_interpolation(SpatialInterpolation::Nearest)
                    }
                    // nnU-Net's interpolation: the default pipeline exactly as before.
                    _ => pipeline,
                };
                (sampler(setup.crop)?, pipeline)
            }
        };
        Ok(FoldData {
            train_source,
            val_source,
            train_sampler,
            val_sampler: sampler(setup.patch)?,
            train_pipeline: train_pipeline.with_targets(targets.clone()),
            val_pipeline: validation_pipeline()?.with_targets(targets.clone()),
            n_workers: run.n_loader_workers.max(1),
            pin_to: run.device.is_cuda().then_some(run.device),
        })
    }

    /// The crop `(z, y, x)` training batches are sampled at.
    #[cfg(test)]
    pub fn train_crop(&self) -> [usize; 3] {
        self.train_sampler.crop()
    }

    /// Number of image channels of the cases.
    pub fn n_channels(&self) -> usize {
        self.train_source.n_channels()
    }

    /// Number of network input channels: the image channels, plus one per previous-stage label
    /// for a cascade stage.
    pub fn n_data_channels(&self) -> usize {
        self.train_pipeline.n_data_channels(self.n_channels())
    }

    /// A loader of augmented training batches whose sequence is fixed by `seed`, from its
    /// start or from `position` in it (an epoch resumed where it stopped).
    pub fn train_loader_at(
        &self,
        seed: u64,
        position: Option<&LoaderPosition>,
    ) -> Result<DataLoader, TrainError> {
        let settings = LoaderSettings {
            n_workers: self.n_workers,
            queue_depth: 2,
            seed,
            pin_to: self.pin_to,
        };
        Ok(DataLoader::spawn_at(
            Arc::clone(&self.train_source),
            self.train_sampler.clone(),
            self.train_pipeline.clone(),
            settings,
            position,
        )?)
    }

    /// Training loader worker threads.
    pub fn n_workers(&self) -> usize {
        self.n_workers
    }

    /// A loader of validation batches whose sequence is fixed by `seed` (half the workers, as
    /// nnU-Net).
    pub fn val_loader(&self, seed: u64) -> Result<DataLoader, TrainError> {
        let settings = LoaderSettings {
            n_workers: (self.n_workers / 2).max(1),
            queue_depth: 2,
            seed,
            pin_to: self.pin_to,
        };
        Ok(DataLoader::spawn(
            Arc::clone(&self.val_source),
            self.val_sampler.clone(),
            self.val_pipeline.clone(),
            settings,
        )?)
    }
}

/// Deep-supervision scales as the pipeline takes them, `(z, y, x)` with `z = 1` for 2D.
fn ds_scales(spec: &UNetSpec) -> Vec<[f64; 3]> {
    // A resolved UNetSpec has 2 or 3 axes per stage; 2D gets z = 1.
    deep_supervision_scales(spec)
        .into_iter()
        .map(|s| {
            let n = s.len();
            let z = if n == 3 { s[0] } else { 1.0 };
            [z, s[n - 2], s[n - 1]]
        })
        .collect()
}
