//! nnU-Net v2's checkpoints (`fold_<k>/checkpoint_final.pth`, `checkpoint_best.pth`): the
//! dict `nnUNetTrainer.save_checkpoint` writes, read through [`crate::torch_file`] (nothing in
//! it is run), and its `network_weights` copied into a network autoseg built from the same plans.
//!
//! nnU-Net's state dict names every parameter once per module that holds it: `decoder.encoder.*`
//! repeats `encoder.*`, and `…convs.N.all_modules.0/1.*` repeats `…convs.N.conv/norm.*`. Such an
//! alias is skipped only when it is the very same view of the very same storage as a name the
//! network has; anything else that the network lacks is an error naming it. The prefixes
//! `_orig_mod.` (torch.compile) and `module.` (DDP) are dropped, as nnU-Net drops them.

use std::path::{Path, PathBuf};

use autoseg_planner::pickle::{Policy, TensorRef, Value};
use tch::{nn, Kind};

use super::{checkpoint_error, copy_weights, CheckpointFault};
use crate::torch_file::TorchArchive;
use crate::NetworkError;

/// An nnU-Net checkpoint: what inference needs from it.
pub struct NnUnetCheckpoint {
    path: PathBuf,
    archive: TorchArchive,
    weights: Vec<(String, TensorRef)>,
    /// The trainer class that wrote it (`nnUNetTrainer`, `nnUNetTrainer_250epochs`...).
    pub trainer_name: String,
    /// `init_args['configuration']`.
    pub configuration: String,
    /// `inference_allowed_mirroring_axes`: `None` when the trainer disabled mirroring.
    pub mirror_axes: Option<Vec<usize>>,
    /// `current_epoch` (0 when absent).
    pub epochs_done: usize,
    /// `_best_ema`, when it is a number.
    pub best_ema: Option<f64>,
}

impl NnUnetCheckpoint {
    /// Opens `path` and reads the checkpoint's dict (weights are read by
    /// [`NnUnetCheckpoint::load_into`]).
    ///
    /// # Errors
    /// [`NetworkError::Io`], [`NetworkError::TorchFile`], [`NetworkError::Pickle`] (a global
    /// that is not allowed, named), and [`NetworkError::TorchFile`] for a dict that lacks
    /// `network_weights`, `trainer_name` or `init_args['configuration']`.
    pub fn open(path: &Path) -> Result<NnUnetCheckpoint, NetworkError> {
        let archive = TorchArchive::open(path, &Policy::default())?;
        let fault = |what: &str| NetworkError::TorchFile {
            path: path.to_path_buf(),
            what: format!("not an nnU-Net checkpoint: {what}"),
        };
        let object = archive.object();
        let Some(Value::Dict(entries)) = object.get("network_weights") else {
            return Err(fault("no network_weights dict"));
        };
        let mut weights = Vec::with_capacity(entries.len());
        for (name, value) in entries {
            match (name, value) {
                (Value::Str(name), Value::Tensor(t)) => {
                    weights.push((strip_prefixes(name).to_string(), t.clone()))
                }
                _ => {
                    return Err(fault(
                        "network_weights holds something other than named tensors",
                    ))
                }
            }
        }
        let trainer_name = object
            .get("trainer_name")
            .and_then(Value::as_str)
            .ok_or_else(|| fault("no trainer_name"))?
            .to_string();
        let configuration = object
            .get("init_args")
            .and_then(|a| a.get("configuration"))
            .and_then(Value::as_str)
            .ok_or_else(|| fault("no init_args['configuration']"))?
            .to_string();
        let mirror_axes = match object.get("inference_allowed_mirroring_axes") {
            None | Some(Value::None) => None,
            Some(axes) => Some(
                axes.as_seq()
                    .and_then(|items| {
                        items
                            .iter()
                            .map(|a| a.as_int().and_then(|a| usize::try_from(a).ok()))
                            .collect::<Option<Vec<usize>>>()
                    })
                    .ok_or_else(|| {
                        fault("inference_allowed_mirroring_axes is not a tuple of axes")
                    })?,
            ),
        };
        let epochs_done = object
            .get("current_epoch")
            .and_then(Value::as_int)
            .and_then(|e| usize::try_from(e).ok())
            .unwrap_or(0);
        let best_ema = match object.get("_best_ema") {
            Some(Value::Float(v)) => Some(*v),
            _ => None,
        };
        Ok(NnUnetCheckpoint {
            path: path.to_path_buf(),
            archive,
            weights,
            trainer_name,
            configuration,
            mirror_axes,
            epochs_done,
            best_ema,
        })
    }

    /// Copies the weights into `vs` (a network built from the checkpoint's plans), as float32.
    ///
    /// # Errors
    /// [`NetworkError::Checkpoint`] naming the first tensor the network lacks (and that is no
    /// alias of one it has), the parameters the file lacks, or a shape that differs;
    /// [`NetworkError::TorchFile`] for a storage that cannot be read.
    pub fn load_into(&mut self, vs: &nn::VarStore) -> Result<(), NetworkError> {
        let variables = vs.variables();
        let mut tensors = Vec::with_capacity(variables.len());
        for (name, reference) in &self.weights {
            if !variables.contains_key(name) {
                let alias = self
                    .weights
                    .iter()
                    .any(|(other, r)| r == reference && variables.contains_key(other));
                if alias {
                    continue;
                }
                let fault = CheckpointFault::UnexpectedTensor(name.clone());
                return Err(checkpoint_error(&self.path, fault));
            }
            let tensor = self.archive.tensor(reference)?.f_to_kind(Kind::Float)?;
            tensors.push((name.clone(), tensor));
        }
        copy_weights(vs, &tensors, &self.path)
    }
}

/// nnU-Net's `load_checkpoint`: a compiled model's `_orig_mod.` and a DDP model's `module.`.
fn strip_prefixes(name: &str) -> &str {
    let name = name.strip_prefix("module.").unwrap_or(name);
    name.strip_prefix("_orig_mod.").unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_and_ddp_prefixes_are_dropped() {
        assert_eq!(strip_prefixes("_orig_mod.encoder.x"), "encoder.x");
        assert_eq!(strip_prefixes("module.encoder.x"), "encoder.x");
        assert_eq!(strip_prefixes("module._orig_mod.encoder.x"), "encoder.x");
        assert_eq!(strip_prefixes("encoder.x"), "encoder.x");
    }
}
