//! The training loop of one configuration and fold: a short loop over a [`TrainState`], with
//! checkpoints every epoch, resume, `train.log` and `progress.png`.
//!
//! Per epoch `e` (nnU-Net's `run_training`), with the run's [`Training`] (nnU-Net's trainer by
//! default): the schedule's learning rate of `e` (poly); `iterations_per_epoch` training steps
//! (deep-supervision loss, Dice + CE by default; backward, clip to norm 12, the optimiser step,
//! SGD-Nesterov by default; fp16 autocast with loss scaling on CUDA);
//! `val_iterations_per_epoch` validation steps (loss, pseudo Dice of the top output); the EMA of the mean foreground pseudo Dice; then the checkpoints
//! [`checkpoint_actions`] asks for, the log lines and the plot. `train.log` also gets the share
//! of the epoch's training iterations spent waiting for the data loader (`Data wait`).
//!
//! A cascade stage ([`TrainJob::cascade_labels`], cases from a [`CascadeStore`]) feeds the
//! network the image plus one channel per previous-stage label, and its checkpoints record that
//! input channel count; region-based training ([`TrainJob::regions`]) has one head per region.
//!
//! Determinism: every random stream of epoch `e` (libtorch's generator, the training and the
//! validation loader) is seeded from `(seed, e)` at the start of the epoch, and each loader is
//! new for its epoch. An interrupted run resumed from `checkpoint_latest` therefore replays the
//! remaining epochs exactly: on the CPU, with the same number of loader workers and libtorch
//! threads, the final weights are bitwise those of an uninterrupted run.
//!
//! A stop asked for from outside ([`RunOptions::stop`], set by the binary's SIGINT/SIGTERM
//! handler) ends the run after the current training iteration: `checkpoint_latest` records the
//! epoch's progress and the data loader's position ([`InterruptedEpoch`]), and the run returns
//! [`TrainError::Stopped`]. Resumed, that epoch goes on from the next iteration with the same
//! batches, so the final weights are bitwise those of an uninterrupted run (CPU, same threads).
//!
//! A run starts fresh, resumes ([`Start::Resume`]), or starts fresh from pretrained weights
//! ([`Start::Pretrained`]: every parameter but the segmentation heads copied from an nnU-Net or
//! autoseg checkpoint after the seeded initialisation; `train.log` names the file).
//!
//! [`train`] is the loop alone; [`train_fold`] is the entry commands call: it prepares the
//! caches the plan says the fold needs, chooses the case store, trains, and runs the final
//! validation (nnU-Net's `perform_actual_validation`, through `autoseg-inference`).
//!
//! Files (where: [`WorkLayout`]): `splits.toml`, and in `results/<config>/fold_<k>/` the
//! checkpoints (`autoseg_network::checkpoint`, which also record the settings),
//! `training.toml` (the run's [`Training`]), `train.log` and `progress.png`.

mod cache;
mod cascade;
mod checkpoint;
mod curves;
mod data;
mod ddp;
#[cfg(test)]
mod ddp_tests;
mod epoch;
mod error;
mod fold;
mod log;
mod model;
mod state;
mod stop;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod variant_golden;
#[cfg(test)]
mod variant_tests;

use autoseg_planner::{Plans, Training, WorkLayout};
use autoseg_preprocessing::Progress;
use std::path::{Path, PathBuf};
/// The device type of [`RunOptions`] (libtorch's), re-exported for callers without `tch`.
pub use tch::Device;

use autoseg_network::checkpoint::{
    self as format, CheckpointKind, CheckpointMeta, CheckpointPaths, FileDigest,
    CHECKPOINT_SCHEMA_VERSION,
};
pub use cache::CacheStore;
pub use cascade::CascadeStore;
pub use checkpoint::{checkpoint_actions, resume_checkpoint, CheckpointAction};
pub use curves::plot_progress;
pub use data::{fold_split, CaseStore, InMemoryStore};
pub use ddp::{rank_batch, DataParallel};
pub use error::TrainError;
pub use fold::{train_fold, FoldJob, FoldOutcome};
pub use state::{EpochRecord, InterruptedEpoch, TrainLog, TrainState};
pub use stop::StopRequest;

use crate::augment::TargetOptions;
use crate::splits::Fold;
use data::FoldData;
use epoch::{run_epoch, EpochEnd};
use log::LogFile;
use model::Model;

/// What to train: a configuration of a plan, a fold, and the dataset facts the plan does not
/// hold.
#[derive(Debug, Clone, Copy)]
pub struct TrainJob<'a> {
    /// The plans (stored with every checkpoint).
    pub plans: &'a Plans,
    /// Configuration name, e.g. `3d_fullres`.
    pub configuration: &'a str,
    /// Fold to train.
    pub fold: Fold,
    /// Where `splits.toml` and `results/<config>/fold_<k>` are.
    pub layout: &'a WorkLayout,
    /// Segmentation heads: the number of labels including background.
    pub n_classes: usize,
    /// The dataset's ignore label, if it has one.
    pub ignore_label: Option<i64>,
    /// Region-based training: the regions (each the labels it unites), one output per region.
    pub regions: Option<&'a [Vec<i16>]>,
    /// Cascade stage: the foreground labels whose previous-stage one-hot maps are extra inputs.
    pub cascade_labels: Option<&'a [i16]>,
}

impl TrainJob<'_> {
    /// `results/<config>/fold_<k>` (`fold_all` for the `all` fold).
    pub fn fold_dir(&self) -> PathBuf {
        self.layout.fold(self.configuration, self.fold)
    }
}

/// How a run starts: its weights and where its epochs begin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Epoch 0, weights drawn from the seed.
    Fresh,
    /// Continue from `checkpoint_latest` (or `checkpoint_final`) where it stopped.
    Resume,
    /// Epoch 0, weights drawn from the seed, then every parameter but the segmentation heads
    /// copied from this file (an nnU-Net `.pth` or an autoseg checkpoint:
    /// [`autoseg_network::checkpoint::load_pretrained`]). Continuing a run and loading
    /// pretrained weights exclude each other, as in nnU-Net (`run_training.py`: "Cannot both
    /// continue a training AND load pretrained weights").
    Pretrained(PathBuf),
}

/// How to run: device, seed, start, loader threads, and the stop request.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    /// Device to train on.
    pub device: Device,
    /// Seed of the weights and of every epoch's sampling and augmentation.
    pub seed: u64,
    /// A fresh run, a resumed one, or one from pretrained weights.
    pub start: Start,
    /// Data-loader worker threads for training (validation uses half).
    pub n_loader_workers: usize,
    /// Set from outside (a signal handler) to stop after the current iteration, with
    /// `checkpoint_latest` written ([`TrainError::Stopped`]).
    pub stop: StopRequest,
    /// The data-parallel group this process trains in (`None`: a single process). Rank 0
    /// alone writes the fold's files.
    pub group: Option<DataParallel>,
}

impl RunOptions {
    /// A fresh run on `device` with `seed`, one loader worker per available core.
    pub fn new(device: Device, seed: u64) -> RunOptions {
        RunOptions {
            device,
            seed,
            start: Start::Fresh,
            n_loader_workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            stop: StopRequest::new(),
            group: None,
        }
    }
}

/// CUDA device 0 when libtorch can use CUDA, else the CPU (design.md's default device).
pub fn default_device() -> Device {
    Device::cuda_if_available()
}

/// Sets libtorch's intra-op thread count (the `--threads` flag).
pub fn set_torch_threads(n_threads: usize) {
    tch::set_num_threads(i32::try_from(n_threads).unwrap_or(i32::MAX));
}

/// A trained fold: where its files are, and what final validation needs.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedFold {
    /// The fold's results folder.
    pub fold_dir: PathBuf,
    /// `checkpoint_final.safetensors`.
    pub final_weights: PathBuf,
    /// Epochs trained in total.
    pub epochs_done: usize,
    /// Best EMA pseudo Dice.
    pub best_ema: Option<f64>,
    /// Whether early stopping ended the run before its last epoch.
    pub stopped_early: bool,
    /// The per-epoch logs.
    pub log: TrainLog,
    /// Per epoch trained by this call: the share of the training iterations' time spent
    /// waiting for the data loader, in percent.
    pub data_wait_percent: Vec<f64>,
    /// The fold's validation cases (input of the final validation).
    pub val_cases: Vec<String>,
}

/// Trains `job` on the cases of `store` for `settings.epochs` epochs (resuming when `run.start`
/// is [`Start::Resume`]; a larger `epochs` extends a finished run, with the poly schedule of the
/// new total). Reports each epoch's steps through `progress`.
///
/// # Errors
/// A [`TrainError`] naming the configuration, fold, case or file at fault.
pub fn train(
    job: &TrainJob<'_>,
    store: &dyn CaseStore,
    settings: &Training,
    run: &RunOptions,
    progress: &dyn Progress,
) -> Result<TrainedFold, TrainError> {
    let config = job
        .plans
        .resolve(job.configuration)
        .map_err(|source| TrainError::Plan {
            configuration: job.configuration.to_string(),
            source: Box::new(source),
        })?;
    let targets = target_options(job)?;
    check_device(run.device)?;
    let group = run.group.as_ref();
    let main = ddp::is_main(group);
    let fold_dir = job.fold_dir();
    std::fs::create_dir_all(&fold_dir)
        .map_err(|e| TrainError::io(&fold_dir, "create the fold folder", e))?;
    if main {
        write_settings(job, settings)?;
    }
    let split = fold_split(&job.layout.splits(), &store.case_ids(), job.fold)?;
    let data = FoldData::new(store, &split, job.fold, &config, &targets, settings, run)?;
    let mut model = Model::new(
        &config,
        data.n_data_channels(),
        job.n_classes,
        job.ignore_label,
        job.regions.is_some(),
        settings,
        run,
    )?;
    let mut log = if main {
        LogFile::open(&job.layout.train_log(job.configuration, job.fold))?
    } else {
        LogFile::disabled()
    };
    let mut state = start_state(job, run, &fold_dir, &mut model, &mut log)?;
    if let Some(group) = group {
        ddp::broadcast_weights(group, &model.vs)?;
        if main && state.interrupted.is_some() {
            log.line(&format!(
                "Data-parallel run of {} ranks: the interrupted epoch's remaining iterations \
                 draw fresh batches (an exact resume inside an epoch needs a single process)",
                group.world_size()
            ))?;
        }
    }
    let mut stopped_early = false;
    while state.epochs_done < settings.epochs {
        // Checked before each epoch, so that resuming a run that stopped early stops again.
        if let Some(line) = early_stop(settings, &state) {
            tracing::info!("{line}");
            log.line(&line)?;
            stopped_early = true;
            break;
        }
        if let Some(exit_code) = ddp::stop_agreed(group, &run.stop)? {
            let where_ = match state.epochs_done {
                0 => "before its first epoch (nothing to resume: the next run starts anew)".into(),
                n => format!("after epoch {}", n - 1),
            };
            return Err(stopped(job, &fold_dir, &mut log, where_, exit_code));
        }
        let resumed = state.interrupted.take();
        let end = run_epoch(
            &mut model,
            &data,
            &state,
            resumed.as_ref(),
            settings,
            &run.stop,
            progress,
        )?;
        let record = match end {
            EpochEnd::Done(record) => record,
            EpochEnd::Stopped(interrupted) => {
                let where_ = format!(
                    "after iteration {} of epoch {}",
                    interrupted.iterations_done - 1,
                    state.epochs_done
                );
                state.interrupted = Some(interrupted);
                let n_channels = data.n_data_channels();
                let kind = CheckpointKind::Latest;
                if main {
                    save(job, &fold_dir, kind, &model, &state, settings, n_channels)?;
                }
                // A rank stopped by its peers' request exits as an interrupted process would.
                let exit_code = run.stop.requested().unwrap_or(130);
                return Err(stopped(job, &fold_dir, &mut log, where_, exit_code));
            }
        };
        let data_wait_percent = record.data_wait_percent;
        let new_best = state.record(record);
        log.epoch(&state.log, new_best, data_wait_percent)?;
        if !main {
            continue;
        }
        for action in checkpoint_actions(state.epochs_done, settings.epochs, new_best) {
            let CheckpointAction::Save(kind) = action;
            save(
                job,
                &fold_dir,
                kind,
                &model,
                &state,
                settings,
                data.n_data_channels(),
            )?;
        }
        plot_progress(
            &state.log,
            &job.layout.progress_plot(job.configuration, job.fold),
        )?;
    }
    let final_paths = CheckpointPaths::new(&fold_dir, CheckpointKind::Final);
    if main && !final_paths.meta.is_file() {
        // Resumed from a `latest` that already has every epoch asked for (a smaller --epochs).
        let n_channels = data.n_data_channels();
        save(
            job,
            &fold_dir,
            CheckpointKind::Final,
            &model,
            &state,
            settings,
            n_channels,
        )?;
    }
    if let Some(group) = group {
        // Every rank sees rank 0's final checkpoint from here on.
        group.0.barrier()?;
    }
    Ok(TrainedFold {
        final_weights: final_paths.weights,
        fold_dir,
        epochs_done: state.epochs_done,
        best_ema: state.best_ema,
        stopped_early,
        log: state.log,
        data_wait_percent: state.data_wait_percent,
        val_cases: split.val,
    })
}

/// Writes the settings of this run to the fold's `training.toml` (atomically).
fn write_settings(job: &TrainJob<'_>, settings: &Training) -> Result<(), TrainError> {
    let path = job.layout.training_settings(job.configuration, job.fold);
    let text = settings
        .to_toml_string()
        .map_err(|source| TrainError::Plan {
            configuration: job.configuration.to_string(),
            source: Box::new(source),
        })?;
    let text = format!(
        "# The training settings of {} fold {}'s last run (autoseg writes this file).\n{text}",
        job.configuration, job.fold
    );
    autoseg_planner::write_atomic(&path, text.as_bytes())
        .map_err(|e| TrainError::io(&path, "write", e))
}

/// Logs a stop asked for from outside and makes its error.
fn stopped(
    job: &TrainJob<'_>,
    fold_dir: &Path,
    log: &mut LogFile,
    where_: String,
    exit_code: u8,
) -> TrainError {
    let line = format!("Stopped on request {where_}");
    tracing::info!("{line}");
    if let Err(e) = log.line(&line) {
        return e;
    }
    TrainError::Stopped {
        configuration: job.configuration.to_string(),
        fold: job.fold.to_string(),
        fold_dir: fold_dir.to_path_buf(),
        where_,
        exit_code,
    }
}

/// The line that ends a run with `settings.patience` when as many epochs have passed without a
/// new best EMA pseudo Dice; `None` while it goes on, and while no epoch has set a best yet (a
/// NaN EMA, from validation batches without foreground, judges nothing).
fn early_stop(settings: &Training, state: &TrainState) -> Option<String> {
    let patience = settings.patience?;
    let best = state.best_ema?;
    let since = state.epochs_since_best();
    (since >= patience).then(|| {
        format!(
            "Early stopping after epoch {}: no new best EMA pseudo Dice for {since} epochs \
             (patience {patience}); the best, {best:.4}, is in checkpoint_best (`--checkpoint best`)",
            state.epochs_done - 1
        )
    })
}

/// The pipelines' cascade and region options of `job`, after checking that its heads, regions
/// and labels agree.
fn target_options(job: &TrainJob<'_>) -> Result<TargetOptions, TrainError> {
    let fault = |fault: String| TrainError::Job {
        configuration: job.configuration.to_string(),
        fault,
    };
    match job.regions {
        Some(regions) if regions.is_empty() || regions.len() != job.n_classes => {
            return Err(fault(format!(
                "{} segmentation head(s) for {} region(s): region-based training needs one head \
                 per region, and at least one region",
                job.n_classes,
                regions.len()
            )));
        }
        None if job.n_classes < 2 => {
            return Err(fault(format!(
                "{} segmentation head(s): label maps need background and at least one label",
                job.n_classes
            )));
        }
        _ => {}
    }
    if job.cascade_labels.is_some_and(<[i16]>::is_empty) {
        return Err(fault(
            "a cascade stage needs at least one foreground label".to_string(),
        ));
    }
    let ignore_label = job
        .ignore_label
        .map(|label| {
            i16::try_from(label).map_err(|_| {
                fault(format!(
                    "ignore label {label} is outside the cache's i16 range"
                ))
            })
        })
        .transpose()?;
    Ok(TargetOptions {
        cascade_labels: job.cascade_labels.map(<[i16]>::to_vec),
        regions: job.regions.map(<[Vec<i16>]>::to_vec),
        ignore_label,
    })
}

fn check_device(device: Device) -> Result<(), TrainError> {
    if let Device::Cuda(idx) = device {
        let n_devices = tch::Cuda::device_count();
        if idx as i64 >= n_devices {
            return Err(TrainError::Device {
                device: format!("cuda:{idx}"),
                n_devices,
            });
        }
    }
    Ok(())
}

/// A fresh state (the model's weights replaced by pretrained ones but the heads when asked), or
/// the one of the checkpoint `--resume` continues from (weights, momentum, loss scaler, logs,
/// EMA, seed restored into `model`).
fn start_state(
    job: &TrainJob<'_>,
    run: &RunOptions,
    fold_dir: &Path,
    model: &mut Model,
    log: &mut LogFile,
) -> Result<TrainState, TrainError> {
    let fresh_line = || {
        format!(
            "Training configuration '{}', fold {}, seed {}, device {:?}",
            job.configuration, job.fold, run.seed, run.device
        )
    };
    match &run.start {
        Start::Fresh => {
            log.line(&fresh_line())?;
            return Ok(TrainState::new(run.seed));
        }
        Start::Pretrained(file) => {
            log.line(&fresh_line())?;
            let loaded = format::load_pretrained(&model.vs, file).map_err(|source| {
                TrainError::Pretrained {
                    file: file.clone(),
                    source: Box::new(source),
                }
            })?;
            log.line(&format!(
                "Loaded pretrained weights from {}: {} parameters; the {} parameters of the \
                 segmentation heads keep their initialisation",
                file.display(),
                loaded.n_copied,
                loaded.n_heads
            ))?;
            return Ok(TrainState::new(run.seed));
        }
        Start::Resume => {}
    }
    let Some(kind) = resume_checkpoint(fold_dir)? else {
        // nnU-Net's `--c` on a fold killed before its first checkpoint: a new run.
        let warning = format!(
            "{}: no checkpoint_latest or checkpoint_final to resume from (stopped before its \
             first epoch ended?): starting a new training",
            fold_dir.display()
        );
        tracing::warn!("{warning}");
        log.line(&format!("WARNING: {warning}"))?;
        log.line(&fresh_line())?;
        return Ok(TrainState::new(run.seed));
    };
    let loaded = format::load_checkpoint(fold_dir, kind)?;
    let paths = CheckpointPaths::new(fold_dir, kind);
    format::copy_weights(&model.vs, &loaded.weights, &paths.weights)?;
    model.optimizer.load_state(&loaded.buffers)?;
    model.scaler.set_state(loaded.meta.scaler);
    let seed = loaded.meta.seed(&paths.meta)?;
    if seed != run.seed {
        tracing::warn!(
            checkpoint_seed = seed,
            requested_seed = run.seed,
            "resuming with the checkpoint's seed"
        );
    }
    log.line(&format!(
        "Resuming configuration '{}', fold {} from {} at epoch {}",
        job.configuration,
        job.fold,
        kind.stem(),
        loaded.meta.epochs_done
    ))?;
    Ok(TrainState {
        epochs_done: loaded.meta.epochs_done,
        log: loaded.meta.log,
        best_ema: loaded.meta.best_ema,
        seed,
        data_wait_percent: Vec::new(),
        interrupted: loaded.meta.interrupted,
    })
}

/// The seed of random stream `stream` of `epoch` (splitmix64 over the three).
pub fn epoch_seed(seed: u64, epoch: usize, stream: u64) -> u64 {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    mix(mix(mix(seed) ^ epoch as u64) ^ stream)
}

/// Writes checkpoint `kind` of the current state.
fn save(
    job: &TrainJob<'_>,
    fold_dir: &Path,
    kind: CheckpointKind,
    model: &Model,
    state: &TrainState,
    settings: &Training,
    in_channels: usize,
) -> Result<(), TrainError> {
    let placeholder = FileDigest::of(&[]);
    let meta = CheckpointMeta {
        schema_version: CHECKPOINT_SCHEMA_VERSION,
        configuration: job.configuration.to_string(),
        fold: job.fold.to_string(),
        epochs_done: state.epochs_done,
        total_epochs: settings.epochs,
        seed: state.seed.to_string(),
        in_channels,
        n_classes: job.n_classes,
        ignore_label: job.ignore_label,
        best_ema: state.best_ema,
        scaler: model.scaler.state(),
        weights: placeholder.clone(),
        optimizer: placeholder,
        log: state.log.clone(),
        mirror_axes: settings.mirror_axes.clone(),
        training: Some(settings.clone()),
        interrupted: state.interrupted.clone(),
        plans: job.plans.clone(),
    };
    format::save_checkpoint(
        fold_dir,
        kind,
        &model.named_weights(),
        &model.optimizer.state(),
        meta,
    )?;
    Ok(())
}
