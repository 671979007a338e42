//! `export --format nnunet`: an autoseg model written as nnU-Net v2 trained-model folders, the
//! layout `nnUNetv2_export_model_to_zip` writes and `nnUNetv2_install_pretrained_model_from_zip`
//! installs: `<dataset>/nnUNetTrainer__<Plans>__<configuration>/` with `plans.json`,
//! `dataset.json`, `fold_<k>/checkpoint_{final,best}.pth` and, when `best.toml` chose the
//! configuration with postprocessing, `crossval_results_folds_<folds>/postprocessing.pkl`
//! (for `nnUNetv2_apply_postprocessing`). nnU-Net 2.8.1's
//! `nnUNetv2_predict_from_modelfolder` runs such a folder (the checkpoint is a `torch.save`
//! archive written by [`save_nnunet_checkpoint`]); autoseg's own `predict -m` runs it too.
//!
//! The checkpoints hold what inference and `-pretrained_weights` read (weights, trainer name,
//! configuration, fold, plans, dataset.json, mirroring axes, epoch, EMA), not an optimiser
//! state: nnU-Net's `--c` cannot continue training from them.

use std::path::{Path, PathBuf};

use autoseg_evaluation::{read_best, BestChoice, PostprocessingPlan};
use autoseg_network::checkpoint::{
    copy_weights, load_checkpoint, norm_of, save_nnunet_checkpoint, CheckpointKind,
    CheckpointPaths, NnUnetCheckpointInfo,
};
use autoseg_network::UNet;
use autoseg_planner::pickle::Value;
use autoseg_planner::{fold_folder, temp_path, write_atomic, NormKind, Plans, WorkLayout};
use autoseg_preprocessing::parse_dataset_json;
use tch::{nn, Device};

use super::error::{io_err, PredictError};
use super::model::{cascade_channels, check_dataset};
use super::model_zip::fold_dirs;
use super::zip_entries::write_zip;

/// The trainer named in exported checkpoints: nnU-Net builds the network through this class.
/// The plain trainer builds it exactly from the plans; `nnUNetTrainerBN` swaps in batch norm.
fn trainer(norm: NormKind) -> &'static str {
    match norm {
        NormKind::Instance => "nnUNetTrainer",
        NormKind::Batch => "nnUNetTrainerBN",
    }
}

/// The norm of a configuration's checkpoints ([`norm_of`] their weights), one for all folds.
fn configuration_norm(folds: &[(String, PathBuf)]) -> Result<NormKind, PredictError> {
    let mut norms = Vec::new();
    for (_, dir) in folds {
        for kind in [CheckpointKind::Final, CheckpointKind::Best] {
            if CheckpointPaths::new(dir, kind).meta.is_file() {
                let loaded = load_checkpoint(dir, kind)?;
                let norm = norm_of(loaded.weights.iter().map(|(name, _)| name.as_str()));
                norms.push((norm, CheckpointPaths::new(dir, kind).weights));
            }
        }
    }
    match norms.iter().find(|(n, _)| *n != norms[0].0) {
        Some((_, path)) => Err(PredictError::NnUnet {
            path: path.clone(),
            what: "this configuration's folds were trained with different norms (instance and \
                   batch): nnU-Net builds one network per model folder"
                .into(),
        }),
        None => Ok(norms.first().map_or(NormKind::Instance, |(n, _)| *n)),
    }
}

/// Writes `configurations` of the autoseg model `model` as nnU-Net model folders under `out`
/// (`out/<dataset>/nnUNetTrainer__<Plans>__<config>/`), or into the zip `out` when it ends in
/// `.zip` (atomically). Returns the files written, relative to `out`.
///
/// # Errors
/// [`PredictError::Plan`] for plans that cannot be read or written; [`PredictError::Checkpoint`]
/// for a checkpoint that does not match its digest or the network its plans build;
/// [`PredictError::MissingCheckpoint`] when a configuration has no final checkpoint;
/// [`PredictError::Io`] when writing fails.
pub fn export_nnunet(
    model: &WorkLayout,
    configurations: &[String],
    out: &Path,
) -> Result<Vec<PathBuf>, PredictError> {
    let zipped = out.extension().is_some_and(|e| e == "zip");
    if !zipped {
        return write_folders(model, configurations, out);
    }
    // Beside the zip, under a name of its own (the zip's own temporary file is `temp_path(out)`).
    let staging = temp_path(&out.with_extension("staging"));
    let result = write_folders(model, configurations, &staging).and_then(|files| {
        let entries: Vec<(PathBuf, String)> = files
            .iter()
            .map(|f| (staging.join(f), f.to_string_lossy().into_owned()))
            .collect();
        write_zip(out, &entries)?;
        Ok(files)
    });
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn write_folders(
    model: &WorkLayout,
    configurations: &[String],
    out: &Path,
) -> Result<Vec<PathBuf>, PredictError> {
    let plans_path = model.plans();
    let plan_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PredictError::Plan {
            path,
            source: Box::new(source),
        }
    };
    let plans = Plans::read(&plans_path).map_err(plan_error(&plans_path))?;
    let dataset_path = model.dataset_json();
    let dataset_bytes = std::fs::read(&dataset_path).map_err(io_err(&dataset_path, "read"))?;
    let dataset = parse_dataset_json(&dataset_bytes, &dataset_path)?;
    let plans_json = plans
        .to_nnunet_json(&dataset.file_ending)
        .map_err(plan_error(&plans_path))?;
    let json = |text: &[u8], path: &Path| {
        serde_json::from_slice::<serde_json::Value>(text)
            .map(|v| Value::from_json(&v))
            .map_err(|e| PredictError::NnUnet {
                path: path.to_path_buf(),
                what: format!("not JSON: {e}"),
            })
    };
    let plans_value = json(plans_json.as_bytes(), &plans_path)?;
    let dataset_value = json(&dataset_bytes, &dataset_path)?;
    let plans_name = plans.planner.nnunet_plans_name();
    let best = read_best(&model.best())?;
    let mut files = Vec::new();
    for configuration in configurations {
        let config = plans
            .resolve(configuration)
            .map_err(plan_error(&plans_path))?;
        let fold_dirs = fold_dirs(&model.configuration(configuration))?;
        let norm = configuration_norm(&fold_dirs)?;
        let trainer = trainer(norm);
        let folder = Path::new(&plans.dataset_name)
            .join(format!("{trainer}__{plans_name}__{configuration}"));
        let mut write = |name: &str, bytes: &[u8]| -> Result<(), PredictError> {
            let path = out.join(&folder).join(name);
            create_parent(&path)?;
            write_atomic(&path, bytes).map_err(io_err(&path, "write"))?;
            files.push(folder.join(name));
            Ok(())
        };
        write("plans.json", plans_json.as_bytes())?;
        write("dataset.json", &dataset_bytes)?;
        let mut any = false;
        let mut folds = Vec::new();
        for (fold, dir) in fold_dirs {
            for kind in [CheckpointKind::Final, CheckpointKind::Best] {
                if !CheckpointPaths::new(&dir, kind).meta.is_file() {
                    continue;
                }
                let loaded = load_checkpoint(&dir, kind)?;
                // nnU-Net builds the network from dataset.json: it must be this one's.
                let meta_path = CheckpointPaths::new(&dir, kind).meta;
                let one_hot = cascade_channels(&config, &dataset);
                check_dataset(meta_path, &loaded.meta, &dataset, one_hot)?;
                // Through the network the plans build: nnU-Net will build the same one and
                // load these weights strictly.
                let vs = nn::VarStore::new(Device::Cpu);
                UNet::with_norm(
                    &vs.root(),
                    config.unet_spec(),
                    loaded.meta.in_channels as i64,
                    loaded.meta.n_classes as i64,
                    norm,
                )
                .map_err(|source| PredictError::Network {
                    path: dir.clone(),
                    source,
                })?;
                copy_weights(
                    &vs,
                    &loaded.weights,
                    &CheckpointPaths::new(&dir, kind).weights,
                )?;
                let mut weights: Vec<_> = vs.variables().into_iter().collect();
                weights.sort_by(|a, b| a.0.cmp(&b.0));
                let mirror_axes = loaded.meta.inference_mirror_axes(config.patch_size.len());
                let name = Path::new(&fold_folder(&fold)).join(format!("{}.pth", kind.stem()));
                let path = out.join(&folder).join(&name);
                create_parent(&path)?;
                let info = NnUnetCheckpointInfo {
                    trainer_name: trainer,
                    configuration,
                    fold: &fold,
                    plans: plans_value.clone(),
                    dataset_json: dataset_value.clone(),
                    mirror_axes: mirror_axes.as_deref(),
                    epochs_done: loaded.meta.epochs_done,
                    best_ema: loaded.meta.best_ema,
                };
                save_nnunet_checkpoint(&path, &weights, info)?;
                files.push(folder.join(name));
                any |= kind == CheckpointKind::Final;
                if !folds.contains(&fold) {
                    folds.push(fold.clone());
                }
            }
        }
        if let Some(plan) = postprocessing_of(best.as_ref(), configuration) {
            // Where nnUNetv2_find_best_configuration puts it.
            let name = Path::new(&format!("crossval_results_folds_{}", folds.join("_")))
                .join("postprocessing.pkl");
            let path = out.join(&folder).join(&name);
            create_parent(&path)?;
            let bytes = plan
                .to_nnunet_pickle(&path)
                .map_err(|e| PredictError::NnUnet {
                    path: path.clone(),
                    what: e.to_string(),
                })?;
            write_atomic(&path, &bytes).map_err(io_err(&path, "write"))?;
            files.push(folder.join(name));
        }
        if !any {
            let dir = model.fold(configuration, "0");
            return Err(PredictError::MissingCheckpoint {
                path: CheckpointPaths::new(&dir, CheckpointKind::Final).meta,
            });
        }
    }
    Ok(files)
}

/// The postprocessing `best.toml` chose for `configuration` alone (an ensemble's is not one
/// configuration's), when it has steps.
fn postprocessing_of<'a>(
    best: Option<&'a BestChoice>,
    configuration: &str,
) -> Option<&'a PostprocessingPlan> {
    let best = best?;
    let alone = match best.configuration.as_deref() {
        Some(chosen) => chosen == configuration,
        None => best.ensemble == [configuration],
    };
    (alone && !best.postprocessing.steps.is_empty()).then_some(&best.postprocessing)
}

fn create_parent(path: &Path) -> Result<(), PredictError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_err(parent, "create"))
}
