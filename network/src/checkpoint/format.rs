//! The checkpoint's files and records: names, schema version, the digest of a tensor file, and
//! the metadata (`checkpoint_<kind>.toml`) with the training records it holds.

use std::path::{Path, PathBuf};

use autoseg_planner::{Plans, Training};
use serde::{Deserialize, Serialize};

/// Version of the checkpoint metadata layout.
pub const CHECKPOINT_SCHEMA_VERSION: u32 = 1;

/// One of the three checkpoints of a fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// Written after every epoch; what `--resume` continues from.
    Latest,
    /// Written when the EMA pseudo Dice reaches a new best.
    Best,
    /// Written after the last epoch; what inference uses.
    Final,
}

impl CheckpointKind {
    /// File stem: `checkpoint_latest`, `checkpoint_best` or `checkpoint_final`.
    pub fn stem(self) -> &'static str {
        match self {
            CheckpointKind::Latest => "checkpoint_latest",
            CheckpointKind::Best => "checkpoint_best",
            CheckpointKind::Final => "checkpoint_final",
        }
    }
}

/// The three files of one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointPaths {
    /// Weights (`.safetensors`).
    pub weights: PathBuf,
    /// Optimiser buffers (`.optim.safetensors`).
    pub optimizer: PathBuf,
    /// Metadata (`.toml`).
    pub meta: PathBuf,
}

impl CheckpointPaths {
    /// The files of checkpoint `kind` in `fold_dir` (a [`autoseg_planner::WorkLayout::fold`]).
    pub fn new(fold_dir: &Path, kind: CheckpointKind) -> CheckpointPaths {
        let stem = kind.stem();
        CheckpointPaths {
            weights: fold_dir.join(format!("{stem}.safetensors")),
            optimizer: fold_dir.join(format!("{stem}.optim.safetensors")),
            meta: fold_dir.join(format!("{stem}.toml")),
        }
    }

    /// The fold folder and checkpoint of `file` when it is one of a checkpoint's weights or
    /// metadata files (`checkpoint_<kind>.safetensors` or `.toml`); `None` for any other name
    /// (the optimiser file included: it holds no weights).
    pub fn of_file(file: &Path) -> Option<(PathBuf, CheckpointKind)> {
        let name = file.file_name()?.to_str()?;
        let stem = name
            .strip_suffix(".safetensors")
            .filter(|s| !s.ends_with(".optim"))
            .or_else(|| name.strip_suffix(".toml"))?;
        let kind = [
            CheckpointKind::Latest,
            CheckpointKind::Best,
            CheckpointKind::Final,
        ]
        .into_iter()
        .find(|k| k.stem() == stem)?;
        let fold_dir = match file.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Some((fold_dir, kind))
    }
}

/// Size and hash of a tensor file, as recorded in the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    /// File size in bytes.
    pub bytes: u64,
    /// 64-bit FNV-1a over little-endian 8-byte words (then the tail bytes), in hex.
    pub hash: String,
}

impl FileDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> FileDigest {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut hash = OFFSET;
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let w = u64::from_le_bytes(word.try_into().expect("chunks_exact(8) yields 8 bytes"));
            hash = (hash ^ w).wrapping_mul(PRIME);
        }
        for &b in words.remainder() {
            hash = (hash ^ u64::from(b)).wrapping_mul(PRIME);
        }
        FileDigest {
            bytes: bytes.len() as u64,
            hash: format!("{hash:016x}"),
        }
    }
}

/// The per-epoch logs a checkpoint keeps (nnU-Net's `logging` dict of the checkpoint).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainLog {
    /// Mean over the training steps of the deep-supervision loss.
    pub train_losses: Vec<f64>,
    /// Mean over the validation steps of the deep-supervision loss.
    pub val_losses: Vec<f64>,
    /// Pseudo Dice per foreground class (NaN where a class was neither present nor predicted).
    pub dice_per_class: Vec<Vec<f64>>,
    /// `nanmean` of the pseudo Dice per class.
    pub mean_fg_dice: Vec<f64>,
    /// Exponential moving average of `mean_fg_dice`.
    pub ema_fg_dice: Vec<f64>,
    /// Learning rate of the epoch.
    pub lrs: Vec<f64>,
    /// Epoch start, seconds since the Unix epoch.
    pub epoch_start_timestamps: Vec<f64>,
    /// Epoch end, seconds since the Unix epoch.
    pub epoch_end_timestamps: Vec<f64>,
}

impl TrainLog {
    /// Number of epochs logged.
    pub fn n_epochs(&self) -> usize {
        self.train_losses.len()
    }

    /// Duration of each epoch in seconds.
    pub fn epoch_durations(&self) -> Vec<f64> {
        self.epoch_end_timestamps
            .iter()
            .zip(&self.epoch_start_timestamps)
            .map(|(end, start)| end - start)
            .collect()
    }
}

/// The state of the fp16 loss scaler that a checkpoint keeps (torch's `GradScaler` state).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScalerState {
    /// Current loss scale.
    pub scale: f64,
    /// Consecutive steps without inf/NaN gradients since the last scale change.
    pub growth_tracker: u32,
}

/// Where a run stopped inside an epoch (a stop asked for by a signal): what resuming needs to
/// go on with that epoch exactly as if it had not stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterruptedEpoch {
    /// Training iterations of the epoch already done (the epoch is
    /// [`CheckpointMeta::epochs_done`]).
    pub iterations_done: usize,
    /// The sum of their losses.
    pub train_loss_sum: f64,
    /// Per data-loader worker, the position of its random stream before its next batch, in
    /// decimal (a 128-bit count of 32-bit words).
    pub loader_word_positions: Vec<String>,
    /// The loader worker whose batch comes next.
    pub loader_next_worker: usize,
    /// Ranks of the data-parallel run that stopped (1: a single process, whose loader position
    /// above resumes exactly; more: no position is kept, and the epoch's remaining iterations
    /// draw fresh batches).
    #[serde(default = "one_rank")]
    pub ranks: usize,
}

fn one_rank() -> usize {
    1
}

/// The metadata file of a checkpoint (`checkpoint_<kind>.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointMeta {
    /// Layout version, [`CHECKPOINT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Configuration trained.
    pub configuration: String,
    /// Fold trained (`0`..`4` or `all`).
    pub fold: String,
    /// Epochs finished when the checkpoint was written (nnU-Net's `current_epoch`).
    pub epochs_done: usize,
    /// Epochs the run was set to train.
    pub total_epochs: usize,
    /// Seed of the run, in decimal (every epoch's random streams derive from it).
    pub seed: String,
    /// Image channels the network takes.
    pub in_channels: usize,
    /// Segmentation heads (classes including background).
    pub n_classes: usize,
    /// The dataset's ignore label, if any.
    pub ignore_label: Option<i64>,
    /// Best EMA pseudo Dice so far.
    pub best_ema: Option<f64>,
    /// The loss scaler (fp16 training on CUDA).
    pub scaler: LossScalerState,
    /// Digest of the weights file (filled in by [`super::save_checkpoint`]).
    pub weights: FileDigest,
    /// Digest of the optimiser file (filled in by [`super::save_checkpoint`]).
    pub optimizer: FileDigest,
    /// Set when the run stopped inside epoch `epochs_done` (only in `checkpoint_latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<InterruptedEpoch>,
    /// The per-epoch logs.
    pub log: TrainLog,
    /// The axes test-time mirroring may flip when the model restricts them (an imported nnU-Net
    /// model's `inference_allowed_mirroring_axes`; an empty list: no mirroring); absent: every
    /// axis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_axes: Option<Vec<usize>>,
    /// The training settings of the run (the configuration's `training` table with the
    /// `--trainer` name's and the flags' values); absent in checkpoints of other origins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<Training>,
    /// The plans the network was built from.
    pub plans: Plans,
}
