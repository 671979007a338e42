//! `import-nnunet`: an nnU-Net v2 model folder written again as an autoseg model folder (a
//! [`WorkLayout`]: `plans.toml`, `dataset.json`, each fold's weights as a checkpoint in
//! autoseg's own format with its digest, and `results/best.toml` when one configuration is
//! imported), so that `predict` on the result equals `predict` on the source.

use std::path::{Path, PathBuf};

use autoseg_evaluation::{write_single_choice, PostprocessingPlan};
use autoseg_network::checkpoint::{
    save_checkpoint, CheckpointKind, CheckpointMeta, FileDigest, LossScalerState, NnUnetCheckpoint,
    TrainLog, CHECKPOINT_SCHEMA_VERSION,
};
use autoseg_network::UNet;
use autoseg_planner::{fold_of_folder, write_atomic, Plans, WorkLayout};
use autoseg_preprocessing::parse_dataset_json;
use tch::{nn, Device};

use super::error::{io_err, PredictError};
use super::model::cascade_channels;
use super::nnunet::{folder_and_name, previous_stage_folder};
use super::nnunet_postprocessing::nnunet_postprocessing;

/// What [`import_nnunet`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// Configurations imported, in the order given.
    pub configurations: Vec<String>,
    /// `(configuration, fold, checkpoint)` of every checkpoint written.
    pub checkpoints: Vec<(String, String, CheckpointKind)>,
    /// nnU-Net's `postprocessing.pkl` carried into `best.toml`, if any.
    pub postprocessing: Option<PathBuf>,
}

/// Imports the nnU-Net model folders `sources` (one configuration each, the same plans and
/// dataset) into `out`; a cascade stage brings its first stage's folder (beside it) along.
/// `best.toml` chooses the one configuration, or the cascade's last stage.
///
/// # Errors
/// [`PredictError::NnUnet`] when the folders' plans or dataset descriptions differ or a folder
/// has no checkpoint; the errors of [`super::Predictor::load_nnunet`] for what cannot be read or
/// built; [`PredictError::Io`] and [`PredictError::Checkpoint`] when writing fails.
pub fn import_nnunet(sources: &[PathBuf], out: &WorkLayout) -> Result<ImportSummary, PredictError> {
    let Some(first) = sources.first() else {
        return Err(PredictError::NoFolds);
    };
    let read = |path: PathBuf| std::fs::read(&path).map_err(io_err(&path, "read"));
    let plans_json = read(first.join("plans.json"))?;
    let dataset_bytes = read(first.join("dataset.json"))?;
    for source in &sources[1..] {
        for (file, expected) in [
            ("plans.json", &plans_json),
            ("dataset.json", &dataset_bytes),
        ] {
            if &read(source.join(file))? != expected {
                return Err(PredictError::NnUnet {
                    path: source.join(file),
                    what: format!(
                        "differs from {}'s; import model folders of one plans file together",
                        first.display()
                    ),
                });
            }
        }
    }
    let plans_path = first.join("plans.json");
    let plans =
        Plans::from_nnunet_json(&String::from_utf8_lossy(&plans_json)).map_err(|source| {
            PredictError::Plan {
                path: plans_path.clone(),
                source: Box::new(source),
            }
        })?;
    let dataset = parse_dataset_json(&dataset_bytes, &first.join("dataset.json"))?;
    let sources = with_first_stages(sources, &plans)?;
    let n_classes = dataset.labels.num_segmentation_heads();
    let mut summary = ImportSummary {
        configurations: Vec::new(),
        checkpoints: Vec::new(),
        postprocessing: None,
    };
    let mut source_of: Vec<PathBuf> = Vec::new();
    for source in &sources {
        for (fold, kind, path) in checkpoints_of(source)? {
            let mut checkpoint = NnUnetCheckpoint::open(&path)?;
            let name = checkpoint.configuration.clone();
            let config = plans.resolve(&name).map_err(|source| PredictError::Plan {
                path: plans_path.clone(),
                source: Box::new(source),
            })?;
            let in_channels = dataset.n_channels() + cascade_channels(&config, &dataset);
            let vs = nn::VarStore::new(Device::Cpu);
            UNet::with_norm(
                &vs.root(),
                config.unet_spec(),
                in_channels as i64,
                n_classes as i64,
                checkpoint.norm(),
            )
            .map_err(|source| PredictError::Network {
                path: path.clone(),
                source,
            })?;
            checkpoint.load_into(&vs)?;
            let mut weights: Vec<_> = vs.variables().into_iter().collect();
            weights.sort_by(|a, b| a.0.cmp(&b.0));
            let empty = FileDigest::of(&[]);
            let meta = CheckpointMeta {
                schema_version: CHECKPOINT_SCHEMA_VERSION,
                configuration: name.clone(),
                fold: fold.clone(),
                epochs_done: checkpoint.epochs_done,
                total_epochs: checkpoint.epochs_done,
                seed: "0".into(),
                in_channels,
                n_classes,
                ignore_label: dataset.labels.ignore_label().map(i64::from),
                best_ema: checkpoint.best_ema,
                scaler: LossScalerState {
                    scale: 1.0,
                    growth_tracker: 0,
                },
                weights: empty.clone(),
                optimizer: empty,
                log: TrainLog::default(),
                mirror_axes: Some(checkpoint.mirror_axes.clone().unwrap_or_default()),
                training: None,
                interrupted: None,
                plans: plans.clone(),
            };
            let dir = out.fold(&name, &fold);
            std::fs::create_dir_all(&dir).map_err(io_err(&dir, "create"))?;
            save_checkpoint(&dir, kind, &weights, &[], meta)?;
            if !summary.configurations.contains(&name) {
                summary.configurations.push(name.clone());
                source_of.push(source.clone());
            }
            summary.checkpoints.push((name, fold, kind));
        }
    }
    plans
        .write(&out.plans())
        .map_err(|source| PredictError::Plan {
            path: out.plans(),
            source: Box::new(source),
        })?;
    let dataset_json = out.dataset_json();
    write_atomic(&dataset_json, &dataset_bytes).map_err(io_err(&dataset_json, "write"))?;
    // The configuration to predict with: the only one, or a cascade's last stage.
    let last_stages: Vec<usize> = (0..summary.configurations.len())
        .filter(|&i| {
            !summary.configurations.iter().any(|other| {
                plans
                    .resolve(other)
                    .is_ok_and(|c| c.previous_stage.as_ref() == Some(&summary.configurations[i]))
            })
        })
        .collect();
    if let [index] = last_stages.as_slice() {
        let single = &summary.configurations[*index];
        let mut folds: Vec<String> = summary
            .checkpoints
            .iter()
            .filter(|c| &c.0 == single)
            .map(|c| c.1.clone())
            .collect();
        folds.dedup();
        let postprocessing = nnunet_postprocessing(&source_of[*index], &folds)?;
        let plan = postprocessing.as_ref().map_or_else(
            || PostprocessingPlan { steps: Vec::new() },
            |(_, p)| p.clone(),
        );
        write_single_choice(&out.best(), single, &folds, out.root(), &plan).map_err(|e| {
            PredictError::NnUnet {
                path: out.best(),
                what: e.to_string(),
            }
        })?;
        summary.postprocessing = postprocessing.map(|(path, _)| path);
    }
    Ok(summary)
}

/// `sources` with the first stage of each cascade stage among them added before it (the
/// `<Trainer>__<Plans>__<previous>` folder beside it), unless it is there already.
fn with_first_stages(sources: &[PathBuf], plans: &Plans) -> Result<Vec<PathBuf>, PredictError> {
    let configuration_of = |folder: &Path| {
        let (_, name) = folder_and_name(folder);
        name.rsplit_once("__").map(|(_, c)| c.to_string())
    };
    let given: Vec<Option<String>> = sources.iter().map(|s| configuration_of(s)).collect();
    let mut out = Vec::with_capacity(sources.len() + 1);
    for (source, configuration) in sources.iter().zip(&given) {
        let previous = configuration.as_ref().and_then(|c| {
            plans
                .resolve(c)
                .ok()
                .map(|config| (c, config.previous_stage))
        });
        if let Some((configuration, Some(previous))) = previous {
            if !given.contains(&Some(previous.clone())) {
                let sibling =
                    previous_stage_folder(source, configuration, &previous).map_err(|what| {
                        PredictError::NnUnet {
                            path: source.clone(),
                            what,
                        }
                    })?;
                out.push(sibling);
            }
        }
        out.push(source.clone());
    }
    Ok(out)
}

/// `(fold, kind, file)` of every `fold_<k>/checkpoint_{final,best}.pth` of `source`, by fold.
fn checkpoints_of(source: &Path) -> Result<Vec<(String, CheckpointKind, PathBuf)>, PredictError> {
    let entries = std::fs::read_dir(source).map_err(io_err(source, "list"))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(source, "list"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(fold) = fold_of_folder(&name) else {
            continue;
        };
        for kind in [CheckpointKind::Final, CheckpointKind::Best] {
            let file = entry.path().join(format!("{}.pth", kind.stem()));
            if file.is_file() {
                found.push((fold.to_string(), kind, file));
            }
        }
    }
    found.sort_by(|a, b| (&a.0, a.1.stem()).cmp(&(&b.0, b.1.stem())));
    if found.is_empty() {
        return Err(PredictError::NnUnet {
            path: source.to_path_buf(),
            what: "no fold_<k>/checkpoint_final.pth or checkpoint_best.pth".into(),
        });
    }
    Ok(found)
}
