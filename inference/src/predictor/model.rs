//! Loading a model folder: each fold's final checkpoint through the checkpoint format's own
//! reader (`autoseg_network::checkpoint`: schema, configuration, digest, names and shapes
//! checked), the network built from the plans stored with it, and the dataset description.
//!
//! A model folder is a [`WorkLayout`]: each fold is read from
//! `results/<config>/fold_<k>/checkpoint_final.{safetensors,toml}`, and the network is built
//! from the plans stored in the checkpoint's metadata, not from `plans.toml` (a warning is
//! logged when `plans.toml` differs). Labels, channels and the file ending come from the
//! folder's `dataset.json` when present; otherwise from the checkpoint (plain labels
//! `0..n_classes`, `.nii.gz`), with a warning.

use std::path::PathBuf;

use autoseg_network::checkpoint::{
    copy_weights, norm_of, read_checkpoint_meta_of, read_weights, CheckpointFault, CheckpointKind,
    CheckpointMeta, CheckpointPaths,
};
use autoseg_network::{NetworkError, UNet};
use autoseg_planner::{Configuration, PlanError, Plans, WorkLayout};
use autoseg_preprocessing::{parse_dataset_json, read_dataset_json, DatasetJson};
use tch::{nn, Device};

use super::error::PredictError;

/// One fold's network with its variables.
pub(super) struct FoldModel {
    /// Keeps the variables the network refers to alive.
    _vs: nn::VarStore,
    /// The network.
    pub net: UNet,
}

impl FoldModel {
    /// The network `net` whose variables `vs` holds.
    pub(super) fn new(vs: nn::VarStore, net: UNet) -> FoldModel {
        FoldModel { _vs: vs, net }
    }
}

/// The metadata of checkpoint `kind` of `fold`, checked to be of `configuration`; returns the
/// metadata file's path with it.
///
/// # Errors
/// [`PredictError::MissingCheckpoint`] when it does not exist; [`PredictError::Checkpoint`]
/// for an unreadable file, another schema or another configuration.
pub(super) fn read_fold_meta(
    model: &WorkLayout,
    configuration: &str,
    fold: &str,
    kind: CheckpointKind,
) -> Result<(PathBuf, CheckpointMeta), PredictError> {
    let dir = model.fold(configuration, fold);
    let path = CheckpointPaths::new(&dir, kind).meta;
    match read_checkpoint_meta_of(&dir, kind, configuration) {
        Ok(meta) => Ok((path, meta)),
        Err(NetworkError::Checkpoint {
            path,
            fault: CheckpointFault::Missing,
        }) => Err(PredictError::MissingCheckpoint { path }),
        Err(e) => Err(e.into()),
    }
}

/// Folds of one ensemble must share plans, channels and classes.
pub(super) fn check_same_model(
    path: PathBuf,
    first: &CheckpointMeta,
    other: &CheckpointMeta,
) -> Result<(), PredictError> {
    let same = first.plans == other.plans
        && first.in_channels == other.in_channels
        && first.n_classes == other.n_classes;
    if same {
        Ok(())
    } else {
        Err(PredictError::FoldsDiffer { path })
    }
}

/// Logs a warning when the folder's `plans.toml` exists and differs from the checkpoint's plans
/// (predict always uses the checkpoint's, design.md).
pub(super) fn warn_if_plans_changed(model: &WorkLayout, stored: &Plans) {
    let path = model.plans();
    match Plans::read(&path) {
        Ok(current) if &current == stored => {}
        Err(PlanError::MissingArtifact { .. }) => {}
        Ok(_) => tracing::warn!(
            path = %path.display(),
            "plans.toml has changed since training; predicting with the plans stored in the checkpoint"
        ),
        Err(e) => tracing::warn!(
            path = %path.display(),
            error = %e,
            "plans.toml cannot be read; predicting with the plans stored in the checkpoint"
        ),
    }
}

/// The folder's `dataset.json`, or a plain-label description built from the checkpoint.
pub(super) fn model_dataset_json(
    model: &WorkLayout,
    meta: &CheckpointMeta,
) -> Result<DatasetJson, PredictError> {
    let path = model.dataset_json();
    if path.is_file() {
        return Ok(read_dataset_json(&path)?);
    }
    tracing::warn!(
        path = %path.display(),
        n_classes = meta.n_classes,
        "no dataset.json in the model folder: assuming plain labels 0..n_classes and .nii.gz files"
    );
    let channels: serde_json::Map<String, serde_json::Value> = (0..meta.in_channels)
        .map(|c| (c.to_string(), format!("channel_{c}").into()))
        .collect();
    let mut labels = serde_json::Map::new();
    labels.insert("background".into(), 0.into());
    for label in 1..meta.n_classes {
        labels.insert(format!("label_{label}"), label.into());
    }
    let json = serde_json::json!({
        "channel_names": channels,
        "labels": labels,
        "numTraining": 1,
        "file_ending": ".nii.gz",
    });
    Ok(parse_dataset_json(json.to_string().as_bytes(), &path)?)
}

/// The input channels a configuration's network takes besides the dataset's images: for a
/// cascade stage, the one-hot of its first stage's foreground labels; none otherwise.
pub(super) fn cascade_channels(config: &Configuration, dataset: &DatasetJson) -> usize {
    match config.previous_stage {
        Some(_) => dataset.labels.foreground_labels().len(),
        None => 0,
    }
}

/// The dataset's channels (plus `extra_channels`: a cascade's one-hot inputs) and
/// segmentation heads must be the network's.
pub(super) fn check_dataset(
    path: PathBuf,
    meta: &CheckpointMeta,
    dataset: &DatasetJson,
    extra_channels: usize,
) -> Result<(), PredictError> {
    let dataset_heads = dataset.labels.num_segmentation_heads();
    let dataset_channels = dataset.n_channels() + extra_channels;
    if dataset_channels == meta.in_channels && dataset_heads == meta.n_classes {
        return Ok(());
    }
    Err(PredictError::DatasetMismatch {
        path,
        network_channels: meta.in_channels,
        network_classes: meta.n_classes,
        dataset_channels,
        dataset_heads,
        with_previous_stage: extra_channels > 0,
    })
}

/// Builds a fold's network on `device` and loads the weights of checkpoint `kind` into it.
pub(super) fn load_fold(
    model: &WorkLayout,
    config: &Configuration,
    (fold, kind): (&str, CheckpointKind),
    meta: &CheckpointMeta,
    device: Device,
) -> Result<FoldModel, PredictError> {
    let dir = model.fold(&config.name, fold);
    let paths = CheckpointPaths::new(&dir, kind);
    if !paths.weights.is_file() {
        return Err(PredictError::MissingCheckpoint {
            path: paths.weights,
        });
    }
    let vs = nn::VarStore::new(device);
    let weights = read_weights(&dir, kind, meta)?;
    // Batch norm's running statistics are among the weights.
    let norm = norm_of(weights.iter().map(|(name, _)| name.as_str()));
    let net = UNet::with_norm(
        &vs.root(),
        config.unet_spec(),
        meta.in_channels as i64,
        meta.n_classes as i64,
        norm,
    )
    .map_err(|source| PredictError::Network {
        path: paths.meta.clone(),
        source,
    })?;
    copy_weights(&vs, &weights, &paths.weights)?;
    Ok(FoldModel::new(vs, net))
}
