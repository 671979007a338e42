//! Choosing the best configuration, ensemble and postprocessing from cross-validation
//! (nnU-Net: `evaluation/find_best_configuration.py`, `postprocessing/remove_connected_components.py`).
//!
//! Layout read and written under `<work>/<dataset>/results/` (design.md):
//! - reads `<config>/fold_<k>/validation/` (masks, `.npz` probabilities and `.props.toml`);
//! - writes `<config>/crossval/` (every fold's validation files merged, plus `summary.json`),
//!   `ensembles/<a>__<b>/` (averaged probabilities of two configurations, plus `summary.json`)
//!   and `best.toml` (the choice, its postprocessing and the commands to predict with it).
//!
//! The choice is nnU-Net's: the highest foreground-mean Dice wins, ties go to the first
//! candidate, single configurations are listed before ensembles. Postprocessing is then decided
//! on the winner's cross-validation predictions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use autoseg_planner::{WorkLayout, SUMMARY_JSON};
use autoseg_preprocessing::{read_label_map, write_atomic, DatasetJson};
use ndarray::Axis;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{
    choose_best, determine_postprocessing, ensemble_folders, ensemble_pairs, evaluate_folder,
    settings_from_dataset_json, Candidate, CaseInput, EvaluationError, FolderError,
    PostprocessingPlan, SurfaceSettings, DEFAULT_NSD_TOLERANCE_MM,
};

/// Version of the `best.toml` layout written by this build.
pub const BEST_SCHEMA_VERSION: u32 = 1;

/// Why the best configuration could not be determined.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FindBestError {
    /// No configuration has a validation folder for every requested fold.
    #[error("{}: no configuration has finished validation for folds {folds:?}; train (and validate) first", results.display())]
    NoCandidates {
        /// The results folder searched.
        results: PathBuf,
        /// The folds required.
        folds: Vec<String>,
    },
    /// Reading, merging, ensembling or evaluating predictions failed.
    #[error(transparent)]
    Folder(#[from] FolderError),
    /// Choosing or postprocessing failed.
    #[error(transparent)]
    Evaluation(#[from] EvaluationError),
    /// `results/best.toml` cannot be used.
    #[error("{}: not a usable best.toml", path.display())]
    BestToml {
        /// The file.
        path: PathBuf,
        /// The parser's error, naming the key.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A file could not be read, copied or written.
    #[error("{}: {action} failed", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// What to search: the dataset's work folder, its references, and which runs count.
#[derive(Debug, Clone, Copy)]
pub struct FindBestJob<'a> {
    /// The dataset's work folder.
    pub layout: &'a WorkLayout,
    /// The reference label maps (`labelsTr`).
    pub labels_dir: &'a Path,
    /// The dataset description (labels, regions, ignore label, file ending).
    pub dataset: &'a DatasetJson,
    /// Configurations to consider, in order (those without complete validation are skipped).
    pub configurations: &'a [String],
    /// Folds whose validation must all exist (e.g. `["0", "1", "2", "3", "4"]`).
    pub folds: &'a [String],
    /// Whether to try every pair of configurations as an ensemble.
    pub ensembles: bool,
}

/// One evaluated candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredCandidate {
    /// `2d`, `3d_fullres`, or `2d__3d_fullres` for an ensemble.
    pub name: String,
    /// The configurations it averages (one for a single model).
    pub members: Vec<String>,
    /// Cross-validation foreground-mean Dice.
    pub foreground_dice: f64,
    /// Folder of its merged cross-validation predictions.
    pub predictions: PathBuf,
}

/// The outcome of [`find_best`].
#[derive(Debug, Clone, PartialEq)]
pub struct BestOutcome {
    /// Every candidate in the order they were considered.
    pub candidates: Vec<ScoredCandidate>,
    /// Index of the winner in `candidates`.
    pub best: usize,
    /// The postprocessing decided on the winner's predictions.
    pub postprocessing: PostprocessingPlan,
    /// Foreground Dice of the winner after postprocessing.
    pub dice_after_postprocessing: f64,
    /// `results/best.toml`.
    pub best_toml: PathBuf,
}

/// Evaluates every configuration's cross-validation and (optionally) every pair ensemble,
/// picks the best, decides its postprocessing and writes `results/best.toml`.
///
/// # Errors
/// [`FindBestError::NoCandidates`] when nothing finished validation; reading, evaluation and
/// write failures name their file.
pub fn find_best(job: &FindBestJob<'_>) -> Result<BestOutcome, FindBestError> {
    let results = job.layout.results();
    let settings = settings_from_dataset_json(
        job.dataset,
        Some(SurfaceSettings {
            nsd_tolerance_mm: DEFAULT_NSD_TOLERANCE_MM,
        }),
    );
    let ending = job.dataset.file_ending.as_str();
    let mut candidates = Vec::new();
    for config in job.configurations {
        let Some(merged) = merge_crossval(job.layout, config, job.folds)? else {
            tracing::info!(configuration = %config, "skipped: validation missing for some fold");
            continue;
        };
        let summary = evaluate_folder(&merged, job.labels_dir, &settings, ending)?;
        summary.write(&merged.join(SUMMARY_JSON))?;
        candidates.push(ScoredCandidate {
            name: config.clone(),
            members: vec![config.clone()],
            foreground_dice: summary.foreground_dice(),
            predictions: merged,
        });
    }
    if candidates.is_empty() {
        return Err(FindBestError::NoCandidates {
            results,
            folds: job.folds.to_vec(),
        });
    }
    if job.ensembles {
        let singles = candidates.clone();
        for (a, b) in ensemble_pairs(singles.len()) {
            let name = format!("{}__{}", singles[a].name, singles[b].name);
            let out = job.layout.ensemble(&name);
            ensemble_folders(
                &[
                    singles[a].predictions.clone(),
                    singles[b].predictions.clone(),
                ],
                &out,
                None,
            )?;
            let summary = evaluate_folder(&out, job.labels_dir, &settings, ending)?;
            summary.write(&out.join(SUMMARY_JSON))?;
            candidates.push(ScoredCandidate {
                name,
                members: vec![singles[a].name.clone(), singles[b].name.clone()],
                foreground_dice: summary.foreground_dice(),
                predictions: out,
            });
        }
    }
    let scores: Vec<Candidate> = candidates
        .iter()
        .map(|c| Candidate {
            name: c.name.clone(),
            foreground_dice: c.foreground_dice,
        })
        .collect();
    let best = choose_best(&scores)?;
    let (postprocessing, dice_after_postprocessing) =
        decide_postprocessing(&candidates[best].predictions, job, &settings)?;
    let best_toml = job.layout.best();
    let text = best_toml_text(
        job,
        &candidates,
        best,
        &postprocessing,
        dice_after_postprocessing,
    )?;
    write_atomic(&best_toml, text.as_bytes()).map_err(|source| FindBestError::Io {
        path: best_toml.clone(),
        action: "write",
        source,
    })?;
    Ok(BestOutcome {
        candidates,
        best,
        postprocessing,
        dice_after_postprocessing,
        best_toml,
    })
}

/// Merges `fold_<k>/validation/` of every fold into `<config>/crossval/` (hard links where the
/// filesystem allows, else copies); `None` when some fold has no validation yet.
fn merge_crossval(
    layout: &WorkLayout,
    config: &str,
    folds: &[String],
) -> Result<Option<PathBuf>, FindBestError> {
    let sources: Vec<PathBuf> = folds.iter().map(|f| layout.validation(config, f)).collect();
    if sources.iter().any(|s| !s.join(SUMMARY_JSON).is_file()) {
        return Ok(None);
    }
    let merged = layout.crossval(config);
    std::fs::create_dir_all(&merged).map_err(|source| FindBestError::Io {
        path: merged.clone(),
        action: "create folder",
        source,
    })?;
    for source_dir in &sources {
        let entries = std::fs::read_dir(source_dir).map_err(|source| FindBestError::Io {
            path: source_dir.clone(),
            action: "list",
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| FindBestError::Io {
                path: source_dir.clone(),
                action: "list",
                source,
            })?;
            let name = entry.file_name();
            if name == SUMMARY_JSON || !entry.path().is_file() {
                continue;
            }
            link_or_copy(&entry.path(), &merged.join(&name))?;
        }
    }
    Ok(Some(merged))
}

fn link_or_copy(from: &Path, to: &Path) -> Result<(), FindBestError> {
    let _ = std::fs::remove_file(to);
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|source| FindBestError::Io {
            path: to.to_path_buf(),
            action: "copy",
            source,
        })
}

/// nnU-Net's postprocessing decision on the winner's merged predictions.
fn decide_postprocessing(
    predictions: &Path,
    job: &FindBestJob<'_>,
    settings: &crate::EvaluationSettings,
) -> Result<(PostprocessingPlan, f64), FindBestError> {
    let pairs = crate::match_cases(predictions, job.labels_dir, &job.dataset.file_ending)?;
    let mut maps = Vec::with_capacity(pairs.len());
    for pair in &pairs {
        let pred = read_label_map(&pair.prediction).map_err(FolderError::from)?;
        let reference = read_label_map(&pair.reference).map_err(FolderError::from)?;
        maps.push((pair, pred, reference));
    }
    let inputs: Vec<CaseInput<'_, u16>> = maps
        .iter()
        .map(|(pair, pred, reference)| CaseInput {
            prediction_file: file_name(&pair.prediction),
            reference_file: file_name(&pair.reference),
            prediction: pred.data.index_axis(Axis(0), 0),
            reference: reference.data.index_axis(Axis(0), 0),
            spacing: reference.geometry.spacing().0,
        })
        .collect();
    let decision = determine_postprocessing(&inputs, settings)?;
    Ok((decision.plan, decision.after.foreground_dice()))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `results/best.toml` as [`read_best`] reads it back for `predict`: the choice and its
/// postprocessing. The other keys find-best writes (evidence, commands) are for people.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct BestChoice {
    /// The chosen configuration, when a single one was chosen.
    #[serde(default)]
    pub configuration: Option<String>,
    /// The configurations whose probabilities are averaged (the winner of find-best: one
    /// configuration, or an ensemble of several; defaults to `configuration`).
    #[serde(default)]
    pub ensemble: Vec<String>,
    /// The chosen postprocessing (no steps: none).
    #[serde(default = "no_postprocessing")]
    pub postprocessing: PostprocessingPlan,
}

fn no_postprocessing() -> PostprocessingPlan {
    PostprocessingPlan { steps: Vec::new() }
}

/// Reads `results/best.toml` (a [`autoseg_planner::WorkLayout::best`]); `None` when it does
/// not exist. Keys other than `configuration`, `ensemble` and `[postprocessing]` are ignored.
///
/// # Errors
/// [`FindBestError::Io`] for an unreadable file; [`FindBestError::BestToml`] for invalid TOML
/// or values of the wrong type.
pub fn read_best(path: &Path) -> Result<Option<BestChoice>, FindBestError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(FindBestError::Io {
                path: path.to_path_buf(),
                action: "read",
                source,
            })
        }
    };
    let mut choice: BestChoice =
        toml::from_str(&text).map_err(|source| FindBestError::BestToml {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
    if choice.ensemble.is_empty() {
        choice.ensemble = choice.configuration.iter().cloned().collect();
    }
    Ok(Some(choice))
}

/// The layout of `results/best.toml`: what `predict` reads (`configuration`,
/// `[postprocessing]`) plus the evidence and the commands to run.
#[derive(Serialize)]
struct BestToml<'a> {
    schema_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    configuration: Option<&'a str>,
    ensemble: &'a [String],
    folds: &'a [String],
    foreground_dice: f64,
    foreground_dice_after_postprocessing: f64,
    commands: Vec<String>,
    candidates: BTreeMap<&'a str, f64>,
    postprocessing: &'a PostprocessingPlan,
}

/// The text of `results/best.toml`.
fn best_toml_text(
    job: &FindBestJob<'_>,
    candidates: &[ScoredCandidate],
    best: usize,
    postprocessing: &PostprocessingPlan,
    dice_after: f64,
) -> Result<String, FindBestError> {
    let winner = &candidates[best];
    let model = job.layout.root().display().to_string();
    let doc = BestToml {
        schema_version: BEST_SCHEMA_VERSION,
        configuration: match winner.members.as_slice() {
            [single] => Some(single.as_str()),
            _ => None,
        },
        ensemble: &winner.members,
        folds: job.folds,
        foreground_dice: winner.foreground_dice,
        foreground_dice_after_postprocessing: dice_after,
        commands: predict_commands(&winner.members, &model, &job.folds.join(",")),
        candidates: candidates
            .iter()
            .map(|c| (c.name.as_str(), c.foreground_dice))
            .collect(),
        postprocessing,
    };
    let body = toml::to_string(&doc).map_err(|e| EvaluationError::Toml(e.to_string()))?;
    Ok(format!("# Written by `autoseg find-best`: the best cross-validation result and how to use it.\n{body}"))
}

/// Writes `results/best.toml` choosing `configuration` (with `folds` and `postprocessing`)
/// without a cross-validation behind it: an imported model's only configuration, so that
/// `predict -m MODEL` needs no `-c`. The Dice fields are NaN: nothing was measured here.
///
/// # Errors
/// [`FindBestError::Io`] when the file cannot be written; [`EvaluationError::Toml`] (wrapped)
/// when it cannot be serialised.
pub fn write_single_choice(
    path: &Path,
    configuration: &str,
    folds: &[String],
    model: &Path,
    postprocessing: &PostprocessingPlan,
) -> Result<(), FindBestError> {
    let members = [configuration.to_string()];
    let doc = BestToml {
        schema_version: BEST_SCHEMA_VERSION,
        configuration: Some(configuration),
        ensemble: &members,
        folds,
        foreground_dice: f64::NAN,
        foreground_dice_after_postprocessing: f64::NAN,
        commands: predict_commands(&members, &model.display().to_string(), &folds.join(",")),
        candidates: BTreeMap::new(),
        postprocessing,
    };
    let body = toml::to_string(&doc).map_err(|e| EvaluationError::Toml(e.to_string()))?;
    let text =
        format!("# Written by `autoseg import-nnunet`: the model's one configuration.\n{body}");
    write_atomic(path, text.as_bytes()).map_err(|source| FindBestError::Io {
        path: path.to_path_buf(),
        action: "write",
        source,
    })
}

fn predict_commands(members: &[String], model: &str, folds: &str) -> Vec<String> {
    if let [config] = members {
        return vec![format!("autoseg predict -i INPUT_FOLDER -o OUTPUT_FOLDER -m {model} -c {config} --folds {folds}")];
    }
    let mut commands: Vec<String> = members
        .iter()
        .map(|c| {
            format!(
                "autoseg predict -i INPUT_FOLDER -o OUTPUT_FOLDER_{c} -m {model} -c {c} --folds {folds} --save-probabilities"
            )
        })
        .collect();
    let inputs: Vec<String> = members
        .iter()
        .map(|c| format!("OUTPUT_FOLDER_{c}"))
        .collect();
    commands.push(format!(
        "autoseg ensemble -i {} -o OUTPUT_FOLDER",
        inputs.join(" ")
    ));
    commands
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_for_a_single_configuration_and_an_ensemble() {
        let single = predict_commands(&["3d_fullres".into()], "w/D", "0,1");
        assert_eq!(
            single,
            vec![
                "autoseg predict -i INPUT_FOLDER -o OUTPUT_FOLDER -m w/D -c 3d_fullres --folds 0,1"
            ]
        );
        let pair = predict_commands(&["2d".into(), "3d_fullres".into()], "w/D", "0");
        assert_eq!(pair.len(), 3);
        assert!(pair[0].ends_with("-c 2d --folds 0 --save-probabilities"));
        assert_eq!(
            pair[2],
            "autoseg ensemble -i OUTPUT_FOLDER_2d OUTPUT_FOLDER_3d_fullres -o OUTPUT_FOLDER"
        );
    }

    #[test]
    fn best_toml_nests_postprocessing_steps_and_reads_back() {
        let dataset: DatasetJson = autoseg_preprocessing::parse_dataset_json(
            br#"{"channel_names": {"0": "MR"}, "labels": {"background": 0, "a": 1, "b": 2},
                "numTraining": 2, "file_ending": ".nii.gz"}"#,
            Path::new("dataset.json"),
        )
        .unwrap();
        let configurations = ["2d".to_string()];
        let folds = ["0".to_string()];
        let job = FindBestJob {
            layout: &WorkLayout::new("w/D"),
            labels_dir: Path::new("labelsTr"),
            dataset: &dataset,
            configurations: &configurations,
            folds: &folds,
            ensembles: false,
        };
        let candidate = ScoredCandidate {
            name: "2d".into(),
            members: vec!["2d".into()],
            foreground_dice: 0.75,
            predictions: PathBuf::from("p"),
        };
        let plan = PostprocessingPlan {
            steps: vec![crate::PostprocessingStep {
                keep_largest_component_of: vec![1, 2],
            }],
        };
        let text = best_toml_text(&job, &[candidate], 0, &plan, f64::NAN).unwrap();
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table["configuration"].as_str(), Some("2d"));
        let back: PostprocessingPlan = table["postprocessing"].clone().try_into().unwrap();
        assert_eq!(back, plan);
        assert!(table["foreground_dice_after_postprocessing"]
            .as_float()
            .unwrap()
            .is_nan());
        let empty: PostprocessingPlan = toml::Table::new().try_into().unwrap();
        assert!(empty.steps.is_empty());
    }
}
