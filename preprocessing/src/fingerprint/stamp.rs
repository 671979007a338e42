//! The stamp of the raw files a fingerprint was computed from (`dataset.json`, every training
//! image and label: name, size, modification time; a DICOM series folder by its files), so a
//! stale `fingerprint.toml` is noticed.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use autoseg_planner::{Fingerprint, StampEntry};

use super::FingerprintError;
use crate::dataset::content_stamp;
use crate::Dataset;

/// The files whose content the fingerprint depends on, in a fixed order: `dataset.json`, then
/// per training case its channel files and its label file.
fn raw_files(dataset: &Dataset) -> Vec<PathBuf> {
    let mut files = vec![dataset.root.join("dataset.json")];
    for case in &dataset.training {
        files.extend(case.images.iter().cloned());
        files.extend(case.label.iter().cloned());
    }
    files
}

/// `path` relative to the dataset folder with `/` separators (as given when outside it).
fn stamp_name(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

/// One file's stamp entry.
fn stamp_entry(root: &Path, path: &Path) -> Result<StampEntry, FingerprintError> {
    let io_err = |source| FingerprintError::Stamp {
        path: path.to_path_buf(),
        source,
    };
    let (size, modified) = content_stamp(path).map_err(io_err)?;
    let mtime_secs = match modified.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    };
    Ok(StampEntry {
        name: stamp_name(root, path),
        size,
        mtime_secs,
    })
}

/// The stamp of every raw file of `dataset` (see the module doc).
///
/// # Errors
/// [`FingerprintError::Stamp`] naming a file whose metadata cannot be read.
pub fn raw_file_stamp(dataset: &Dataset) -> Result<Vec<StampEntry>, FingerprintError> {
    raw_files(dataset)
        .iter()
        .map(|path| stamp_entry(&dataset.root, path))
        .collect()
}

/// True when `fingerprint` carries a stamp and it equals the current stamp of `dataset`'s raw
/// files: same files, sizes and modification times. A missing file or an empty stamp means
/// "not current".
pub fn fingerprint_is_current(fingerprint: &Fingerprint, dataset: &Dataset) -> bool {
    !fingerprint.stamp().is_empty()
        && raw_file_stamp(dataset).is_ok_and(|now| now == fingerprint.stamp())
}
