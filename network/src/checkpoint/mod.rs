//! The checkpoint format, owned here and nowhere else: the three files of each checkpoint of a
//! fold, `checkpoint_<kind>.safetensors` (weights under nnU-Net's parameter names),
//! `checkpoint_<kind>.optim.safetensors` (optimiser buffers by parameter name) and
//! `checkpoint_<kind>.toml` ([`CheckpointMeta`]: epoch, logs, EMA, loss scaler, seed, the plans
//! the network was built from, and the size and hash of both tensor files). The trainer writes
//! and resumes them, the predictor loads their weights; both through this module, with the same
//! checks.
//!
//! Every file is written to a temporary name, synced and renamed, metadata last, so a set torn
//! by a crash between two renames is detected when read (the digests disagree) instead of being
//! used.
//!
//! nnU-Net: `nnUNetTrainer.save_checkpoint` / `load_checkpoint` (one `.pth` there).

pub(crate) mod fault;
mod format;
mod nnunet;
mod pretrained;

use std::fs;
use std::io::Write;
use std::path::Path;

use autoseg_planner::{temp_path, NormKind};
use tch::{nn, Device, Tensor};

use crate::error::NetworkError;
pub use fault::{CheckpointFault, ParameterMismatch};
pub use format::{
    CheckpointKind, CheckpointMeta, CheckpointPaths, FileDigest, InterruptedEpoch, LossScalerState,
    TrainLog, CHECKPOINT_SCHEMA_VERSION,
};
pub use nnunet::{save_nnunet_checkpoint, NnUnetCheckpoint, NnUnetCheckpointInfo};
pub use pretrained::{
    is_segmentation_head, load_pretrained, PretrainedFormat, PretrainedLoad, SEGMENTATION_HEAD_MARK,
};

impl CheckpointMeta {
    /// The axes test-time mirroring flips for a network of `n_axes` spatial axes: every axis
    /// unless the checkpoint restricts them; `None` when it allows none.
    pub fn inference_mirror_axes(&self, n_axes: usize) -> Option<Vec<usize>> {
        match &self.mirror_axes {
            None => Some((0..n_axes).collect()),
            Some(axes) if axes.is_empty() => None,
            Some(axes) => Some(axes.clone()),
        }
    }

    /// The run's seed.
    ///
    /// # Errors
    /// [`NetworkError::Checkpoint`] ([`CheckpointFault::Seed`]) when `seed` is not a decimal
    /// `u64`.
    pub fn seed(&self, path: &Path) -> Result<u64, NetworkError> {
        self.seed
            .parse()
            .map_err(|_| checkpoint_error(path, CheckpointFault::Seed(self.seed.clone())))
    }
}

fn checkpoint_error(path: &Path, fault: CheckpointFault) -> NetworkError {
    NetworkError::Checkpoint {
        path: path.to_path_buf(),
        fault,
    }
}

fn io_error<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> NetworkError + 'a {
    move |source| NetworkError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// A checkpoint's tensors, read back on the CPU with their digests checked.
pub struct LoadedCheckpoint {
    /// The metadata.
    pub meta: CheckpointMeta,
    /// The weights, by parameter name.
    pub weights: Vec<(String, Tensor)>,
    /// The optimiser buffers, by name.
    pub buffers: Vec<(String, Tensor)>,
}

/// Writes checkpoint `kind` into `fold_dir`: both tensor files, then the metadata with their
/// digests (`meta.weights` and `meta.optimizer` are filled in here).
///
/// # Errors
/// [`NetworkError::Io`] or [`NetworkError::Torch`] when a file cannot be written.
pub fn save_checkpoint(
    fold_dir: &Path,
    kind: CheckpointKind,
    weights: &[(String, Tensor)],
    buffers: &[(String, Tensor)],
    mut meta: CheckpointMeta,
) -> Result<(), NetworkError> {
    let paths = CheckpointPaths::new(fold_dir, kind);
    let temps = [&paths.weights, &paths.optimizer, &paths.meta].map(|p| temp_path(p));
    let result = (|| {
        let [weights_tmp, optimizer_tmp, meta_tmp] = &temps;
        write_tensors(weights_tmp, weights)?;
        write_tensors(optimizer_tmp, buffers)?;
        meta.weights = digest_file(weights_tmp)?;
        meta.optimizer = digest_file(optimizer_tmp)?;
        let text = toml::to_string(&meta).map_err(|source| NetworkError::SerializeMeta {
            path: paths.meta.clone(),
            source,
        })?;
        write_synced(meta_tmp, text.as_bytes())?;
        rename(weights_tmp, &paths.weights)?;
        rename(optimizer_tmp, &paths.optimizer)?;
        rename(meta_tmp, &paths.meta)
    })();
    if result.is_err() {
        // A full disk must not also be left fuller: no temp file survives a failed save.
        for tmp in &temps {
            let _ = fs::remove_file(tmp);
        }
    }
    result
}

/// Reads the metadata of checkpoint `kind`, `None` when it does not exist.
///
/// # Errors
/// [`NetworkError::Io`] or [`NetworkError::CheckpointMeta`] for an unreadable file;
/// [`NetworkError::Checkpoint`] ([`CheckpointFault::SchemaVersion`]) for another layout.
pub fn read_checkpoint_meta(
    fold_dir: &Path,
    kind: CheckpointKind,
) -> Result<Option<CheckpointMeta>, NetworkError> {
    let path = CheckpointPaths::new(fold_dir, kind).meta;
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(&path, "read the checkpoint metadata")(e)),
    };
    let meta: CheckpointMeta =
        toml::from_str(&text).map_err(|source| NetworkError::CheckpointMeta {
            path: path.clone(),
            source: Box::new(source),
        })?;
    if meta.schema_version != CHECKPOINT_SCHEMA_VERSION {
        let found = meta.schema_version;
        return Err(checkpoint_error(
            &path,
            CheckpointFault::SchemaVersion { found },
        ));
    }
    Ok(Some(meta))
}

/// Reads the metadata of checkpoint `kind` of a fold trained for `configuration`.
///
/// # Errors
/// [`CheckpointFault::Missing`] when it does not exist, [`CheckpointFault::Configuration`]
/// when it was trained for another configuration; otherwise as [`read_checkpoint_meta`].
pub fn read_checkpoint_meta_of(
    fold_dir: &Path,
    kind: CheckpointKind,
    configuration: &str,
) -> Result<CheckpointMeta, NetworkError> {
    let path = CheckpointPaths::new(fold_dir, kind).meta;
    let meta = read_checkpoint_meta(fold_dir, kind)?
        .ok_or_else(|| checkpoint_error(&path, CheckpointFault::Missing))?;
    if meta.configuration != configuration {
        let fault = CheckpointFault::Configuration {
            found: meta.configuration.clone(),
            expected: configuration.to_string(),
        };
        return Err(checkpoint_error(&path, fault));
    }
    Ok(meta)
}

/// Reads checkpoint `kind` (metadata and both tensor files, digests checked), tensors on the
/// CPU.
///
/// # Errors
/// [`NetworkError::Checkpoint`] when a file is missing or does not match its digest;
/// otherwise as [`read_checkpoint_meta`].
pub fn load_checkpoint(
    fold_dir: &Path,
    kind: CheckpointKind,
) -> Result<LoadedCheckpoint, NetworkError> {
    let paths = CheckpointPaths::new(fold_dir, kind);
    let meta = read_checkpoint_meta(fold_dir, kind)?
        .ok_or_else(|| checkpoint_error(&paths.meta, CheckpointFault::Missing))?;
    let weights = read_tensors(&paths.weights, &meta.weights)?;
    let buffers = read_tensors(&paths.optimizer, &meta.optimizer)?;
    Ok(LoadedCheckpoint {
        meta,
        weights,
        buffers,
    })
}

/// Loads the weights of checkpoint `kind`, described by `meta`, into `vs` (on its device):
/// the file must match its digest, and hold every variable with its shape and nothing else.
///
/// # Errors
/// [`NetworkError::Checkpoint`] naming the weights file and the fault.
pub fn load_weights(
    vs: &nn::VarStore,
    fold_dir: &Path,
    kind: CheckpointKind,
    meta: &CheckpointMeta,
) -> Result<(), NetworkError> {
    let path = CheckpointPaths::new(fold_dir, kind).weights;
    copy_weights(vs, &read_weights(fold_dir, kind, meta)?, &path)
}

/// The weights of checkpoint `kind`, described by `meta`, on the CPU, the file checked against
/// its digest.
///
/// # Errors
/// [`NetworkError::Checkpoint`] naming the weights file and the fault.
pub fn read_weights(
    fold_dir: &Path,
    kind: CheckpointKind,
    meta: &CheckpointMeta,
) -> Result<Vec<(String, Tensor)>, NetworkError> {
    read_tensors(&CheckpointPaths::new(fold_dir, kind).weights, &meta.weights)
}

/// The norm a network's weights were made with: batch norm when they hold running statistics
/// (`….norm.running_mean`, torch's name, in nnU-Net's and autoseg's checkpoints alike),
/// instance norm otherwise. Every loader of weights builds its network with this.
pub fn norm_of<'a>(names: impl IntoIterator<Item = &'a str>) -> NormKind {
    if names.into_iter().any(|n| n.ends_with(".running_mean")) {
        NormKind::Batch
    } else {
        NormKind::Instance
    }
}

/// Copies named tensors into the variables of `vs`, checking names and shapes; `path` is the
/// file they came from (for the error).
///
/// # Errors
/// [`NetworkError::Checkpoint`] naming the first unexpected, missing or mis-shaped tensor.
pub fn copy_weights(
    vs: &nn::VarStore,
    tensors: &[(String, Tensor)],
    path: &Path,
) -> Result<(), NetworkError> {
    let mut variables = vs.variables();
    if let Some((name, _)) = tensors.iter().find(|(n, _)| !variables.contains_key(n)) {
        let fault = CheckpointFault::UnexpectedTensor(name.clone());
        return Err(checkpoint_error(path, fault));
    }
    if tensors.len() != variables.len() {
        let mut missing: Vec<String> = variables
            .keys()
            .filter(|k| !tensors.iter().any(|(n, _)| n == *k))
            .cloned()
            .collect();
        missing.sort();
        return Err(checkpoint_error(
            path,
            CheckpointFault::MissingTensors(missing),
        ));
    }
    let _no_grad = tch::no_grad_guard();
    for (name, tensor) in tensors {
        let var = variables
            .get_mut(name)
            .expect("every name was checked above");
        if var.size() != tensor.size() {
            let fault = CheckpointFault::Shape {
                name: name.clone(),
                found: tensor.size(),
                expected: var.size(),
            };
            return Err(checkpoint_error(path, fault));
        }
        var.f_copy_(tensor)?;
    }
    Ok(())
}

/// Named tensors sorted by name, on the CPU and contiguous (what the files hold).
///
/// # Errors
/// [`NetworkError::Torch`] when a copy fails.
pub fn to_cpu_sorted(
    tensors: Vec<(String, Tensor)>,
) -> Result<Vec<(String, Tensor)>, NetworkError> {
    let mut out = tensors
        .into_iter()
        .map(|(name, t)| Ok((name, t.f_to_device(Device::Cpu)?.f_contiguous()?)))
        .collect::<Result<Vec<_>, tch::TchError>>()?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Writes `tensors` as safetensors to `tmp` and syncs it.
fn write_tensors(tmp: &Path, tensors: &[(String, Tensor)]) -> Result<(), NetworkError> {
    let cpu = to_cpu_sorted(
        tensors
            .iter()
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect(),
    )?;
    Tensor::write_safetensors(&cpu, tmp).map_err(|e| safetensors_error(tmp, "write", e))?;
    fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_error(tmp, "sync"))
}

fn read_tensors(path: &Path, digest: &FileDigest) -> Result<Vec<(String, Tensor)>, NetworkError> {
    let found = digest_file(path)?;
    if &found != digest {
        let fault = CheckpointFault::Digest {
            found,
            expected: digest.clone(),
        };
        return Err(checkpoint_error(path, fault));
    }
    Tensor::read_safetensors(path).map_err(|e| safetensors_error(path, "read", e))
}

/// A safetensors failure of tch as our error: I/O faults (a full disk) as [`NetworkError::Io`],
/// format faults in words (the safetensors crate's own text is its Debug form).
fn safetensors_error(path: &Path, action: &'static str, err: tch::TchError) -> NetworkError {
    use safetensors::SafeTensorError as E;
    let tch::TchError::SafeTensorError { err, .. } = err else {
        return NetworkError::Torch(err);
    };
    let what = match err {
        E::IoError(source) => return io_error(path, action)(source),
        E::InvalidHeader | E::InvalidHeaderStart | E::InvalidHeaderDeserialization => {
            "its JSON header is invalid".to_string()
        }
        E::JsonError(e) => format!("its JSON header is invalid ({e})"),
        E::HeaderTooLarge => "its header length is too large".to_string(),
        E::HeaderTooSmall | E::InvalidHeaderLength => {
            "the file is shorter than its header length says (truncated?)".to_string()
        }
        E::MetadataIncompleteBuffer => {
            "the file is shorter than its tensors need (truncated?)".to_string()
        }
        E::TensorNotFound(name) => format!("tensor '{name}' is not in the file"),
        E::InvalidOffset(name) => format!("tensor '{name}' has invalid data offsets"),
        E::TensorInvalidInfo | E::ValidationOverflow => {
            "a tensor's dtype, shape or offsets are inconsistent".to_string()
        }
        E::InvalidTensorView(dtype, shape, n) => {
            format!("a {dtype:?} tensor of shape {shape:?} cannot hold {n} bytes")
        }
    };
    checkpoint_error(path, CheckpointFault::NotSafetensors(what))
}

fn digest_file(path: &Path) -> Result<FileDigest, NetworkError> {
    match fs::read(path) {
        Ok(bytes) => Ok(FileDigest::of(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(checkpoint_error(path, CheckpointFault::Missing))
        }
        Err(e) => Err(io_error(path, "read")(e)),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), NetworkError> {
    let mut file = fs::File::create(path).map_err(io_error(path, "create"))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_error(path, "write"))
}

fn rename(from: &Path, to: &Path) -> Result<(), NetworkError> {
    fs::rename(from, to).map_err(io_error(to, "replace"))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn safetensors_faults_read_as_words_and_io_faults_as_io() {
        let path = Path::new("/f/checkpoint_final.safetensors");
        let wrap = |err| tch::TchError::SafeTensorError {
            path: path.display().to_string(),
            err,
        };
        let short = safetensors_error(
            path,
            "read",
            wrap(safetensors::SafeTensorError::MetadataIncompleteBuffer),
        );
        assert_eq!(
            short.to_string(),
            "/f/checkpoint_final.safetensors: not a valid safetensors file: the file is shorter \
             than its tensors need (truncated?)"
        );
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let disk = safetensors_error(path, "write", wrap(full.into()));
        assert!(
            matches!(
                &disk,
                NetworkError::Io {
                    action: "write",
                    ..
                }
            ),
            "{disk}"
        );
        assert!(!disk.to_string().contains("IoError("), "{disk}");
    }

    #[test]
    fn paths_and_faults_read_as_before() {
        let paths = CheckpointPaths::new(Path::new("/f"), CheckpointKind::Final);
        assert_eq!(paths.weights, Path::new("/f/checkpoint_final.safetensors"));
        assert_eq!(
            paths.optimizer,
            Path::new("/f/checkpoint_final.optim.safetensors")
        );
        assert_eq!(paths.meta, Path::new("/f/checkpoint_final.toml"));
        let fault = CheckpointFault::SchemaVersion { found: 7 };
        assert_eq!(
            fault.to_string(),
            "schema_version 7 is not supported (this build reads 1)"
        );
    }
}
