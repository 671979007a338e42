//! An nnU-Net v2 trained-model folder (`<Trainer>__<Plans>__<configuration>/` with
//! `plans.json`, `dataset.json` and `fold_<k>/checkpoint_final.pth`) as a [`Predictor`]:
//! nnU-Net's plans read as autoseg plans, its checkpoints read without running their pickle,
//! and the mirroring axes its trainer allowed. Everything after loading (preprocessing, sliding
//! window, export) is autoseg's own, which reproduces nnU-Net's.
//!
//! Not yet: cascade stages (`3d_cascade_fullres`), whose first stage lives in another folder,
//! and nnU-Net's `postprocessing.pkl`; both are refused or ignored with a message.

use std::path::{Path, PathBuf};

use autoseg_network::checkpoint::{CheckpointKind, NnUnetCheckpoint};
use autoseg_network::UNet;
use autoseg_planner::Plans;
use autoseg_preprocessing::read_dataset_json;
use tch::{nn, Device};

use super::error::{io_err, PredictError};
use super::model::FoldModel;
use super::Predictor;

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
    /// configurations; [`PredictError::NnUnet`] for a cascade stage.
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
        let (first_path, first) = &checkpoints[0];
        let name = first.configuration.clone();
        if let Some((path, _)) = checkpoints
            .iter()
            .find(|(_, c)| c.configuration != name || c.mirror_axes != first.mirror_axes)
        {
            return Err(PredictError::FoldsDiffer { path: path.clone() });
        }
        let config = plans.resolve(&name).map_err(plan_error)?;
        if config.previous_stage.is_some() {
            return Err(PredictError::NnUnet {
                path: first_path.clone(),
                what: format!(
                    "{name} is a cascade stage; running nnU-Net cascades is not supported yet \
                     (its first stage is another model folder)"
                ),
            });
        }
        let mirror_axes = first.mirror_axes.clone();
        tracing::info!(
            trainer = %first.trainer_name,
            configuration = %name,
            folds = ?folds,
            "loading an nnU-Net model folder"
        );
        let in_channels = dataset.n_channels() as i64;
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
        Predictor::assemble(plans, config, dataset, models, device, mirror_axes)
    }
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
    let net =
        UNet::new(&vs.root(), config.unet_spec(), in_channels, n_classes).map_err(|source| {
            PredictError::Network {
                path: path.clone(),
                source,
            }
        })?;
    checkpoint.load_into(&vs)?;
    Ok(FoldModel::new(vs, net))
}
