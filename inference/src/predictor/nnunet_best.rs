//! What `nnUNetv2_find_best_configuration` chose for a dataset:
//! `<nnUNet_results>/<Dataset>/inference_information.json` names the best model or the
//! ensemble of two (`selected_model_or_models`: trainer, plans and configuration of each), the
//! folds, and the postprocessing file of that model or ensemble. nnU-Net prints commands from
//! it (`inference_instructions.txt`: predict each member, `nnUNetv2_ensemble`,
//! `nnUNetv2_apply_postprocessing`); `autoseg predict -m <nnUNet_results>/<Dataset>` runs them
//! as one command.
//!
//! The file records absolute paths of the machine that wrote it: the postprocessing file is
//! rebased onto the folder the JSON sits in (its last three components: `<model folder or
//! ensembles>/<crossval or ensemble folder>/postprocessing.pkl`).

use std::path::{Component, Path, PathBuf};

use super::error::{io_err, PredictError};

/// The file `nnUNetv2_find_best_configuration` writes into the dataset's results folder.
pub const INFERENCE_INFORMATION: &str = "inference_information.json";

/// The best model or ensemble of an nnU-Net results folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NnUnetBestChoice {
    /// The model folders (`<Dataset>/<Trainer>__<Plans>__<configuration>`): one, or an
    /// ensemble's members in the recorded order.
    pub models: Vec<PathBuf>,
    /// The folds the choice was made with (`"0"`..`"4"` or `"all"`).
    pub folds: Vec<String>,
    /// The postprocessing file chosen for that model or ensemble, rebased onto the results
    /// folder; `None` when it is not there.
    pub postprocessing_file: Option<PathBuf>,
}

/// Whether `folder` is an nnU-Net results folder of a dataset with a best choice (it holds
/// `inference_information.json`).
pub fn is_nnunet_results_folder(folder: &Path) -> bool {
    folder.join(INFERENCE_INFORMATION).is_file()
}

/// Reads the best choice recorded in `<dataset>/inference_information.json`.
///
/// # Errors
/// [`PredictError::Io`] when the file cannot be read; [`PredictError::NnUnet`] naming it when it
/// is not JSON, lacks a key, or names a model folder that is not beside it.
pub fn read_nnunet_best_choice(dataset: &Path) -> Result<NnUnetBestChoice, PredictError> {
    let path = dataset.join(INFERENCE_INFORMATION);
    let fault = |what: String| PredictError::NnUnet {
        path: path.clone(),
        what,
    };
    let text = std::fs::read_to_string(&path).map_err(io_err(&path, "read"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fault(format!("not JSON: {e}")))?;
    let best = &json["best_model_or_ensemble"];
    let selected = best["selected_model_or_models"]
        .as_array()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| fault("no best_model_or_ensemble.selected_model_or_models".into()))?;
    let mut models = Vec::with_capacity(selected.len());
    for model in selected {
        let part = |key: &str| {
            model[key]
                .as_str()
                .filter(|s| is_plain_name(s))
                .ok_or_else(|| fault(format!("a selected model has no valid {key:?}")))
        };
        let name = format!(
            "{}__{}__{}",
            part("trainer")?,
            part("plans_identifier")?,
            part("configuration")?
        );
        let folder = dataset.join(&name);
        if !folder.join("plans.json").is_file() {
            return Err(fault(format!(
                "it chose {name}, but {} has no plans.json",
                folder.display()
            )));
        }
        models.push(folder);
    }
    let folds = json["folds"]
        .as_array()
        .filter(|f| !f.is_empty())
        .ok_or_else(|| fault("no folds".into()))?
        .iter()
        .map(|fold| match fold {
            serde_json::Value::Number(n) if n.is_u64() => Ok(n.to_string()),
            serde_json::Value::String(s) if s == "all" => Ok(s.clone()),
            other => Err(fault(format!("fold {other} is not a fold"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let postprocessing_file = best["postprocessing_file"]
        .as_str()
        .and_then(|recorded| rebased(dataset, Path::new(recorded)));
    if postprocessing_file.is_none() {
        tracing::warn!(
            file = %path.display(),
            recorded = ?best["postprocessing_file"],
            "the postprocessing file it names is not in this folder: no postprocessing"
        );
    }
    Ok(NnUnetBestChoice {
        models,
        folds,
        postprocessing_file,
    })
}

/// `recorded`'s last three components under `dataset`, when they are plain names and the file
/// is there.
fn rebased(dataset: &Path, recorded: &Path) -> Option<PathBuf> {
    let tail: Vec<&std::ffi::OsStr> = recorded
        .components()
        .rev()
        .take(3)
        .map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect::<Option<_>>()?;
    if tail.len() != 3 {
        return None;
    }
    let file = tail
        .iter()
        .rev()
        .fold(dataset.to_path_buf(), |p, c| p.join(c));
    file.is_file().then_some(file)
}

/// A single path component: not empty, no separator, not `.` or `..`.
pub(super) fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn info(selected: &str, pp: &str) -> String {
        format!(
            r#"{{"folds": [0, 1, 2, 3, 4], "dataset_name_or_id": "1",
                "best_model_or_ensemble": {{"selected_model_or_models": {selected},
                "postprocessing_file": "{pp}", "some_plans_file": "x"}}}}"#
        )
    }

    #[test]
    fn an_ensemble_with_its_postprocessing_rebased() {
        let tmp = tempfile::tempdir().unwrap();
        let ds = tmp.path().join("Dataset001_X");
        for c in ["2d", "3d_fullres"] {
            write(
                &ds.join(format!("nnUNetTrainer__nnUNetPlans__{c}/plans.json")),
                "{}",
            );
        }
        let ensemble = "ensembles/ensemble___nnUNetTrainer__nnUNetPlans__2d___nnUNetTrainer__nnUNetPlans__3d_fullres___0_1_2_3_4";
        write(&ds.join(ensemble).join("postprocessing.pkl"), "");
        let selected = r#"[{"configuration": "2d", "trainer": "nnUNetTrainer", "plans_identifier": "nnUNetPlans"},
            {"configuration": "3d_fullres", "trainer": "nnUNetTrainer", "plans_identifier": "nnUNetPlans"}]"#;
        let pp =
            format!("/elsewhere/nnUNet_results/Dataset001_Renamed/{ensemble}/postprocessing.pkl");
        write(&ds.join(INFERENCE_INFORMATION), &info(selected, &pp));
        assert!(is_nnunet_results_folder(&ds));
        let choice = read_nnunet_best_choice(&ds).unwrap();
        assert_eq!(
            choice.models,
            vec![
                ds.join("nnUNetTrainer__nnUNetPlans__2d"),
                ds.join("nnUNetTrainer__nnUNetPlans__3d_fullres")
            ]
        );
        assert_eq!(choice.folds, ["0", "1", "2", "3", "4"]);
        assert_eq!(
            choice.postprocessing_file,
            Some(ds.join(ensemble).join("postprocessing.pkl"))
        );
    }

    #[test]
    fn faults_name_the_file_and_what_is_wrong() {
        let tmp = tempfile::tempdir().unwrap();
        let ds = tmp.path().join("Dataset001_X");
        let err = |text: &str| {
            write(&ds.join(INFERENCE_INFORMATION), text);
            read_nnunet_best_choice(&ds).unwrap_err().to_string()
        };
        assert!(err("{").contains("not JSON"));
        assert!(err(&info("[]", "")).contains("selected_model_or_models"));
        let missing = r#"[{"configuration": "2d", "trainer": "T", "plans_identifier": "P"}]"#;
        let e = err(&info(missing, ""));
        assert!(
            e.contains("it chose T__P__2d") && e.contains(INFERENCE_INFORMATION),
            "{e}"
        );
        let escape = r#"[{"configuration": "../2d", "trainer": "T", "plans_identifier": "P"}]"#;
        assert!(err(&info(escape, "")).contains("no valid \"configuration\""));
        // A missing postprocessing file is no error: none is applied.
        write(&ds.join("T__P__2d/plans.json"), "{}");
        write(
            &ds.join(INFERENCE_INFORMATION),
            &info(missing, "/a/b/c/postprocessing.pkl"),
        );
        assert_eq!(
            read_nnunet_best_choice(&ds).unwrap().postprocessing_file,
            None
        );
    }
}
