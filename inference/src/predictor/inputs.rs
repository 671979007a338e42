//! The cases to predict: a single image file, or a folder of `CASE_XXXX<file_ending>` channel
//! files grouped by case (nnU-Net's `create_lists_from_splitted_dataset_folder`).

use std::path::{Path, PathBuf};

use autoseg_preprocessing::{discover_image_cases, split_channel_name};

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

/// The cases of `input`: a single image file (one case, one channel), or a folder of
/// `CASE_XXXX<file_ending>` files grouped by case (sorted ids, channels sorted by name).
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
    let (cases, misnamed) =
        discover_image_cases(input, file_ending).map_err(io_err(input, "list the folder"))?;
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
