//! Folders of NIfTI files: evaluating a folder of predictions against a folder of references,
//! and ensembling prediction folders through their probability files.
//!
//! nnU-Net: `evaluation/evaluate_predictions.py::compute_metrics_on_folder` (the predictions
//! with the dataset's file ending, sorted by name, each matched to the reference of the same
//! name) and `ensembling/ensemble.py::ensemble_folders` (every folder must hold the same
//! `.npz` files; the masks take the first folder's properties).
//!
//! Cases run in parallel (rayon), each worker reading its own files, so memory holds only the
//! cases in flight. Label maps are evaluated as read (`u16`); the spacing of the surface
//! metrics is the reference's `(z, y, x)`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use autoseg_preprocessing::{
    read_label_map, write_label_map, DatasetJson, ImageError, ImageFormat, LabelMap, Shape3,
};
use ndarray::{ArrayView3, Axis};
use rayon::prelude::*;

use crate::classes::validate_classes;
use crate::npz::{
    probabilities_file, properties_file, read_probabilities, read_probabilities_shape, NpzError,
    ProbabilityProperties,
};
use crate::{
    apply_postprocessing, average_probabilities, evaluate_case, probabilities_to_segmentation,
    CaseInput, CaseMetrics, EvaluationError, EvaluationSettings, LabelValue, PostprocessingPlan,
    Summary, SurfaceSettings,
};

/// The normalized-surface-Dice tolerance `autoseg evaluate` uses: 1 mm for every class. There is
/// no universal choice (the Medical Segmentation Decathlon and Metrics Reloaded pick one per
/// structure); 1 mm is about one voxel of typical CT/MR and is the same for every dataset, so
/// summaries compare across runs.
pub const DEFAULT_NSD_TOLERANCE_MM: f64 = 1.0;

/// Memory one ensembling pass may hold for probability maps (all members of the cases in
/// flight, plus their mean); fewer cases run at once when the maps are large.
const ENSEMBLE_MEMORY_BUDGET_BYTES: u64 = 8 << 30;

/// gzip level of the masks `ensemble_folders` writes: label maps are mostly zeros, and level 1
/// compresses them nearly as well as 6, several times faster.
const MASK_GZIP_LEVEL: u32 = 1;

/// Why a folder could not be evaluated or ensembled. Every variant names the file or folder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FolderError {
    /// A folder could not be listed.
    #[error("{}: cannot list folder", dir.display())]
    ListDir {
        /// The folder.
        dir: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A folder has no file with the expected ending.
    #[error("{}: no {what} files ending in '{file_ending}'", dir.display())]
    NoFiles {
        /// The folder.
        dir: PathBuf,
        /// What was looked for ("prediction", "probability").
        what: &'static str,
        /// The ending looked for.
        file_ending: String,
    },
    /// A prediction has no reference of the same name.
    #[error("{}: no reference for this prediction (expected {})", prediction.display(), expected.display())]
    MissingReference {
        /// The prediction file.
        prediction: PathBuf,
        /// The reference path that does not exist.
        expected: PathBuf,
    },
    /// Prediction and reference differ in shape.
    #[error(
        "{}: shape {prediction_shape:?} differs from its reference {} with shape \
         {reference_shape:?} (axis order z, y, x)",
        prediction.display(), reference.display()
    )]
    ShapeMismatch {
        /// The prediction file.
        prediction: PathBuf,
        /// The reference file.
        reference: PathBuf,
        /// The prediction's shape.
        prediction_shape: [usize; 3],
        /// The reference's shape.
        reference_shape: [usize; 3],
    },
    /// An image file could not be read or written (the error names the file). Boxed, as are
    /// the other wrapped errors, to keep `FolderError` small.
    #[error(transparent)]
    Image(Box<ImageError>),
    /// A probability file or its sidecar could not be read (the error names the file).
    #[error(transparent)]
    Npz(Box<NpzError>),
    /// A case could not be evaluated or segmented.
    #[error("case {case}")]
    Case {
        /// The case (prediction file or case name).
        case: String,
        /// What went wrong.
        #[source]
        source: Box<EvaluationError>,
    },
    /// Evaluation settings are unusable (no classes, an empty region, a bad tolerance).
    #[error(transparent)]
    Settings(Box<EvaluationError>),
    /// Ensembling was asked for without any input folder.
    #[error("no input folders to ensemble")]
    NoInputs,
    /// A case's probability file is missing from one input folder.
    #[error(
        "{}: missing, but {} has this case; every folder must hold the same cases",
        missing.display(), present.display()
    )]
    MissingCase {
        /// The file that does not exist.
        missing: PathBuf,
        /// A file of the same case in another folder.
        present: PathBuf,
    },
    /// Two probability maps of one case differ in shape.
    #[error(
        "{}: probabilities of shape {found:?} differ from {} with shape {expected:?} (c, z, y, x)",
        file.display(), first.display()
    )]
    ProbabilityShape {
        /// The offending probability file.
        file: PathBuf,
        /// Its shape, `(c, z, y, x)`.
        found: Vec<usize>,
        /// The first folder's file of the same case.
        first: PathBuf,
        /// That file's shape.
        expected: Vec<usize>,
    },
    /// The probabilities do not have the grid shape their sidecar records.
    #[error(
        "{}: probabilities have grid {found:?} but {} records {expected:?} (z, y, x)",
        file.display(), properties.display()
    )]
    GeometryShape {
        /// The probability file.
        file: PathBuf,
        /// Its spatial shape.
        found: [usize; 3],
        /// The sidecar.
        properties: PathBuf,
        /// The shape the sidecar records.
        expected: [usize; 3],
    },
    /// An output folder or file could not be created.
    #[error("{}: cannot write", path.display())]
    Write {
        /// The folder or file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl From<ImageError> for FolderError {
    fn from(err: ImageError) -> Self {
        FolderError::Image(Box::new(err))
    }
}

impl From<NpzError> for FolderError {
    fn from(err: NpzError) -> Self {
        FolderError::Npz(Box::new(err))
    }
}

impl From<EvaluationError> for FolderError {
    fn from(err: EvaluationError) -> Self {
        FolderError::Settings(Box::new(err))
    }
}

/// One prediction file and the reference of the same name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CasePair {
    /// `pred_dir/<name>`.
    pub prediction: PathBuf,
    /// `ref_dir/<name>`.
    pub reference: PathBuf,
}

/// The evaluation settings of a dataset: its foreground regions when it declares regions, else
/// its foreground labels (nnU-Net: `lm.foreground_regions if lm.has_regions else
/// lm.foreground_labels`), and its ignore label.
pub fn settings_from_dataset_json(
    json: &DatasetJson,
    surface: Option<SurfaceSettings>,
) -> EvaluationSettings {
    let labels = &json.labels;
    let classes = if labels.has_regions() {
        labels
            .entries()
            .iter()
            .filter(|e| !e.value.values().iter().all(|&v| v == 0))
            .map(|e| e.value.clone())
            .collect()
    } else {
        labels
            .all_labels()
            .into_iter()
            .filter(|&v| v != 0)
            .map(LabelValue::Single)
            .collect()
    };
    EvaluationSettings {
        classes,
        ignore_label: labels.ignore_label(),
        surface,
    }
}

/// The names of the files (not folders) in `dir` ending in `file_ending`, sorted (nnU-Net:
/// `subfiles(dir, suffix=file_ending)`).
fn files_with_ending(dir: &Path, file_ending: &str) -> Result<Vec<String>, FolderError> {
    let list_err = |source| FolderError::ListDir {
        dir: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        let Ok(name) = entry.file_name().into_string() else {
            tracing::warn!(file = %entry.path().display(), "skipping a file name that is not UTF-8");
            continue;
        };
        if name.ends_with(file_ending) && entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// The file ending of the masks in `dir`: the first of [`ImageFormat::ALL`]'s endings (`.nii.gz`,
/// `.nii`, `.nrrd`, ...) that a file in it has, else [`FolderError::NoFiles`].
///
/// # Errors
/// [`FolderError::ListDir`], [`FolderError::NoFiles`].
pub fn detect_file_ending(dir: &Path) -> Result<&'static str, FolderError> {
    for (_, ending) in ImageFormat::ALL {
        if !files_with_ending(dir, ending)?.is_empty() {
            return Ok(ending);
        }
    }
    Err(FolderError::NoFiles {
        dir: dir.to_path_buf(),
        what: "prediction",
        file_ending: ImageFormat::endings(),
    })
}

/// Matches every prediction in `pred_dir` ending in `file_ending` to the file of the same name
/// in `ref_dir`. References without a prediction are left out (nnU-Net's `chill`), and logged.
///
/// # Errors
/// [`FolderError::ListDir`], [`FolderError::NoFiles`] when there is no prediction, and
/// [`FolderError::MissingReference`] naming the first prediction without a reference.
pub fn match_cases(
    pred_dir: &Path,
    ref_dir: &Path,
    file_ending: &str,
) -> Result<Vec<CasePair>, FolderError> {
    let predictions = files_with_ending(pred_dir, file_ending)?;
    if predictions.is_empty() {
        return Err(FolderError::NoFiles {
            dir: pred_dir.to_path_buf(),
            what: "prediction",
            file_ending: file_ending.to_string(),
        });
    }
    let references = files_with_ending(ref_dir, file_ending)?;
    let mut pairs = Vec::with_capacity(predictions.len());
    for name in &predictions {
        let pair = CasePair {
            prediction: pred_dir.join(name),
            reference: ref_dir.join(name),
        };
        if references.binary_search(name).is_err() {
            return Err(FolderError::MissingReference {
                prediction: pair.prediction,
                expected: pair.reference,
            });
        }
        pairs.push(pair);
    }
    let unmatched = references.len() - pairs.len();
    if unmatched > 0 {
        tracing::info!(unmatched, dir = %ref_dir.display(), "references without a prediction are not evaluated");
    }
    Ok(pairs)
}

/// The foreground label values present in the references of `pairs`, sorted; what
/// `autoseg evaluate` evaluates when it has no dataset.json. Reads the references in parallel.
///
/// # Errors
/// [`FolderError::Image`] for an unreadable reference.
pub fn labels_in_references(pairs: &[CasePair]) -> Result<Vec<u16>, FolderError> {
    let sets = pairs
        .par_iter()
        .map(|pair| {
            let labels = read_label_map(&pair.reference)?;
            Ok(labels.data.iter().copied().collect::<BTreeSet<u16>>())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .collect::<Result<Vec<_>, FolderError>>()?;
    let all: BTreeSet<u16> = sets.into_iter().flatten().filter(|&v| v != 0).collect();
    Ok(all.into_iter().collect())
}

/// Evaluates every prediction in `pred_dir` ending in `file_ending` against the reference of the
/// same name in `ref_dir` (see [`match_cases`]) and summarises them as nnU-Net's
/// `summary.json` does. `prediction_file`/`reference_file` are written as
/// `pred_dir/<name>` and `ref_dir/<name>`, as nnU-Net writes them.
///
/// # Errors
/// As [`match_cases`] and [`evaluate_pairs`].
pub fn evaluate_folder(
    pred_dir: &Path,
    ref_dir: &Path,
    settings: &EvaluationSettings,
    file_ending: &str,
) -> Result<Summary, FolderError> {
    validate_classes(&settings.classes)?;
    let pairs = match_cases(pred_dir, ref_dir, file_ending)?;
    evaluate_pairs(&pairs, settings)
}

/// Evaluates matched files in parallel, each worker reading its pair.
///
/// # Errors
/// [`FolderError::Settings`] for unusable settings or no pairs, [`FolderError::Image`] for an
/// unreadable file, [`FolderError::ShapeMismatch`] naming both files, and
/// [`FolderError::Case`] for a spacing the surface metrics cannot use.
pub fn evaluate_pairs(
    pairs: &[CasePair],
    settings: &EvaluationSettings,
) -> Result<Summary, FolderError> {
    validate_classes(&settings.classes)?;
    if pairs.is_empty() {
        return Err(EvaluationError::NoCases { what: "evaluate" }.into());
    }
    let per_case = pairs
        .par_iter()
        .map(|pair| evaluate_pair(pair, settings))
        .collect::<Vec<_>>()
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Summary::from_cases(&settings.classes, per_case))
}

fn evaluate_pair(
    pair: &CasePair,
    settings: &EvaluationSettings,
) -> Result<CaseMetrics, FolderError> {
    let reference = read_label_map(&pair.reference)?;
    let prediction = read_label_map(&pair.prediction)?;
    let (reference_view, prediction_view) = (spatial(&reference), spatial(&prediction));
    if reference_view.dim() != prediction_view.dim() {
        return Err(FolderError::ShapeMismatch {
            prediction: pair.prediction.clone(),
            reference: pair.reference.clone(),
            prediction_shape: prediction.data_shape().0,
            reference_shape: reference.data_shape().0,
        });
    }
    let case = CaseInput {
        prediction_file: pair.prediction.display().to_string(),
        reference_file: pair.reference.display().to_string(),
        prediction: prediction_view,
        reference: reference_view,
        spacing: reference.geometry.spacing().0,
    };
    evaluate_case(&case, settings).map_err(|source| FolderError::Case {
        case: case.prediction_file.clone(),
        source: Box::new(source),
    })
}

/// The `(z, y, x)` voxels of a label map read from one file.
fn spatial(labels: &LabelMap) -> ArrayView3<'_, u16> {
    // read_label_map returns exactly one channel.
    labels.data.index_axis(Axis(0), 0)
}

/// The cases (file names without `.npz`) of the first folder, checked to be present in every
/// other folder and vice versa.
fn common_cases(inputs: &[PathBuf]) -> Result<Vec<String>, FolderError> {
    let first = inputs.first().ok_or(FolderError::NoInputs)?;
    let cases_of = |dir: &Path| -> Result<BTreeSet<String>, FolderError> {
        let names = files_with_ending(dir, ".npz")?;
        Ok(names
            .into_iter()
            .map(|n| n.trim_end_matches(".npz").to_string())
            .collect())
    };
    let reference = cases_of(first)?;
    if reference.is_empty() {
        return Err(FolderError::NoFiles {
            dir: first.clone(),
            what: "probability",
            file_ending: ".npz".to_string(),
        });
    }
    for dir in &inputs[1..] {
        let cases = cases_of(dir)?;
        let missing_here = reference.difference(&cases).next();
        let missing_first = cases.difference(&reference).next();
        let mismatch = match (missing_here, missing_first) {
            (Some(case), _) => Some((dir, first, case)),
            (None, Some(case)) => Some((first, dir, case)),
            (None, None) => None,
        };
        if let Some((lacking, holding, case)) = mismatch {
            return Err(FolderError::MissingCase {
                missing: probabilities_file(lacking, case),
                present: probabilities_file(holding, case),
            });
        }
    }
    Ok(reference.into_iter().collect())
}

/// Ensembles prediction folders written with probabilities: for every case (present in all
/// folders, as nnU-Net requires) it averages the `probabilities` arrays in float32, turns the
/// mean into labels (argmax, or the regions of the first folder's sidecar) and writes
/// `output/<case><file_ending>` with the first folder's recorded geometry, after applying
/// `postprocessing` when given (nnU-Net's separate `apply_postprocessing` step, here before the
/// mask is written once). Copies the first
/// folder's `dataset.json`, if any, into `output` (as nnU-Net does). Returns the masks written,
/// sorted by case.
///
/// Cases run in parallel, as many at once as fit a memory budget of 8 GiB (at least one).
///
/// # Errors
/// [`FolderError::NoInputs`], [`FolderError::NoFiles`], [`FolderError::MissingCase`],
/// [`FolderError::Npz`], [`FolderError::ProbabilityShape`], [`FolderError::GeometryShape`],
/// [`FolderError::Case`] (channels and regions disagree), [`FolderError::Image`] and
/// [`FolderError::Write`]; each names the file.
pub fn ensemble_folders(
    inputs: &[PathBuf],
    output: &Path,
    postprocessing: Option<&PostprocessingPlan>,
) -> Result<Vec<PathBuf>, FolderError> {
    let cases = common_cases(inputs)?;
    std::fs::create_dir_all(output).map_err(|source| FolderError::Write {
        path: output.to_path_buf(),
        source,
    })?;
    let shape = read_probabilities_shape(&probabilities_file(&inputs[0], &cases[0]))?;
    let map_bytes = 4 * shape.iter().map(|&d| d as u64).product::<u64>();
    let in_flight = cases_in_flight(map_bytes, inputs.len());
    let mut written = Vec::with_capacity(cases.len());
    for chunk in cases.chunks(in_flight) {
        let masks = chunk
            .par_iter()
            .map(|case| ensemble_case(inputs, case, output, postprocessing))
            .collect::<Vec<_>>()
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        written.extend(masks);
    }
    copy_dataset_json(&inputs[0], output)?;
    Ok(written)
}

/// How many cases fit the memory budget at once: `n_members + 1` maps of `map_bytes` each
/// (the size of the first case's map stands for all).
fn cases_in_flight(map_bytes: u64, n_members: usize) -> usize {
    let per_case = map_bytes.max(1) * (n_members as u64 + 1);
    let fit = ENSEMBLE_MEMORY_BUDGET_BYTES / per_case;
    (fit as usize).clamp(1, rayon::current_num_threads().max(1))
}

fn ensemble_case(
    inputs: &[PathBuf],
    case: &str,
    output: &Path,
    postprocessing: Option<&PostprocessingPlan>,
) -> Result<PathBuf, FolderError> {
    let props_path = properties_file(&inputs[0], case);
    let props = ProbabilityProperties::read(&props_path)?;
    let files: Vec<PathBuf> = inputs
        .iter()
        .map(|dir| probabilities_file(dir, case))
        .collect();
    let members = files
        .iter()
        .map(|file| read_probabilities(file))
        .collect::<Result<Vec<_>, _>>()?;
    let expected = members[0].shape();
    for (file, member) in files.iter().zip(&members).skip(1) {
        if member.shape() != expected {
            return Err(FolderError::ProbabilityShape {
                file: file.clone(),
                found: member.shape().to_vec(),
                first: files[0].clone(),
                expected: expected.to_vec(),
            });
        }
    }
    let grid = [expected[1], expected[2], expected[3]];
    if Shape3(grid) != props.geometry.shape() {
        return Err(FolderError::GeometryShape {
            file: files[0].clone(),
            found: grid,
            properties: props_path,
            expected: props.geometry.shape().0,
        });
    }
    let case_err = |source| FolderError::Case {
        case: case.to_string(),
        source: Box::new(source),
    };
    let views: Vec<_> = members.iter().map(|m| m.view()).collect();
    let mean = average_probabilities(&views).map_err(case_err)?;
    drop(views);
    drop(members);
    let mut segmentation =
        probabilities_to_segmentation(mean.view(), &props.segmentation_rule()).map_err(case_err)?;
    if let Some(plan) = postprocessing {
        apply_postprocessing(plan, segmentation.view_mut());
    }
    let mask = LabelMap {
        data: segmentation.insert_axis(Axis(0)),
        geometry: props.geometry,
    };
    let path = output.join(format!("{case}{}", props.file_ending));
    write_label_map(&path, &mask, MASK_GZIP_LEVEL)?;
    Ok(path)
}

fn copy_dataset_json(input: &Path, output: &Path) -> Result<(), FolderError> {
    let source = input.join("dataset.json");
    if !source.is_file() {
        return Ok(());
    }
    let target = output.join("dataset.json");
    std::fs::copy(&source, &target)
        .map(|_| ())
        .map_err(|source| FolderError::Write {
            path: target,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npz::write_probabilities;
    use crate::Metric;
    use autoseg_preprocessing::{parse_dataset_json, Geometry, HeaderGeometry, Spacing};
    use ndarray::{s, Array3, Array4};

    fn geometry(shape: [usize; 3], spacing: [f64; 3]) -> Geometry {
        Geometry::new(
            Shape3(shape),
            HeaderGeometry::axis_aligned(Spacing(spacing), [0.0; 3]),
        )
    }

    fn write_mask(path: &Path, labels: Array3<u16>, spacing: [f64; 3]) {
        let (z, y, x) = labels.dim();
        let mask = LabelMap {
            data: labels.insert_axis(Axis(0)),
            geometry: geometry([z, y, x], spacing),
        };
        write_label_map(path, &mask, 1).unwrap();
    }

    /// An 8³ cube of `label` starting at voxel (4, 4, x0) in a (16, 16, 20) grid.
    fn cube(label: u16, x0: usize) -> Array3<u16> {
        let mut a = Array3::zeros((16, 16, 20));
        a.slice_mut(s![4..12, 4..12, x0..x0 + 8]).fill(label);
        a
    }

    fn label_settings(labels: &[u16]) -> EvaluationSettings {
        EvaluationSettings {
            classes: labels.iter().map(|&l| LabelValue::Single(l)).collect(),
            ignore_label: None,
            surface: Some(SurfaceSettings {
                nsd_tolerance_mm: DEFAULT_NSD_TOLERANCE_MM,
            }),
        }
    }

    #[test]
    fn folder_evaluation_gives_the_known_dice_and_distances_in_mm() {
        let (pred, reference) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // Case a: shifted by 4 voxels along x at 0.5 mm: Dice 0.5, HD95 2 mm. Case b: exact.
        let spacing = [3.0, 2.0, 0.5];
        write_mask(&reference.path().join("a.nii.gz"), cube(1, 4), spacing);
        write_mask(&pred.path().join("a.nii.gz"), cube(1, 8), spacing);
        write_mask(&reference.path().join("b.nii.gz"), cube(1, 2), spacing);
        write_mask(&pred.path().join("b.nii.gz"), cube(1, 2), spacing);
        // A reference without a prediction is not evaluated; other endings are not cases.
        write_mask(&reference.path().join("c.nii.gz"), cube(1, 2), spacing);
        std::fs::write(pred.path().join("notes.txt"), "x").unwrap();
        let summary = evaluate_folder(
            pred.path(),
            reference.path(),
            &label_settings(&[1]),
            ".nii.gz",
        )
        .unwrap();
        assert_eq!(summary.metric_per_case.len(), 2);
        let a = &summary.metric_per_case[0];
        assert_eq!(
            a.prediction_file,
            pred.path().join("a.nii.gz").display().to_string()
        );
        assert_eq!(
            a.reference_file,
            reference.path().join("a.nii.gz").display().to_string()
        );
        let a1 = a.get(&LabelValue::Single(1)).unwrap();
        assert_eq!(a1.get(Metric::Dice), Some(0.5));
        assert_eq!(a1.get(Metric::TP), Some(256.0));
        assert_eq!(a1.get(Metric::Hd95), Some(2.0));
        assert_eq!(summary.foreground_dice(), 0.75);
    }

    #[test]
    fn labels_come_from_the_references_when_there_is_no_dataset_json() {
        let (pred, reference) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut two = cube(1, 0);
        two[[0, 0, 19]] = 3;
        write_mask(&reference.path().join("a.nii"), two, [1.0; 3]);
        write_mask(&pred.path().join("a.nii"), cube(2, 0), [1.0; 3]);
        assert_eq!(detect_file_ending(pred.path()).unwrap(), ".nii");
        let pairs = match_cases(pred.path(), reference.path(), ".nii").unwrap();
        assert_eq!(labels_in_references(&pairs).unwrap(), vec![1, 3]);
    }

    #[test]
    fn a_prediction_without_reference_is_an_error_naming_it() {
        let (pred, reference) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_mask(&pred.path().join("lonely.nii.gz"), cube(1, 0), [1.0; 3]);
        let err = evaluate_folder(
            pred.path(),
            reference.path(),
            &label_settings(&[1]),
            ".nii.gz",
        )
        .unwrap_err();
        assert!(matches!(err, FolderError::MissingReference { .. }));
        let text = err.to_string();
        assert!(
            text.contains(&pred.path().join("lonely.nii.gz").display().to_string()),
            "{text}"
        );
        assert!(text.contains(&reference.path().join("lonely.nii.gz").display().to_string()));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            evaluate_folder(
                empty.path(),
                reference.path(),
                &label_settings(&[1]),
                ".nii.gz"
            ),
            Err(FolderError::NoFiles { .. })
        ));
    }

    #[test]
    fn a_shape_mismatch_names_both_files() {
        let (pred, reference) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_mask(&reference.path().join("a.nii.gz"), cube(1, 0), [1.0; 3]);
        write_mask(
            &pred.path().join("a.nii.gz"),
            Array3::zeros((16, 16, 21)),
            [1.0; 3],
        );
        let err = evaluate_folder(
            pred.path(),
            reference.path(),
            &label_settings(&[1]),
            ".nii.gz",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("[16, 16, 21]") && text.contains("[16, 16, 20]"),
            "{text}"
        );
        assert!(text.contains(&pred.path().join("a.nii.gz").display().to_string()));
        assert!(text.contains(&reference.path().join("a.nii.gz").display().to_string()));
    }

    #[test]
    fn of_several_bad_cases_the_first_in_case_order_is_named() {
        // Cases 0-3 are good and slow (surface distances on 48³), cases 4-9 have predictions of
        // the wrong shape (found at once). Another thread meets case 5 long before case 4 is
        // reached, yet the error names case 4.
        let (pred, reference) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let ball = |r: f64| {
            Array3::from_shape_fn((48, 48, 48), |(z, y, x)| {
                let d2 = [z, y, x]
                    .iter()
                    .map(|&v| (v as f64 - 23.5).powi(2))
                    .sum::<f64>();
                u16::from(d2 <= r * r)
            })
        };
        for i in 0..10 {
            let name = format!("case_{i}.nii.gz");
            write_mask(&reference.path().join(&name), ball(15.0), [1.0; 3]);
            let prediction = if i < 4 {
                ball(12.0)
            } else {
                Array3::zeros((48, 48, 47))
            };
            write_mask(&pred.path().join(&name), prediction, [1.0; 3]);
        }
        let first_bad = pred.path().join("case_4.nii.gz").display().to_string();
        for _ in 0..3 {
            let err = evaluate_folder(
                pred.path(),
                reference.path(),
                &label_settings(&[1]),
                ".nii.gz",
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(&first_bad), "{err}");
        }
    }

    fn dataset_json(labels: &str) -> DatasetJson {
        let text = format!(
            r#"{{"channel_names": {{"0": "CT"}}, "labels": {labels},
                "numTraining": 1, "file_ending": ".nii.gz"}}"#
        );
        parse_dataset_json(text.as_bytes(), Path::new("dataset.json")).unwrap()
    }

    #[test]
    fn settings_follow_nnunets_label_manager() {
        let labels = dataset_json(r#"{"background": 0, "a": 1, "b": 2, "ignore": 3}"#);
        let settings = settings_from_dataset_json(&labels, None);
        assert_eq!(
            settings.classes,
            vec![LabelValue::Single(1), LabelValue::Single(2)]
        );
        assert_eq!(settings.ignore_label, Some(3));
        let regions = dataset_json(
            r#"{"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enh": 3},
                "regions_class_order": [1, 2, 3]"#,
        );
        let keys: Vec<String> = settings_from_dataset_json(&regions, None)
            .classes
            .iter()
            .map(LabelValue::key)
            .collect();
        assert_eq!(keys, ["(1, 2, 3)", "(2, 3)", "3"]);
    }

    /// Writes `<case>.npz` (+ sidecar) with `probabilities` of shape `(c, 2, 2, 2)`.
    fn write_member(
        dir: &Path,
        case: &str,
        probabilities: &Array4<f32>,
        regions: Option<Vec<u16>>,
    ) {
        let (_, z, y, x) = probabilities.dim();
        write_probabilities(&probabilities_file(dir, case), probabilities.view()).unwrap();
        let props = ProbabilityProperties {
            geometry: geometry([z, y, x], [1.0, 0.5, 0.5]),
            file_ending: ".nii.gz".to_string(),
            regions_class_order: regions,
        };
        props.write(&properties_file(dir, case)).unwrap();
    }

    /// Two classes over 8 voxels: background probability `p0[v]`, foreground `1 - p0[v]`.
    fn two_class(p0: [f32; 8]) -> Array4<f32> {
        Array4::from_shape_fn((2, 2, 2, 2), |(c, z, y, x)| {
            let p = p0[z * 4 + y * 2 + x];
            if c == 0 {
                p
            } else {
                1.0 - p
            }
        })
    }

    fn read_mask(path: &Path) -> Vec<u16> {
        read_label_map(path).unwrap().data.iter().copied().collect()
    }

    #[test]
    fn ensembling_averages_known_maps_to_the_known_argmax() {
        let (a, b, out) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        // Means of background: 0.4, 0.6, 0.45, 0.55, 0.9, 0.1, 0.5 (tie: argmax takes 0), 0.3.
        write_member(
            a.path(),
            "case",
            &two_class([0.6, 0.4, 0.8, 0.1, 1.0, 0.0, 0.5, 0.2]),
            None,
        );
        write_member(
            b.path(),
            "case",
            &two_class([0.2, 0.8, 0.1, 1.0, 0.8, 0.2, 0.5, 0.4]),
            None,
        );
        std::fs::write(a.path().join("dataset.json"), "{}").unwrap();
        let inputs = [a.path().to_path_buf(), b.path().to_path_buf()];
        let written = ensemble_folders(&inputs, out.path(), None).unwrap();
        assert_eq!(written, vec![out.path().join("case.nii.gz")]);
        assert_eq!(read_mask(&written[0]), vec![1, 0, 1, 0, 0, 1, 0, 1]);
        let mask = read_label_map(&written[0]).unwrap();
        assert_eq!(mask.geometry, geometry([2, 2, 2], [1.0, 0.5, 0.5]));
        assert!(out.path().join("dataset.json").is_file());
    }

    #[test]
    fn ensembling_applies_the_postprocessing_before_writing() {
        let (a, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // A row of 7 voxels: foreground at 0..3 and 5; keeping label 1's largest component
        // leaves 0..3.
        let fg = [true, true, true, false, false, true, false];
        let p = Array4::from_shape_fn(
            (2, 1, 1, 7),
            |(c, _, _, x)| {
                if (c == 1) == fg[x] {
                    0.9
                } else {
                    0.1
                }
            },
        );
        write_member(a.path(), "row", &p, None);
        let plan = PostprocessingPlan {
            steps: vec![crate::PostprocessingStep {
                keep_largest_component_of: vec![1],
            }],
        };
        let inputs = [a.path().to_path_buf()];
        let raw = ensemble_folders(&inputs, &out.path().join("raw"), None).unwrap();
        assert_eq!(read_mask(&raw[0]), vec![1, 1, 1, 0, 0, 1, 0]);
        let kept = ensemble_folders(&inputs, out.path(), Some(&plan)).unwrap();
        assert_eq!(read_mask(&kept[0]), vec![1, 1, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn ensembling_identical_folders_gives_either_and_regions_follow_the_sidecar() {
        let (a, b, out) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let p = two_class([0.9, 0.2, 0.6, 0.3, 0.7, 0.1, 0.45, 0.55]);
        for dir in [a.path(), b.path()] {
            write_member(dir, "x", &p, None);
            write_member(dir, "y", &p, Some(vec![1, 2]));
        }
        let inputs = [a.path().to_path_buf(), b.path().to_path_buf()];
        let written = ensemble_folders(&inputs, out.path(), None).unwrap();
        let single = ensemble_folders(&inputs[..1], &out.path().join("single"), None).unwrap();
        assert_eq!(read_mask(&written[0]), vec![0, 1, 0, 1, 0, 1, 1, 0]);
        assert_eq!(read_mask(&written[0]), read_mask(&single[0]));
        // Regions: channel 1 > 0.5 -> 2 overwrites channel 0 > 0.5 -> 1.
        assert_eq!(read_mask(&written[1]), vec![1, 2, 1, 2, 1, 2, 2, 1]);
    }

    #[test]
    fn ensembling_needs_every_case_in_every_folder_and_one_shape() {
        let (a, b, out) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let p = two_class([0.5; 8]);
        write_member(a.path(), "x", &p, None);
        write_member(a.path(), "y", &p, None);
        write_member(b.path(), "x", &p, None);
        let inputs = [a.path().to_path_buf(), b.path().to_path_buf()];
        let err = ensemble_folders(&inputs, out.path(), None).unwrap_err();
        assert!(
            err.to_string()
                .contains(&b.path().join("y.npz").display().to_string()),
            "{err}"
        );
        let three = Array4::from_elem((3, 2, 2, 2), 0.3f32);
        write_probabilities(&probabilities_file(b.path(), "y"), three.view()).unwrap();
        let err = ensemble_folders(&inputs, out.path(), None).unwrap_err();
        assert!(
            matches!(&err, FolderError::ProbabilityShape { found, .. } if found == &[3, 2, 2, 2]),
            "{err}"
        );
        assert!(matches!(
            ensemble_folders(&[], out.path(), None),
            Err(FolderError::NoInputs)
        ));
    }
}
