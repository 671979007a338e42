//! Which postprocessing nnU-Net chose for a model folder: `nnUNetv2_find_best_configuration`
//! writes `<folder>/crossval_results_folds_<folds>/postprocessing.pkl` and, beside the model
//! folders, `inference_information.json` naming the best model and its postprocessing file.
//! nnU-Net applies it in a separate step (`nnUNetv2_apply_postprocessing`); autoseg's `predict`
//! applies it to the masks it writes, as it does with its own `best.toml`.
//!
//! The file used: the one `inference_information.json` names when its best model is this
//! folder; else the one of `crossval_results_folds_<the folds predicted with>`; else the only
//! one there is. Several and none matching: none (logged).

use std::path::{Path, PathBuf};

use autoseg_evaluation::{EvaluationError, PostprocessingPlan};

use super::error::{io_err, PredictError};
use super::nnunet_best::{is_nnunet_results_folder, read_nnunet_best_choice};

const PICKLE: &str = "postprocessing.pkl";
const CROSSVAL: &str = "crossval_results_folds_";

/// The postprocessing file nnU-Net chose for `folder` predicted with `folds`, read (nothing in
/// it is run), or `None` when there is none.
///
/// # Errors
/// As [`read_nnunet_postprocessing`].
pub fn nnunet_postprocessing(
    folder: &Path,
    folds: &[String],
) -> Result<Option<(PathBuf, PostprocessingPlan)>, PredictError> {
    let Some(path) = chosen_file(folder, folds)? else {
        return Ok(None);
    };
    let plan = read_nnunet_postprocessing(&path)?;
    Ok(Some((path, plan)))
}

/// Reads nnU-Net's `postprocessing.pkl` at `path` (nothing in it is run).
///
/// # Errors
/// [`PredictError::Io`] when it cannot be read; [`PredictError::NnUnet`] for a file autoseg
/// cannot apply (a function other than nnU-Net's, named).
pub fn read_nnunet_postprocessing(path: &Path) -> Result<PostprocessingPlan, PredictError> {
    let bytes = std::fs::read(path).map_err(io_err(path, "read"))?;
    PostprocessingPlan::from_nnunet_pickle(&bytes, path).map_err(|e| match e {
        EvaluationError::NnUnetPostprocessing { path, what } => PredictError::NnUnet { path, what },
        other => PredictError::NnUnet {
            path: path.to_path_buf(),
            what: other.to_string(),
        },
    })
}

fn chosen_file(folder: &Path, folds: &[String]) -> Result<Option<PathBuf>, PredictError> {
    if let Some(named) = named_by_inference_information(folder) {
        return Ok(Some(named));
    }
    let exact = folder
        .join(format!("{CROSSVAL}{}", folds.join("_")))
        .join(PICKLE);
    if exact.is_file() {
        return Ok(Some(exact));
    }
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(folder) {
        for entry in entries {
            let entry = entry.map_err(io_err(folder, "list"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let file = entry.path().join(PICKLE);
            if name.starts_with(CROSSVAL) && file.is_file() {
                found.push(file);
            }
        }
    }
    found.sort();
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        several => {
            tracing::warn!(
                files = ?several,
                "several nnU-Net postprocessing files and none for the folds predicted with: none applied"
            );
            Ok(None)
        }
    }
}

/// The postprocessing file `<folder>/../inference_information.json` chose when its best model is
/// `folder` alone.
fn named_by_inference_information(folder: &Path) -> Option<PathBuf> {
    let dataset = folder.parent()?;
    if !is_nnunet_results_folder(dataset) {
        return None;
    }
    let choice = read_nnunet_best_choice(dataset)
        .map_err(|e| tracing::warn!("ignored: {e}"))
        .ok()?;
    match choice.models.as_slice() {
        [model] if model.file_name() == folder.file_name() => choice.postprocessing_file,
        [_] => None,
        _ => {
            tracing::info!(
                "nnU-Net's best is an ensemble; its postprocessing is not this folder's"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn the_file_for_the_folds_then_the_only_one_then_inference_information() {
        let tmp = tempfile::tempdir().unwrap();
        let folder = tmp.path().join("nnUNetTrainer__nnUNetPlans__3d_fullres");
        let folds = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(chosen_file(&folder, &folds(&["0"])).unwrap(), None);
        let all = folder.join("crossval_results_folds_0_1_2_3_4/postprocessing.pkl");
        write(&all, b"");
        // The only one, whatever the folds.
        assert_eq!(
            chosen_file(&folder, &folds(&["0"])).unwrap(),
            Some(all.clone())
        );
        let zero = folder.join("crossval_results_folds_0/postprocessing.pkl");
        write(&zero, b"");
        assert_eq!(
            chosen_file(&folder, &folds(&["0"])).unwrap(),
            Some(zero.clone())
        );
        assert_eq!(
            chosen_file(&folder, &folds(&["0", "1", "2", "3", "4"])).unwrap(),
            Some(all.clone())
        );
        // Several, none for these folds.
        assert_eq!(chosen_file(&folder, &folds(&["1"])).unwrap(), None);
        // inference_information.json names the file of the best model, recorded elsewhere.
        let info = serde_json::json!({"best_model_or_ensemble": {
            "selected_model_or_models": [{"configuration": "3d_fullres", "trainer": "nnUNetTrainer",
                "plans_identifier": "nnUNetPlans"}],
            "postprocessing_file": "/home/them/nnUNet_results/Dataset1_X/nnUNetTrainer__nnUNetPlans__3d_fullres/crossval_results_folds_0/postprocessing.pkl"},
            "folds": [0]});
        write(&folder.join("plans.json"), b"{}");
        write(
            &tmp.path().join("inference_information.json"),
            info.to_string().as_bytes(),
        );
        assert_eq!(chosen_file(&folder, &folds(&["1"])).unwrap(), Some(zero));
    }
}
