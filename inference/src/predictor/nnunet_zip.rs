//! The zip `nnUNetv2_export_model_to_zip` writes (`<Dataset>/<Trainer>__<Plans>__<config>/…` for
//! one or more configurations), unpacked into a folder [`Predictor::load_nnunet`] reads: only a
//! model folder's `plans.json`, `dataset.json` and fold checkpoints are taken, under names this
//! code builds (an entry cannot write outside the folder), each size checked before reading.
//!
//! [`Predictor::load_nnunet`]: super::Predictor::load_nnunet

use std::path::{Path, PathBuf};

use super::error::PredictError;
use super::nnunet_best::{is_plain_name, INFERENCE_INFORMATION};
use super::zip_entries::{extract_entry, open_zip, Zip};

/// The configurations of the model folders in the nnU-Net export `zip`, sorted.
///
/// # Errors
/// As [`unpack_nnunet_zip`], for a file that cannot be opened or is not a zip.
pub fn nnunet_zip_configurations(zip: &Path) -> Result<Vec<String>, PredictError> {
    let archive = open_zip(zip)?;
    let mut names: Vec<String> = model_folders(&archive)
        .iter()
        .map(|f| configuration_of(f).to_string())
        .collect();
    names.sort();
    Ok(names)
}

/// The `<Dataset>/<Trainer>__<Plans>__<config>` folders holding a `plans.json`, sorted.
fn model_folders(archive: &Zip) -> Vec<String> {
    let mut folders: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.strip_suffix("/plans.json"))
        .map(str::to_string)
        .collect();
    folders.sort();
    folders
}

/// The configuration a model folder is named after (`…__<configuration>`).
fn configuration_of(folder: &str) -> &str {
    folder.rsplit("__").next().unwrap_or(folder)
}

/// Unpacks the model folder of `configuration` (optional when the zip holds one) from the
/// nnU-Net export `zip` into `into/<Trainer>__<Plans>__<configuration>/`, beside the zip's
/// other configurations of the same trainer and plans (a cascade's first stage), and returns
/// that folder.
///
/// # Errors
/// [`PredictError::NnUnet`] naming the zip when it is not an nnU-Net export, holds no model
/// folder of `configuration` (the ones it has are listed), or holds several and none was
/// chosen; [`PredictError::Io`] when a file cannot be read or written.
pub fn unpack_nnunet_zip(
    zip: &Path,
    configuration: Option<&str>,
    into: &Path,
) -> Result<PathBuf, PredictError> {
    let fault = |what: String| PredictError::NnUnet {
        path: zip.to_path_buf(),
        what,
    };
    let mut archive = open_zip(zip)?;
    let folders = model_folders(&archive);
    let names = || {
        folders
            .iter()
            .map(|f| configuration_of(f))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen: Vec<&String> = folders
        .iter()
        .filter(|f| configuration.is_none_or(|c| configuration_of(f) == c))
        .collect();
    let folder =
        match (chosen.as_slice(), configuration) {
            ([one], _) => (*one).clone(),
            ([], _) if folders.is_empty() => return Err(fault(
                "no <Trainer>__<Plans>__<configuration>/plans.json: not an nnU-Net model export"
                    .into(),
            )),
            ([], Some(c)) => {
                return Err(fault(format!(
                    "no model folder of {c}; it holds {}",
                    names()
                )))
            }
            (_, _) => {
                return Err(fault(format!(
                    "it holds several configurations ({}); choose one with -c",
                    names()
                )))
            }
        };
    // The chosen folder, and the folders of its other configurations (a cascade's first
    // stage among them), each under its own name as in nnU-Net's results folder.
    let stem = folder.rsplit_once("__").map_or(folder.as_str(), |(s, _)| s);
    let mut chosen_dir = None;
    for other in folders
        .iter()
        .filter(|f| f.rsplit_once("__").is_some_and(|(s, _)| s == stem))
    {
        let base = other.rsplit('/').next().unwrap_or(other);
        if base.is_empty() || base == "." || base == ".." {
            return Err(fault(format!(
                "model folder name {other:?} is not a folder name"
            )));
        }
        let dir = into.join(base);
        extract_folder(&mut archive, zip, other, &dir)?;
        if *other == folder {
            chosen_dir = Some(dir);
        }
    }
    Ok(chosen_dir.unwrap_or_else(|| into.to_path_buf()))
}

/// Unpacks an nnU-Net export `zip` holding `<Dataset>/inference_information.json` (exported
/// after `nnUNetv2_find_best_configuration` ran) as a results folder under `into/<Dataset>/`:
/// every model folder, the ensembles' postprocessing files and that JSON. Returns the folder,
/// or `None` when the zip holds no such file.
///
/// # Errors
/// As [`unpack_nnunet_zip`].
pub fn unpack_nnunet_results_zip(zip: &Path, into: &Path) -> Result<Option<PathBuf>, PredictError> {
    let mut archive = open_zip(zip)?;
    let info = format!("/{INFERENCE_INFORMATION}");
    let Some(dataset) = archive
        .file_names()
        .filter_map(|n| n.strip_suffix(info.as_str()))
        .find(|d| is_plain_name(d))
        .map(str::to_string)
    else {
        return Ok(None);
    };
    let root = into.join(&dataset);
    let prefix = format!("{dataset}/");
    for folder in model_folders(&archive) {
        if let Some(base) = folder.strip_prefix(&prefix).filter(|b| is_plain_name(b)) {
            extract_folder(&mut archive, zip, &folder, &root.join(base))?;
        }
    }
    let ensembles: Vec<(String, PathBuf)> = archive
        .file_names()
        .filter_map(|name| {
            let rest = name.strip_prefix(&prefix)?.strip_prefix("ensembles/")?;
            let ensemble = rest.strip_suffix("/postprocessing.pkl")?;
            is_plain_name(ensemble).then(|| {
                let target = root
                    .join("ensembles")
                    .join(ensemble)
                    .join("postprocessing.pkl");
                (name.to_string(), target)
            })
        })
        .collect();
    for (name, target) in ensembles {
        extract_entry(&mut archive, zip, &name, &target)?;
    }
    extract_entry(
        &mut archive,
        zip,
        &format!("{prefix}{INFERENCE_INFORMATION}"),
        &root.join(INFERENCE_INFORMATION),
    )?;
    Ok(Some(root))
}

/// Extracts the model folder `folder` of `archive` into `dir`: its plans, dataset.json,
/// postprocessing files and fold checkpoints.
fn extract_folder(
    archive: &mut Zip,
    zip: &Path,
    folder: &str,
    dir: &Path,
) -> Result<(), PredictError> {
    let prefix = format!("{folder}/");
    let wanted: Vec<(String, PathBuf)> = archive
        .file_names()
        .filter_map(|name| {
            let rest = name.strip_prefix(&prefix)?;
            let target = match rest.split('/').collect::<Vec<_>>().as_slice() {
                ["plans.json" | "dataset.json"] => PathBuf::from(rest),
                [crossval, "postprocessing.pkl"]
                    if crossval
                        .strip_prefix("crossval_results_folds_")
                        .is_some_and(|f| f.split('_').all(is_fold_name)) =>
                {
                    Path::new(crossval).join("postprocessing.pkl")
                }
                [fold, checkpoint @ ("checkpoint_final.pth" | "checkpoint_best.pth")]
                    if autoseg_planner::fold_of_folder(fold).is_some_and(is_fold_name) =>
                {
                    Path::new(fold).join(checkpoint)
                }
                _ => return None,
            };
            Some((name.to_string(), target))
        })
        .collect();
    for (name, target) in wanted {
        extract_entry(archive, zip, &name, &dir.join(&target))?;
    }
    Ok(())
}

/// A fold folder's suffix nnU-Net writes: a number or `all`.
fn is_fold_name(fold: &str) -> bool {
    fold == "all" || (!fold.is_empty() && fold.bytes().all(|b| b.is_ascii_digit()))
}
