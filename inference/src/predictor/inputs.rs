//! The cases to predict: a single image file, or a folder of `CASE_XXXX<file_ending>` channel
//! files grouped by case (nnU-Net's `create_lists_from_splitted_dataset_folder`), or DICOM: a
//! folder holding one series, or a folder of such folders (one case each, named after it).

use std::path::{Path, PathBuf};

use autoseg_evaluation::{probabilities_file, properties_file};
use autoseg_preprocessing::{discover_image_cases, is_dicom_folder, split_channel_name};

use super::error::io_err;
use super::error::PredictError;

/// The files of a case to predict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputCase {
    /// Case identifier (the file name without `_XXXX<ending>`).
    pub id: String,
    /// One file per channel, in channel order.
    pub images: Vec<PathBuf>,
}

/// The case identifier of a channel file: its name without `_XXXX<ending>` (or without
/// `<ending>` when it has no channel suffix).
pub fn case_id_of(path: &Path, file_ending: &str) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match split_channel_name(&name, file_ending) {
        Some((case, _)) => case.to_string(),
        None => name.strip_suffix(file_ending).unwrap_or(&name).to_string(),
    }
}

/// The cases of `input`: a single image file (one case, one channel), a folder of
/// `CASE_XXXX<file_ending>` files grouped by case (sorted ids, channels sorted by name), a
/// folder holding one DICOM series (one case named after it), or a folder without such files
/// whose subfolders hold DICOM series (a case each, sorted by name).
///
/// # Errors
/// [`PredictError::Io`] when the folder cannot be listed; [`PredictError::Misnamed`] naming a
/// file with the ending whose name is not `CASE_XXXX<file_ending>`; [`PredictError::NoCases`]
/// for a folder without cases.
pub fn discover_input_cases(
    input: &Path,
    file_ending: &str,
) -> Result<Vec<InputCase>, PredictError> {
    if input.is_file() {
        return Ok(vec![InputCase {
            id: case_id_of(input, file_ending),
            images: vec![input.to_path_buf()],
        }]);
    }
    if is_dicom_folder(input) {
        return Ok(vec![dicom_case(input)]);
    }
    let (cases, misnamed) =
        discover_image_cases(input, file_ending).map_err(io_err(input, "list the folder"))?;
    if cases.is_empty() && misnamed.is_empty() {
        let series = dicom_series_in(input)?;
        if !series.is_empty() {
            return Ok(series.iter().map(|dir| dicom_case(dir)).collect());
        }
    }
    if let Some(path) = misnamed.into_iter().next() {
        return Err(PredictError::Misnamed {
            path,
            file_ending: file_ending.to_string(),
        });
    }
    if cases.is_empty() {
        return Err(PredictError::NoCases {
            path: input.to_path_buf(),
            file_ending: file_ending.to_string(),
        });
    }
    Ok(cases
        .into_iter()
        .map(|c| InputCase {
            id: c.id,
            images: c.images,
        })
        .collect())
}

/// A DICOM series folder as a case of one channel, named after the folder.
fn dicom_case(dir: &Path) -> InputCase {
    InputCase {
        id: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "series".to_string()),
        images: vec![dir.to_path_buf()],
    }
}

/// The subfolders of `input` that hold DICOM files, sorted by name.
fn dicom_series_in(input: &Path) -> Result<Vec<PathBuf>, PredictError> {
    let entries = std::fs::read_dir(input).map_err(io_err(input, "list the folder"))?;
    let mut series: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && is_dicom_folder(p))
        .collect();
    series.sort();
    Ok(series)
}

/// nnU-Net's `-num_parts N -part_id K`: the K-th of N parts of a folder of cases, for several
/// machines or devices predicting one folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    count: usize,
    index: usize,
}

impl Part {
    /// The whole folder.
    pub const ALL: Part = Part { count: 1, index: 0 };

    /// Part `index` of `count`; `None` unless `index < count`.
    pub fn new(count: usize, index: usize) -> Option<Part> {
        (index < count).then_some(Part { count, index })
    }
}

/// The cases this run predicts, in case order: those of `part` (nnU-Net's
/// `[part_id::num_parts]` of the sorted cases), less those `done` says are already predicted
/// (nnU-Net's `--continue_prediction`). Returns them and how many were skipped as done.
pub fn select_cases(
    mut cases: Vec<InputCase>,
    part: Part,
    done: impl Fn(&InputCase) -> bool,
) -> (Vec<InputCase>, usize) {
    cases.sort_by(|a, b| a.id.cmp(&b.id));
    let of_part: Vec<InputCase> = cases
        .into_iter()
        .skip(part.index)
        .step_by(part.count)
        .collect();
    let n = of_part.len();
    let todo: Vec<InputCase> = of_part.into_iter().filter(|c| !done(c)).collect();
    let skipped = n - todo.len();
    (todo, skipped)
}

/// Whether `case` was predicted into `out_dir` to the end: its mask `<case><file_ending>`
/// and, `with_probabilities`, its `.npz` and `.pkl` (each written atomically, the mask first).
pub fn already_predicted(
    out_dir: &Path,
    case: &str,
    file_ending: &str,
    with_probabilities: bool,
) -> bool {
    out_dir.join(format!("{case}{file_ending}")).is_file()
        && (!with_probabilities
            || (probabilities_file(out_dir, case).is_file()
                && properties_file(out_dir, case).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cases(ids: &[&str]) -> Vec<InputCase> {
        ids.iter()
            .map(|id| InputCase {
                id: id.to_string(),
                images: vec![],
            })
            .collect()
    }

    fn ids(cases: &[InputCase]) -> Vec<&str> {
        cases.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn parts_take_every_nth_case_and_done_cases_are_skipped() {
        let all = cases(&["e", "a", "d", "b", "c"]);
        let (todo, skipped) = select_cases(all.clone(), Part::ALL, |_| false);
        assert_eq!((ids(&todo), skipped), (vec!["a", "b", "c", "d", "e"], 0));
        // nnU-Net: sorted cases[part_id::num_parts].
        let (todo, _) = select_cases(all.clone(), Part::new(2, 0).unwrap(), |_| false);
        assert_eq!(ids(&todo), ["a", "c", "e"]);
        let (todo, _) = select_cases(all.clone(), Part::new(2, 1).unwrap(), |_| false);
        assert_eq!(ids(&todo), ["b", "d"]);
        let (todo, skipped) = select_cases(all, Part::new(2, 0).unwrap(), |c| c.id == "c");
        assert_eq!((ids(&todo), skipped), (vec!["a", "e"], 1));
        assert_eq!(Part::new(2, 2), None);
        assert_eq!(Part::new(0, 0), None);
    }

    #[test]
    fn a_case_is_predicted_when_all_its_outputs_are_there() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert!(!already_predicted(dir, "c", ".nii.gz", false));
        std::fs::write(dir.join("c.nii.gz"), b"").unwrap();
        assert!(already_predicted(dir, "c", ".nii.gz", false));
        assert!(!already_predicted(dir, "c", ".nii.gz", true));
        std::fs::write(probabilities_file(dir, "c"), b"").unwrap();
        assert!(!already_predicted(dir, "c", ".nii.gz", true));
        std::fs::write(properties_file(dir, "c"), b"").unwrap();
        assert!(already_predicted(dir, "c", ".nii.gz", true));
    }
}
