//! Checkpoints: which to write after an epoch (a pure decision), and writing and reading the
//! three files of each: `checkpoint_<kind>.safetensors` (weights under nnU-Net's parameter
//! names), `checkpoint_<kind>.optim.safetensors` (SGD momentum buffers by parameter name) and
//! `checkpoint_<kind>.toml` (epoch, logs, EMA, loss scaler, seed and the plans used).
//!
//! Every file is written to a temporary name, synced and renamed, metadata last; the metadata
//! records the size and hash of both tensor files, so a set torn by a crash between two renames
//! is detected when read instead of being resumed from.
//!
//! nnU-Net: `nnUNetTrainer.save_checkpoint` / `load_checkpoint` and the checkpoint logic of
//! `on_epoch_end` (there `latest` is written every 50 epochs; here every epoch, design.md).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use autoseg_planner::Plans;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

use super::state::TrainLog;
use super::TrainError;
use crate::optim::LossScalerState;

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

/// Something to write after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointAction {
    /// Write the checkpoint of this kind.
    Save(CheckpointKind),
}

/// What to write after `epochs_done` of `total_epochs` epochs: `best` when the EMA improved,
/// `final` after the last epoch, and `latest` always, last (so that a crash while writing the
/// others leaves the previous `latest` to resume from).
pub fn checkpoint_actions(
    epochs_done: usize,
    total_epochs: usize,
    new_best_ema: bool,
) -> Vec<CheckpointAction> {
    let mut actions = Vec::with_capacity(3);
    if new_best_ema {
        actions.push(CheckpointAction::Save(CheckpointKind::Best));
    }
    if epochs_done >= total_epochs {
        actions.push(CheckpointAction::Save(CheckpointKind::Final));
    }
    actions.push(CheckpointAction::Save(CheckpointKind::Latest));
    actions
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
    /// The files of checkpoint `kind` in `fold_dir`.
    pub fn new(fold_dir: &Path, kind: CheckpointKind) -> CheckpointPaths {
        let stem = kind.stem();
        CheckpointPaths {
            weights: fold_dir.join(format!("{stem}.safetensors")),
            optimizer: fold_dir.join(format!("{stem}.optim.safetensors")),
            meta: fold_dir.join(format!("{stem}.toml")),
        }
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
    /// Digest of the weights file.
    pub weights: FileDigest,
    /// Digest of the optimiser file.
    pub optimizer: FileDigest,
    /// The per-epoch logs.
    pub log: TrainLog,
    /// The plans the network was built from.
    pub plans: Plans,
}

impl CheckpointMeta {
    /// The run's seed.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] when `seed` is not a decimal `u64`.
    pub fn seed(&self, path: &Path) -> Result<u64, TrainError> {
        self.seed
            .parse()
            .map_err(|_| TrainError::checkpoint(path, format!("seed '{}' is not a u64", self.seed)))
    }
}

/// A checkpoint's tensors, read back.
pub(crate) struct LoadedCheckpoint {
    pub meta: CheckpointMeta,
    pub weights: Vec<(String, Tensor)>,
    pub buffers: Vec<(String, Tensor)>,
}

/// Writes checkpoint `kind` into `fold_dir`: both tensor files, then the metadata with their
/// digests (`meta.weights` and `meta.optimizer` are filled in here).
///
/// # Errors
/// [`TrainError::Io`] or [`TrainError::Torch`] when a file cannot be written.
pub(crate) fn save_checkpoint(
    fold_dir: &Path,
    kind: CheckpointKind,
    weights: &[(String, Tensor)],
    buffers: &[(String, Tensor)],
    mut meta: CheckpointMeta,
) -> Result<(), TrainError> {
    let paths = CheckpointPaths::new(fold_dir, kind);
    let weights_tmp = write_tensors_tmp(&paths.weights, weights)?;
    let optimizer_tmp = write_tensors_tmp(&paths.optimizer, buffers)?;
    meta.weights = digest_file(&weights_tmp)?;
    meta.optimizer = digest_file(&optimizer_tmp)?;
    let text = toml::to_string(&meta)
        .map_err(|e| TrainError::checkpoint(&paths.meta, format!("cannot serialise: {e}")))?;
    let meta_tmp = temp_path(&paths.meta);
    write_synced(&meta_tmp, text.as_bytes())?;
    rename(&weights_tmp, &paths.weights)?;
    rename(&optimizer_tmp, &paths.optimizer)?;
    rename(&meta_tmp, &paths.meta)
}

/// Reads the metadata of checkpoint `kind`, `None` when it does not exist.
///
/// # Errors
/// [`TrainError::Io`] or [`TrainError::CheckpointMeta`] for an unreadable file;
/// [`TrainError::Checkpoint`] for another schema version.
pub fn read_checkpoint_meta(
    fold_dir: &Path,
    kind: CheckpointKind,
) -> Result<Option<CheckpointMeta>, TrainError> {
    let path = CheckpointPaths::new(fold_dir, kind).meta;
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TrainError::io(&path, "read the checkpoint metadata", e)),
    };
    let meta: CheckpointMeta =
        toml::from_str(&text).map_err(|source| TrainError::CheckpointMeta {
            path: path.clone(),
            source,
        })?;
    if meta.schema_version != CHECKPOINT_SCHEMA_VERSION {
        return Err(TrainError::checkpoint(
            &path,
            format!(
                "schema_version {} is not supported (expected {CHECKPOINT_SCHEMA_VERSION})",
                meta.schema_version
            ),
        ));
    }
    Ok(Some(meta))
}

/// Reads checkpoint `kind` (metadata and both tensor files, digests checked), tensors on the
/// CPU.
///
/// # Errors
/// [`TrainError::Checkpoint`] when a file is missing or does not match its digest;
/// otherwise as [`read_checkpoint_meta`].
pub(crate) fn load_checkpoint(
    fold_dir: &Path,
    kind: CheckpointKind,
) -> Result<LoadedCheckpoint, TrainError> {
    let paths = CheckpointPaths::new(fold_dir, kind);
    let meta = read_checkpoint_meta(fold_dir, kind)?
        .ok_or_else(|| TrainError::checkpoint(&paths.meta, "checkpoint metadata is missing"))?;
    let weights = read_tensors(&paths.weights, &meta.weights)?;
    let buffers = read_tensors(&paths.optimizer, &meta.optimizer)?;
    Ok(LoadedCheckpoint {
        meta,
        weights,
        buffers,
    })
}

/// Which checkpoint `--resume` continues from: `latest` or `final`, whichever has more epochs
/// (`final` on a tie); `None` when neither exists.
///
/// # Errors
/// As [`read_checkpoint_meta`].
pub fn resume_checkpoint(fold_dir: &Path) -> Result<Option<CheckpointKind>, TrainError> {
    let latest = read_checkpoint_meta(fold_dir, CheckpointKind::Latest)?;
    let last = read_checkpoint_meta(fold_dir, CheckpointKind::Final)?;
    Ok(match (latest, last) {
        (None, None) => None,
        (Some(_), None) => Some(CheckpointKind::Latest),
        (None, Some(_)) => Some(CheckpointKind::Final),
        (Some(l), Some(f)) if l.epochs_done > f.epochs_done => Some(CheckpointKind::Latest),
        (Some(_), Some(_)) => Some(CheckpointKind::Final),
    })
}

/// Copies the weights of a `.safetensors` file into `vs` (on its device): every variable must
/// be present with its shape, and the file may hold nothing else.
///
/// # Errors
/// [`TrainError::Checkpoint`] naming the first missing, unexpected or mis-shaped tensor;
/// [`TrainError::Torch`] when the file cannot be read.
pub fn load_weights(vs: &nn::VarStore, path: &Path) -> Result<(), TrainError> {
    let tensors = Tensor::read_safetensors(path)?;
    copy_weights(vs, &tensors, path)
}

/// Copies named tensors into the variables of `vs`, checking names and shapes.
pub(crate) fn copy_weights(
    vs: &nn::VarStore,
    tensors: &[(String, Tensor)],
    path: &Path,
) -> Result<(), TrainError> {
    let mut variables = vs.variables();
    if let Some((name, _)) = tensors.iter().find(|(n, _)| !variables.contains_key(n)) {
        return Err(TrainError::checkpoint(
            path,
            format!("tensor '{name}' is not a parameter of this network"),
        ));
    }
    if tensors.len() != variables.len() {
        let mut missing: Vec<&String> = variables
            .keys()
            .filter(|k| !tensors.iter().any(|(n, _)| n == *k))
            .collect();
        missing.sort();
        return Err(TrainError::checkpoint(
            path,
            format!("parameters missing from the file: {missing:?}"),
        ));
    }
    let _no_grad = tch::no_grad_guard();
    for (name, tensor) in tensors {
        let var = variables
            .get_mut(name)
            .expect("every name was checked above");
        if var.size() != tensor.size() {
            return Err(TrainError::checkpoint(
                path,
                format!(
                    "'{name}' has shape {:?}, the network expects {:?}",
                    tensor.size(),
                    var.size()
                ),
            ));
        }
        var.f_copy_(tensor)?;
    }
    Ok(())
}

/// Named tensors sorted by name, on the CPU and contiguous (what the files hold).
pub(crate) fn to_cpu_sorted(
    tensors: Vec<(String, Tensor)>,
) -> Result<Vec<(String, Tensor)>, TrainError> {
    let mut out = tensors
        .into_iter()
        .map(|(name, t)| Ok((name, t.f_to_device(Device::Cpu)?.f_contiguous()?)))
        .collect::<Result<Vec<_>, tch::TchError>>()?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn write_tensors_tmp(path: &Path, tensors: &[(String, Tensor)]) -> Result<PathBuf, TrainError> {
    let tmp = temp_path(path);
    let cpu = to_cpu_sorted(
        tensors
            .iter()
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect(),
    )?;
    Tensor::write_safetensors(&cpu, &tmp)?;
    fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| TrainError::io(&tmp, "sync", e))?;
    Ok(tmp)
}

fn read_tensors(path: &Path, digest: &FileDigest) -> Result<Vec<(String, Tensor)>, TrainError> {
    let found = digest_file(path)?;
    if &found != digest {
        return Err(TrainError::checkpoint(
            path,
            format!(
                "does not match its metadata ({} bytes, hash {}; the metadata says {} bytes, \
                 hash {}): the checkpoint was interrupted while being written or was modified",
                found.bytes, found.hash, digest.bytes, digest.hash
            ),
        ));
    }
    Ok(Tensor::read_safetensors(path)?)
}

fn digest_file(path: &Path) -> Result<FileDigest, TrainError> {
    let bytes = fs::read(path).map_err(|e| TrainError::io(path, "read", e))?;
    Ok(FileDigest::of(&bytes))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let mut file = fs::File::create(path).map_err(|e| TrainError::io(path, "create", e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| TrainError::io(path, "write", e))
}

fn rename(from: &Path, to: &Path) -> Result<(), TrainError> {
    fs::rename(from, to).map_err(|e| TrainError::io(to, "replace", e))
}

/// `dir/.name.tmp`: hidden, beside the target (same filesystem, so the rename is atomic).
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use CheckpointAction::Save;
    use CheckpointKind::{Best, Final, Latest};

    #[test]
    fn latest_every_epoch_best_on_improvement_final_at_the_end() {
        assert_eq!(checkpoint_actions(1, 10, false), vec![Save(Latest)]);
        assert_eq!(
            checkpoint_actions(1, 10, true),
            vec![Save(Best), Save(Latest)]
        );
        assert_eq!(
            checkpoint_actions(10, 10, true),
            vec![Save(Best), Save(Final), Save(Latest)]
        );
        assert_eq!(
            checkpoint_actions(10, 10, false),
            vec![Save(Final), Save(Latest)]
        );
    }

    #[test]
    fn digest_detects_a_changed_byte_and_length() {
        let a = FileDigest::of(b"0123456789abcdef-tail");
        let mut changed = b"0123456789abcdef-tail".to_vec();
        changed[3] ^= 1;
        assert_ne!(a, FileDigest::of(&changed));
        assert_ne!(a, FileDigest::of(b"0123456789abcdef-tai"));
        assert_eq!(a.bytes, 21);
        // FNV-1a offset basis for the empty input.
        assert_eq!(FileDigest::of(b"").hash, "cbf29ce484222325");
    }
}
