//! nnU-Net v2's checkpoints (`fold_<k>/checkpoint_final.pth`, `checkpoint_best.pth`): the
//! dict `nnUNetTrainer.save_checkpoint` writes, read through [`crate::torch_file`] (nothing in
//! it is run), and its `network_weights` copied into a network autoseg built from the same plans.
//!
//! nnU-Net's state dict names every parameter once per module that holds it: `decoder.encoder.*`
//! repeats `encoder.*`, and `…convs.N.all_modules.0/1.*` repeats `…convs.N.conv/norm.*`. Such an
//! alias is skipped only when it is the very same view of the very same storage as a name the
//! network has; anything else that the network lacks is an error naming it. The prefixes
//! `_orig_mod.` (torch.compile) and `module.` (DDP) are dropped, as nnU-Net drops them.
//!
//! [`save_nnunet_checkpoint`] writes such a checkpoint from autoseg's weights, with every alias
//! nnU-Net's `state_dict()` has (the same storage under each name), so nnU-Net's strict
//! `load_state_dict` accepts it.
//!
//! As pretrained weights (`train --pretrained-weights`), only `network_weights` is read and
//! copied by name into every parameter but the segmentation heads ([`super::load_pretrained`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use autoseg_planner::pickle::{Policy, StorageRef, TensorRef, Value};
use autoseg_planner::NormKind;
use tch::{nn, Kind, Tensor};

use super::{checkpoint_error, copy_weights, CheckpointFault};
use crate::torch_file::{save_torch_archive, storage_class, TorchArchive};
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
        let weights = network_weights(object, path)?;
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

    /// The norm the network was trained with ([`super::norm_of`] its weight names): batch
    /// norm for `nnUNetTrainerBN` and other trainers that use it.
    pub fn norm(&self) -> NormKind {
        super::norm_of(self.weights.iter().map(|(name, _)| name.as_str()))
    }

    /// Copies the weights into `vs` (a network built from the checkpoint's plans, with
    /// [`NnUnetCheckpoint::norm`]), each converted to its variable's kind.
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

/// What nnU-Net reads from a checkpoint besides its weights (`nnUNetTrainer.save_checkpoint`
/// writes these keys; `nnUNetPredictor.initialize_from_trained_model_folder` reads them).
pub struct NnUnetCheckpointInfo<'a> {
    /// `trainer_name`: a trainer class nnU-Net has (it builds the network through it).
    pub trainer_name: &'a str,
    /// `init_args['configuration']`.
    pub configuration: &'a str,
    /// `init_args['fold']`: `"0"`.. (written as an int) or `"all"`.
    pub fold: &'a str,
    /// `init_args['plans']`: the plans as `json.load` gives them.
    pub plans: Value,
    /// `init_args['dataset_json']`.
    pub dataset_json: Value,
    /// `inference_allowed_mirroring_axes`; `None` when mirroring is not allowed.
    pub mirror_axes: Option<&'a [usize]>,
    /// `current_epoch`.
    pub epochs_done: usize,
    /// `_best_ema`.
    pub best_ema: Option<f64>,
}

/// Writes `weights` (named as nnU-Net names them) as an nnU-Net checkpoint at `path`, with the
/// aliases nnU-Net's state dict holds, atomically.
///
/// # Errors
/// As [`save_torch_archive`].
pub fn save_nnunet_checkpoint(
    path: &Path,
    weights: &[(String, Tensor)],
    info: NnUnetCheckpointInfo<'_>,
) -> Result<(), NetworkError> {
    let mut state = Vec::new();
    let mut storages = Vec::with_capacity(weights.len());
    for (key, (name, tensor)) in weights.iter().enumerate() {
        let tensor = tensor.f_contiguous()?;
        let size: Vec<u64> = tensor.size().iter().map(|&d| d as u64).collect();
        let storage = StorageRef {
            // An unknown kind is refused by save_torch_archive, naming it.
            class: storage_class(tensor.kind())
                .unwrap_or("FloatStorage")
                .into(),
            key: key.to_string(),
            location: "cpu".into(),
            numel: size.iter().product(),
        };
        let reference = Value::Tensor(TensorRef::contiguous(storage, size));
        for alias in std::iter::once(name.clone()).chain(aliases_of(name)) {
            state.push((Value::Str(alias), reference.clone()));
        }
        storages.push((key.to_string(), tensor));
    }
    let text = |s: &str| Value::Str(s.to_string());
    let fold = match info.fold.parse::<i64>() {
        Ok(k) => Value::Int(k),
        Err(_) => text(info.fold),
    };
    let object = Value::Dict(vec![
        (text("network_weights"), Value::Dict(state)),
        (
            text("_best_ema"),
            info.best_ema.map_or(Value::None, Value::Float),
        ),
        (text("current_epoch"), Value::Int(info.epochs_done as i64)),
        (
            text("init_args"),
            Value::Dict(vec![
                (text("plans"), info.plans),
                (text("configuration"), text(info.configuration)),
                (text("fold"), fold),
                (text("dataset_json"), info.dataset_json),
            ]),
        ),
        (text("trainer_name"), text(info.trainer_name)),
        (
            text("inference_allowed_mirroring_axes"),
            info.mirror_axes.map_or(Value::None, |axes| {
                Value::Tuple(axes.iter().map(|&a| Value::Int(a as i64)).collect())
            }),
        ),
    ]);
    save_torch_archive(path, &object, &storages)
}

/// The other names nnU-Net's `state_dict()` gives parameter `name`: a `ConvDropoutNormReLU`'s
/// `conv`/`norm` again as `all_modules.0`/`all_modules.1` (no dropout), and everything of the
/// encoder again under `decoder.encoder.` (the decoder holds a reference to it).
fn aliases_of(name: &str) -> Vec<String> {
    let mut names = vec![name.to_string()];
    let mut parts: Vec<&str> = name.split('.').collect();
    if parts.len() >= 3 {
        let module = parts.len() - 2;
        let index = match parts[module] {
            "conv" => Some("0"),
            "norm" => Some("1"),
            _ => None,
        };
        if let Some(index) = index {
            parts.splice(module..=module, ["all_modules", index]);
            names.push(parts.join("."));
        }
    }
    if name.starts_with("encoder.") {
        let decoder: Vec<String> = names.iter().map(|n| format!("decoder.{n}")).collect();
        names.extend(decoder);
    }
    names.remove(0);
    names
}

/// nnU-Net's `load_pretrained_weights` from the checkpoint at `path`: every parameter of `vs`
/// but the segmentation heads from its `network_weights` (the only entry read, as there), as
/// float32; returns how many were copied and how many heads kept their initialisation.
///
/// # Errors
/// As [`NnUnetCheckpoint::open`] for the file, and as [`super::pretrained::transfer`] for a
/// parameter that does not fit.
pub(super) fn load_pretrained_pth(
    vs: &nn::VarStore,
    path: &Path,
) -> Result<(usize, usize), NetworkError> {
    let mut archive = TorchArchive::open(path, &Policy::default())?;
    let weights: HashMap<String, TensorRef> = network_weights(archive.object(), path)?
        .into_iter()
        .collect();
    super::pretrained::transfer(vs, path, |name| {
        weights
            .get(name)
            .map(|reference| Ok(archive.tensor(reference)?.f_to_kind(Kind::Float)?))
            .transpose()
    })
}

/// The checkpoint dict's `network_weights`: names (prefixes dropped) and their tensors.
fn network_weights(object: &Value, path: &Path) -> Result<Vec<(String, TensorRef)>, NetworkError> {
    let fault = |what: &str| NetworkError::TorchFile {
        path: path.to_path_buf(),
        what: format!("not an nnU-Net checkpoint: {what}"),
    };
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
    Ok(weights)
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
    fn aliases_are_the_names_nnunets_state_dict_repeats() {
        assert_eq!(
            aliases_of("encoder.stages.0.0.convs.1.norm.bias"),
            [
                "encoder.stages.0.0.convs.1.all_modules.1.bias",
                "decoder.encoder.stages.0.0.convs.1.norm.bias",
                "decoder.encoder.stages.0.0.convs.1.all_modules.1.bias",
            ]
        );
        assert_eq!(
            aliases_of("decoder.stages.0.convs.0.conv.weight"),
            ["decoder.stages.0.convs.0.all_modules.0.weight"]
        );
        assert!(aliases_of("decoder.seg_layers.0.weight").is_empty());
        assert!(aliases_of("decoder.transpconvs.1.bias").is_empty());
    }

    #[test]
    fn compile_and_ddp_prefixes_are_dropped() {
        assert_eq!(strip_prefixes("_orig_mod.encoder.x"), "encoder.x");
        assert_eq!(strip_prefixes("module.encoder.x"), "encoder.x");
        assert_eq!(strip_prefixes("module._orig_mod.encoder.x"), "encoder.x");
        assert_eq!(strip_prefixes("encoder.x"), "encoder.x");
    }
}
