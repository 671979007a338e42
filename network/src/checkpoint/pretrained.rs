//! Pretrained weights for a fresh training run (`autoseg train --pretrained-weights FILE`),
//! nnU-Net's `load_pretrained_weights`: every parameter of the new network except the
//! segmentation heads (names containing `.seg_layers.`) must be in FILE with the same shape, and
//! is copied from it; the heads keep their fresh initialisation (so a dataset with other labels
//! can start from the weights); what else FILE holds is ignored. Nothing is copied unless every
//! parameter fits.
//!
//! FILE is an nnU-Net checkpoint (`.pth`: only its `network_weights`, read without running the
//! pickle, `_orig_mod.`/`module.` prefixes dropped) or an autoseg checkpoint's weights or
//! metadata file (`checkpoint_<kind>.safetensors` or `checkpoint_<kind>.toml` of a fold: the
//! weights are checked against the digest their metadata records, as for every load).
//!
//! nnU-Net: `run/load_pretrained_weights.py::load_pretrained_weights` (2.8.1), which asserts
//! that each key of the new network's state dict not containing `.seg_layers.` is in the
//! pretrained dict with the same shape, then loads the matching keys but the heads.

use std::collections::HashMap;
use std::path::Path;

use tch::{nn, Tensor};

use super::{
    checkpoint_error, nnunet, read_checkpoint_meta, read_tensors, CheckpointFault, CheckpointKind,
    CheckpointPaths, ParameterMismatch,
};
use crate::NetworkError;

/// What marks a segmentation head's parameters (`decoder.seg_layers.{j}.weight`/`.bias`), the
/// string nnU-Net skips (`skip_strings_in_pretrained`).
pub const SEGMENTATION_HEAD_MARK: &str = ".seg_layers.";

/// True for the parameters of a segmentation head, which pretrained weights never replace.
pub fn is_segmentation_head(name: &str) -> bool {
    name.contains(SEGMENTATION_HEAD_MARK)
}

/// The kind of file pretrained weights came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PretrainedFormat {
    /// An nnU-Net checkpoint (`.pth`).
    NnUnet,
    /// An autoseg checkpoint of a fold.
    Autoseg(CheckpointKind),
}

/// What [`load_pretrained`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PretrainedLoad {
    /// The kind of file read.
    pub format: PretrainedFormat,
    /// Parameters copied from the file.
    pub n_copied: usize,
    /// Segmentation-head parameters left at their initialisation.
    pub n_heads: usize,
}

/// Copies the weights of `file` into every parameter of `vs` but the segmentation heads (see
/// the module docs), on `vs`'s device.
///
/// # Errors
/// [`NetworkError::Checkpoint`] naming the file and, with
/// [`CheckpointFault::PretrainedMismatch`], the first parameter (in name order) that the file
/// lacks or holds with another shape, with the shapes;
/// [`CheckpointFault::NotPretrainedWeights`] for a file that is neither kind; otherwise the
/// errors of reading either kind (a missing file, a digest that does not match, a pickle that
/// names a global that is not allowed).
pub fn load_pretrained(vs: &nn::VarStore, file: &Path) -> Result<PretrainedLoad, NetworkError> {
    let (format, (n_copied, n_heads)) =
        if let Some((fold_dir, kind)) = CheckpointPaths::of_file(file) {
            let paths = CheckpointPaths::new(&fold_dir, kind);
            let meta = read_checkpoint_meta(&fold_dir, kind)?
                .ok_or_else(|| checkpoint_error(&paths.meta, CheckpointFault::Missing))?;
            let mut tensors: HashMap<String, Tensor> = read_tensors(&paths.weights, &meta.weights)?
                .into_iter()
                .collect();
            let counts = transfer(vs, &paths.weights, |name| Ok(tensors.remove(name)))?;
            (PretrainedFormat::Autoseg(kind), counts)
        } else if file.extension().is_some_and(|e| e == "pth") {
            let counts = nnunet::load_pretrained_pth(vs, file)?;
            (PretrainedFormat::NnUnet, counts)
        } else {
            return Err(checkpoint_error(
                file,
                CheckpointFault::NotPretrainedWeights,
            ));
        };
    Ok(PretrainedLoad {
        format,
        n_copied,
        n_heads,
    })
}

/// Checks every parameter of `vs` but the heads against `fetch(name)` (the file's tensor of
/// that name, `None` when it has none), in name order, then copies them all; returns how many
/// were copied and how many heads were left. `path` names the file in errors.
pub(super) fn transfer(
    vs: &nn::VarStore,
    path: &Path,
    mut fetch: impl FnMut(&str) -> Result<Option<Tensor>, NetworkError>,
) -> Result<(usize, usize), NetworkError> {
    let mut variables = vs.variables();
    let mut names: Vec<String> = variables.keys().cloned().collect();
    names.sort();
    let (heads, body): (Vec<String>, Vec<String>) =
        names.into_iter().partition(|n| is_segmentation_head(n));
    let mut tensors = Vec::with_capacity(body.len());
    for name in body {
        let expected = variables[&name].size();
        let found = match fetch(&name)? {
            Some(tensor) if tensor.size() == expected => {
                tensors.push((name, tensor));
                continue;
            }
            found => found.map(|t| t.size()),
        };
        let mismatch = ParameterMismatch {
            name,
            found,
            expected,
        };
        let fault = CheckpointFault::PretrainedMismatch(Box::new(mismatch));
        return Err(checkpoint_error(path, fault));
    }
    let _no_grad = tch::no_grad_guard();
    for (name, tensor) in &tensors {
        let var = variables
            .get_mut(name)
            .expect("every name was taken from the variables");
        var.f_copy_(tensor)?;
    }
    Ok((tensors.len(), heads.len()))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use autoseg_planner::Plans;
    use tch::{Device, Kind};

    use super::*;
    use crate::checkpoint::{
        save_checkpoint, CheckpointMeta, FileDigest, LossScalerState, TrainLog,
        CHECKPOINT_SCHEMA_VERSION,
    };
    use crate::torch_file::TorchArchive;
    use crate::UNet;
    use autoseg_planner::pickle::{Policy, Value};

    /// An nnU-Net 2.8.1 model of the committed fixture (`scripts/make_nnunet_model_fixture.sh`).
    fn nnunet_model(plans_name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
            "../fixtures/data/nnunet/model/nnUNetTrainer_autosegFixture__{plans_name}__3d_fullres"
        ))
    }

    fn nnunet_plans(plans_name: &str) -> Plans {
        let text = std::fs::read_to_string(nnunet_model(plans_name).join("plans.json")).unwrap();
        Plans::from_nnunet_json(&text).unwrap()
    }

    /// A fresh network of `plans`' 3d_fullres with `in_channels` inputs and `n_classes` heads.
    fn network(plans: &Plans, in_channels: i64, n_classes: i64) -> nn::VarStore {
        let config = plans.resolve("3d_fullres").unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        UNet::new(&vs.root(), config.unet_spec(), in_channels, n_classes).unwrap();
        vs
    }

    /// Deep copies of `vs`'s variables, by name.
    fn snapshot(vs: &nn::VarStore) -> HashMap<String, Tensor> {
        vs.variables()
            .into_iter()
            .map(|(name, t)| (name, t.copy()))
            .collect()
    }

    fn write_checkpoint(fold_dir: &Path, tensors: &[(String, Tensor)], plans: &Plans) {
        let placeholder = FileDigest::of(&[]);
        let meta = CheckpointMeta {
            schema_version: CHECKPOINT_SCHEMA_VERSION,
            configuration: "3d_fullres".into(),
            fold: "0".into(),
            epochs_done: 1,
            total_epochs: 1,
            seed: "0".into(),
            in_channels: 1,
            n_classes: 3,
            ignore_label: None,
            best_ema: None,
            scaler: LossScalerState {
                scale: 1.0,
                growth_tracker: 0,
            },
            weights: placeholder.clone(),
            optimizer: placeholder,
            log: TrainLog::default(),
            mirror_axes: None,
            training: None,
            interrupted: None,
            plans: plans.clone(),
        };
        save_checkpoint(fold_dir, CheckpointKind::Final, tensors, &[], meta).unwrap();
    }

    /// The file, parameter, shape in the file (`None`: missing) and shape in the network of a
    /// refusal.
    fn mismatch(err: NetworkError) -> (PathBuf, String, Option<Vec<i64>>, Vec<i64>) {
        match err {
            NetworkError::Checkpoint {
                path,
                fault: CheckpointFault::PretrainedMismatch(m),
            } => (path, m.name, m.found, m.expected),
            other => panic!("not a mismatch: {other}"),
        }
    }

    #[test]
    fn heads_are_the_seg_layers() {
        assert!(is_segmentation_head("decoder.seg_layers.2.weight"));
        assert!(!is_segmentation_head(
            "decoder.stages.0.convs.0.conv.weight"
        ));
        assert!(!is_segmentation_head("seg_layers_x.weight"));
    }

    #[test]
    fn checkpoint_files_name_their_fold_and_kind() {
        let of = |p: &str| CheckpointPaths::of_file(Path::new(p));
        let fold = PathBuf::from("/w/fold_0");
        assert_eq!(
            of("/w/fold_0/checkpoint_final.safetensors"),
            Some((fold.clone(), CheckpointKind::Final))
        );
        assert_eq!(
            of("/w/fold_0/checkpoint_best.toml"),
            Some((fold, CheckpointKind::Best))
        );
        assert_eq!(
            of("checkpoint_latest.toml"),
            Some((PathBuf::from("."), CheckpointKind::Latest))
        );
        assert_eq!(of("/w/fold_0/checkpoint_final.optim.safetensors"), None);
        assert_eq!(of("/w/fold_0/model.safetensors"), None);
        assert_eq!(of("/w/fold_0/checkpoint_final.pth"), None);
    }

    /// Known answer: every parameter but the heads is the source's bit for bit, the heads are
    /// the target's fresh initialisation; through the weights file and through the metadata.
    #[test]
    fn an_autoseg_checkpoint_gives_every_parameter_but_the_heads() {
        let plans = nnunet_plans("nnUNetPlans");
        let tmp = tempfile::tempdir().unwrap();
        tch::manual_seed(1);
        let source = network(&plans, 1, 3);
        let source_weights = snapshot(&source);
        let mut tensors: Vec<(String, Tensor)> = source_weights
            .iter()
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect();
        // Extra tensors in the file are ignored, as nnU-Net ignores them.
        tensors.push((
            "extra.weight".into(),
            Tensor::ones([2], (Kind::Float, Device::Cpu)),
        ));
        write_checkpoint(tmp.path(), &tensors, &plans);
        for file in ["checkpoint_final.safetensors", "checkpoint_final.toml"] {
            tch::manual_seed(2);
            let target = network(&plans, 1, 3);
            let fresh = snapshot(&target);
            let load = load_pretrained(&target, &tmp.path().join(file)).unwrap();
            let n_heads = 2 * (plans.resolve("3d_fullres").unwrap().network.stages.len() - 1);
            assert_eq!(
                load.format,
                PretrainedFormat::Autoseg(CheckpointKind::Final)
            );
            assert_eq!(load.n_heads, n_heads);
            assert_eq!(load.n_copied + n_heads, fresh.len());
            for (name, var) in target.variables() {
                let expected = if is_segmentation_head(&name) {
                    &fresh[&name]
                } else {
                    &source_weights[&name]
                };
                assert!(var.equal(expected), "{file}: {name}");
            }
            let head = "decoder.seg_layers.0.weight";
            assert!(
                !fresh[head].equal(&source_weights[head]),
                "seeds 1 and 2 differ"
            );
        }
    }

    /// The committed nnU-Net checkpoints (PlainConvUNet and ResidualEncoderUNet) into networks
    /// built from their plans: the nnU-Net weights, heads excepted; a network with other heads
    /// (5 classes, the fine-tuning case) is accepted.
    #[test]
    fn an_nnunet_checkpoint_gives_nnunets_weights() {
        for plans_name in ["nnUNetPlans", "nnUNetResEncUNetMPlans"] {
            let plans = nnunet_plans(plans_name);
            let pth = nnunet_model(plans_name).join("fold_0/checkpoint_final.pth");
            let mut archive = TorchArchive::open(&pth, &Policy::default()).unwrap();
            let Some(Value::Dict(entries)) = archive.object().get("network_weights").cloned()
            else {
                panic!("no network_weights");
            };
            let mut theirs = HashMap::new();
            for (name, value) in entries {
                let (Value::Str(name), Value::Tensor(r)) = (name, value) else {
                    panic!("not a named tensor");
                };
                theirs.insert(name, archive.tensor(&r).unwrap().to_kind(Kind::Float));
            }
            for n_classes in [3, 5] {
                let target = network(&plans, 1, n_classes);
                let fresh = snapshot(&target);
                let load = load_pretrained(&target, &pth).unwrap();
                assert_eq!(load.format, PretrainedFormat::NnUnet);
                for (name, var) in target.variables() {
                    if is_segmentation_head(&name) {
                        assert!(var.equal(&fresh[&name]), "{plans_name} {name}");
                    } else {
                        assert!(var.equal(&theirs[&name]), "{plans_name} {name}");
                    }
                }
                assert!(load.n_copied > 0 && load.n_heads > 0);
            }
        }
    }

    /// Other features (plans not moved) or another input channel count: refused naming the
    /// file, the first parameter in name order that does not fit and both shapes; nothing is
    /// copied.
    #[test]
    fn a_network_of_another_shape_is_refused_naming_the_parameter() {
        let mut plans = nnunet_plans("nnUNetPlans");
        let pth = nnunet_model("nnUNetPlans").join("fold_0/checkpoint_final.pth");
        let two_channels = network(&plans, 2, 3);
        let (path, name, found, expected) =
            mismatch(load_pretrained(&two_channels, &pth).unwrap_err());
        assert_eq!(path, pth);
        assert_eq!(name, "encoder.stages.0.0.convs.0.conv.weight");
        assert_eq!(
            (found, expected),
            (Some(vec![2, 1, 3, 3, 3]), vec![2, 2, 3, 3, 3])
        );

        let entry = plans.configurations.get_mut("3d_fullres").unwrap();
        let architecture = entry.architecture.as_mut().unwrap();
        assert_eq!(architecture.features_per_stage, vec![2, 4, 8, 16]);
        architecture.features_per_stage = vec![4, 8, 16, 32];
        let wider = network(&plans, 1, 3);
        let before = snapshot(&wider);
        let err = load_pretrained(&wider, &pth).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with(&pth.display().to_string()), "{text}");
        assert!(
            text.contains("has shape [8] in the file, [16] in the network"),
            "{text}"
        );
        let (_, name, found, expected) = mismatch(err);
        assert_eq!(name, "decoder.stages.0.convs.0.conv.bias");
        assert_eq!((found, expected), (Some(vec![8]), vec![16]));
        for (name, var) in wider.variables() {
            assert!(var.equal(&before[&name]), "{name} was changed");
        }
    }

    #[test]
    fn a_missing_parameter_a_changed_file_and_another_file_are_refused() {
        let plans = nnunet_plans("nnUNetPlans");
        let tmp = tempfile::tempdir().unwrap();
        let source = network(&plans, 1, 3);
        let missing = "encoder.stages.1.0.convs.0.norm.weight";
        let tensors: Vec<(String, Tensor)> = source
            .variables()
            .into_iter()
            .filter(|(n, _)| n != missing)
            .collect();
        write_checkpoint(tmp.path(), &tensors, &plans);
        let weights = tmp.path().join("checkpoint_final.safetensors");
        let target = network(&plans, 1, 3);
        let err = load_pretrained(&target, &weights).unwrap_err();
        assert!(
            err.to_string().contains("is missing from the file"),
            "{err}"
        );
        let (path, name, found, expected) = mismatch(err);
        assert_eq!((path, name.as_str()), (weights.clone(), missing));
        assert_eq!((found, expected), (None, vec![4]));

        let mut bytes = std::fs::read(&weights).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&weights, bytes).unwrap();
        let err = load_pretrained(&target, &weights).unwrap_err();
        assert!(
            matches!(
                &err,
                NetworkError::Checkpoint {
                    fault: CheckpointFault::Digest { .. },
                    ..
                }
            ),
            "{err}"
        );

        let other = tmp.path().join("weights.bin");
        let err = load_pretrained(&target, &other).unwrap_err();
        assert!(
            matches!(
                &err,
                NetworkError::Checkpoint {
                    fault: CheckpointFault::NotPretrainedWeights,
                    ..
                }
            ),
            "{err}"
        );
        let err = load_pretrained(&target, &tmp.path().join("checkpoint_best.toml")).unwrap_err();
        assert!(err.to_string().contains("checkpoint missing"), "{err}");
    }
}
