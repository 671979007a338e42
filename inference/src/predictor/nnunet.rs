//! An nnU-Net v2 trained-model folder (`<Trainer>__<Plans>__<configuration>/` with
//! `plans.json`, `dataset.json` and `fold_<k>/checkpoint_final.pth`) as a [`Predictor`]:
//! nnU-Net's plans read as autoseg plans, its checkpoints read without running their pickle,
//! and the mirroring axes its trainer allowed. Everything after loading (preprocessing, sliding
//! window, export) is autoseg's own, which reproduces nnU-Net's.
//!
//! A cascade stage (`3d_cascade_fullres`) runs its first stage from the model folder beside it
//! (`<Trainer>__<Plans>__3d_lowres`), as autoseg runs its own cascades: nnU-Net needs
//! `-prev_stage_predictions` from a separate run instead.

use std::path::{Path, PathBuf};

use autoseg_network::checkpoint::{CheckpointKind, NnUnetCheckpoint};
use autoseg_network::UNet;
use autoseg_planner::Plans;
use autoseg_preprocessing::read_dataset_json;
use tch::{nn, Device};

use super::error::{io_err, PredictError};
use super::model::{cascade_channels, FoldModel};
use super::{Cascade, Predictor};

/// Whether `folder` is an nnU-Net trained-model folder (it has `plans.json` and no autoseg
/// `plans.toml`).
pub fn is_nnunet_model_folder(folder: &Path) -> bool {
    folder.join("plans.json").is_file() && !folder.join("plans.toml").is_file()
}

impl Predictor {
    /// Loads checkpoint `kind` (`checkpoint_<kind>.pth`, nnU-Net's `-chk`) of `folds` (`"0"`..
    /// `"4"` or `"all"`) of the nnU-Net model folder `folder` onto `device`, with
    /// [`super::PredictOptions::nnunet`] and the trainer's mirroring axes.
    ///
    /// # Errors
    /// [`PredictError::NoFolds`]; [`PredictError::MissingCheckpoint`]; [`PredictError::Plan`]
    /// for plans autoseg cannot use (named); [`PredictError::Checkpoint`] for a checkpoint that
    /// is not nnU-Net's, names a forbidden Python global, or whose weights do not fit the
    /// network; [`PredictError::FoldsDiffer`] when folds were trained for other
    /// configurations; [`PredictError::NnUnet`] for a cascade stage whose first stage's folder
    /// is not beside it.
    pub fn load_nnunet(
        folder: &Path,
        folds: &[String],
        kind: CheckpointKind,
        device: Device,
    ) -> Result<Predictor, PredictError> {
        if folds.is_empty() {
            return Err(PredictError::NoFolds);
        }
        let plans_path = folder.join("plans.json");
        let text = std::fs::read_to_string(&plans_path).map_err(io_err(&plans_path, "read"))?;
        let plan_error = |source| PredictError::Plan {
            path: plans_path.clone(),
            source: Box::new(source),
        };
        let plans = Plans::from_nnunet_json(&text).map_err(plan_error)?;
        let dataset = read_dataset_json(&folder.join("dataset.json"))?;
        let mut checkpoints = Vec::with_capacity(folds.len());
        for fold in folds {
            let path = folder
                .join(autoseg_planner::fold_folder(fold))
                .join(format!("{}.pth", kind.stem()));
            if !path.is_file() {
                return Err(PredictError::MissingCheckpoint { path });
            }
            let checkpoint = NnUnetCheckpoint::open(&path)?;
            checkpoints.push((path, checkpoint));
        }
        let (_, first) = &checkpoints[0];
        let name = first.configuration.clone();
        if let Some((path, _)) = checkpoints
            .iter()
            .find(|(_, c)| c.configuration != name || c.mirror_axes != first.mirror_axes)
        {
            return Err(PredictError::FoldsDiffer { path: path.clone() });
        }
        let config = plans.resolve(&name).map_err(plan_error)?;
        // A cascade stage loads its first stage from the folder beside it.
        let cascade = match &config.previous_stage {
            Some(previous) => {
                let sibling = previous_stage_folder(folder, &name, previous).map_err(|what| {
                    PredictError::NnUnet {
                        path: folder.to_path_buf(),
                        what,
                    }
                })?;
                let previous = Predictor::load_nnunet(&sibling, folds, kind, device)?;
                Some(Cascade {
                    previous: Box::new(previous),
                    labels: dataset.labels.foreground_labels(),
                })
            }
            None => None,
        };
        let extra_channels = cascade_channels(&config, &dataset);
        let mirror_axes = first.mirror_axes.clone();
        tracing::info!(
            trainer = %first.trainer_name,
            configuration = %name,
            folds = ?folds,
            "loading an nnU-Net model folder"
        );
        let in_channels = (dataset.n_channels() + extra_channels) as i64;
        let n_classes = dataset.labels.num_segmentation_heads() as i64;
        let mut models = Vec::with_capacity(checkpoints.len());
        for (path, mut checkpoint) in checkpoints {
            models.push(load_fold(
                path,
                &mut checkpoint,
                &config,
                in_channels,
                n_classes,
                device,
            )?);
        }
        let mut predictor =
            Predictor::assemble(plans, config, dataset, models, device, mirror_axes)?;
        predictor.cascade = cascade;
        Ok(predictor)
    }
}

/// `folder` made absolute (when it exists) and its name, `<Trainer>__<Plans>__<configuration>`
/// for an nnU-Net model folder (`.` or `..` given on the command line resolve to theirs).
pub(super) fn folder_and_name(folder: &Path) -> (PathBuf, String) {
    let folder = folder
        .canonicalize()
        .unwrap_or_else(|_| folder.to_path_buf());
    let name = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (folder, name)
}

/// The model folder of `previous` (a cascade's first stage) beside `folder`, the folder of
/// `configuration`: `<Trainer>__<Plans>__<previous>`, as nnU-Net names them in one results
/// folder.
pub(super) fn previous_stage_folder(
    folder: &Path,
    configuration: &str,
    previous: &str,
) -> Result<PathBuf, String> {
    let (folder, name) = folder_and_name(folder);
    let Some(stem) = name.strip_suffix(&format!("__{configuration}")) else {
        return Err(format!(
            "{configuration} is a cascade stage: its folder must be named <Trainer>__<Plans>__{configuration} \
             with its first stage's <Trainer>__<Plans>__{previous} beside it"
        ));
    };
    let sibling = folder
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("{stem}__{previous}"));
    if !sibling.join("plans.json").is_file() {
        return Err(format!(
            "{configuration} is a cascade stage and its first stage's model folder {} is missing \
             (nnU-Net keeps both in one results folder)",
            sibling.display()
        ));
    }
    Ok(sibling)
}

/// Builds one fold's network and copies the checkpoint's weights into it.
fn load_fold(
    path: PathBuf,
    checkpoint: &mut NnUnetCheckpoint,
    config: &autoseg_planner::Configuration,
    in_channels: i64,
    n_classes: i64,
    device: Device,
) -> Result<FoldModel, PredictError> {
    let vs = nn::VarStore::new(device);
    let norm = checkpoint.norm();
    let net = UNet::with_norm(&vs.root(), config.unet_spec(), in_channels, n_classes, norm)
        .map_err(|source| PredictError::Network {
            path: path.clone(),
            source,
        })?;
    checkpoint.load_into(&vs)?;
    Ok(FoldModel::new(vs, net))
}
