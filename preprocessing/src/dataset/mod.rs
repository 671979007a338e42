//! A dataset in nnU-Net's raw layout: `dataset.json`, `imagesTr/`, `labelsTr/`, `imagesTs/`
//! (and, autoseg's addition for evaluation, an optional `labelsTs/`).
//!
//! [`Dataset::open`] reads `dataset.json` and discovers the cases as nnU-Net does; it fails only
//! when there is nothing to work with (no readable, valid `dataset.json`, no `imagesTr/`).
//! Everything else (missing label files, wrong counts, broken images) is left to
//! [`crate::verify`], which reports every problem at once.

mod discovery;
mod fault;
mod json;
mod labels;

use std::path::{Path, PathBuf};

pub use autoseg_planner::{LabelEntry, LabelValue};
pub(crate) use discovery::{
    cases_from_entries, channel_index, content_stamp, discover, regular_file, warn_skipped,
    Discovered, Skipped,
};
pub use discovery::{discover_image_cases, split_channel_name};
pub use fault::{JsonFault, NotAFile, PathProblem};
pub(crate) use json::ParseFailure;
pub use json::{CaseEntry, DatasetJson};
pub use labels::Labels;

/// A case identifier, e.g. `la_003` (the file name without `_XXXX{file_ending}`).
pub type CaseId = String;

/// Why a dataset cannot be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// `dataset.json` is missing or unreadable.
    #[error("{}: cannot read dataset.json", path.display())]
    ReadJson {
        /// The `dataset.json` path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `dataset.json` is empty.
    #[error("{}: dataset.json is empty; it needs labels, channel_names, numTraining and file_ending", path.display())]
    EmptyJson {
        /// The `dataset.json` path.
        path: PathBuf,
    },
    /// `dataset.json` starts with a UTF-8 byte-order mark, which JSON does not allow (nnU-Net's
    /// `json.load` refuses it too).
    #[error("{}: starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without BOM", path.display())]
    ByteOrderMark {
        /// The `dataset.json` path.
        path: PathBuf,
    },
    /// `dataset.json` is not JSON, or a key has the wrong JSON type.
    #[error("{}: dataset.json is malformed", path.display())]
    MalformedJson {
        /// The `dataset.json` path.
        path: PathBuf,
        /// The parser's message, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// `dataset.json` parsed but its content is invalid.
    #[error("{}: {}", path.display(), join_faults(faults))]
    InvalidJson {
        /// The `dataset.json` path.
        path: PathBuf,
        /// Every fault found (at least one).
        faults: Vec<JsonFault>,
    },
    /// A required folder is missing.
    #[error("{}: folder is missing; nnU-Net's raw layout needs imagesTr/ and labelsTr/", path.display())]
    MissingFolder {
        /// The folder.
        path: PathBuf,
    },
    /// A folder could not be listed.
    #[error("{}: cannot list folder", path.display())]
    ReadDir {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn join_faults(faults: &[JsonFault]) -> String {
    let texts: Vec<String> = faults.iter().map(ToString::to_string).collect();
    texts.join("; ")
}

/// One case: its channel files and its label file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The case identifier.
    pub id: CaseId,
    /// One file per channel, in channel order.
    pub images: Vec<PathBuf>,
    /// Training cases: where the label file must be (it may be missing; `verify` reports that).
    /// Test cases: the label file in `labelsTs/`, only if it exists.
    pub label: Option<PathBuf>,
}

/// An opened dataset folder.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The dataset folder.
    pub root: PathBuf,
    /// The parsed `dataset.json`.
    pub json: DatasetJson,
    /// Training cases, in nnU-Net's order (sorted ids, or the `dataset` mapping's order).
    pub training: Vec<Case>,
    /// Cases in `imagesTs/` (sorted ids), with labels from `labelsTs/` where present.
    pub test: Vec<Case>,
}

impl Dataset {
    /// Reads `dataset.json` and discovers the training and test cases. Entries named like case
    /// files that are not regular files (directories, symlink loops, dangling symlinks, ...) are
    /// skipped, as nnU-Net does, with a logged warning each.
    ///
    /// nnU-Net: `get_filenames_of_train_images_and_targets`.
    ///
    /// # Errors
    /// When `dataset.json` is missing, empty, malformed or invalid, when `imagesTr/` is missing
    /// (and `dataset.json` has no `dataset` mapping), or when a folder cannot be listed.
    pub fn open(root: &Path) -> Result<Dataset, DatasetError> {
        let json = read_dataset_json(&root.join("dataset.json"))?;
        let training = match &json.cases {
            Some(entries) => cases_from_entries(root, entries),
            None => {
                let images = root.join("imagesTr");
                if !images.is_dir() {
                    return Err(DatasetError::MissingFolder { path: images });
                }
                let found =
                    discover_listed(&images, &root.join("labelsTr"), &json.file_ending, true)?;
                warn_skipped(&found.skipped);
                found.cases
            }
        };
        let test_dir = root.join("imagesTs");
        let test = if test_dir.is_dir() {
            let found =
                discover_listed(&test_dir, &root.join("labelsTs"), &json.file_ending, false)?;
            warn_skipped(&found.skipped);
            found.cases
        } else {
            Vec::new()
        };
        Ok(Dataset {
            root: root.to_path_buf(),
            json,
            training,
            test,
        })
    }

    /// What the planner needs from this dataset, named after its folder.
    ///
    /// # Errors
    /// [`autoseg_planner::PlanError::InvalidDataset`] when the planner refuses the description
    /// (e.g. `numTraining` is 0).
    pub fn dataset_info(&self) -> Result<autoseg_planner::DatasetInfo, autoseg_planner::PlanError> {
        self.json.dataset_info(&self.name())
    }

    /// The dataset's name: its folder name (e.g. `Dataset004_Hippocampus`).
    pub fn name(&self) -> String {
        self.root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.root.display().to_string())
    }
}

/// [`discover`] with the listing error tied to its folder.
pub(crate) fn discover_listed(
    image_dir: &Path,
    label_dir: &Path,
    ending: &str,
    labels_must_exist: bool,
) -> Result<Discovered, DatasetError> {
    discover(image_dir, label_dir, ending, labels_must_exist).map_err(|source| {
        DatasetError::ReadDir {
            path: image_dir.to_path_buf(),
            source,
        }
    })
}

/// Reads and checks one `dataset.json` file.
///
/// # Errors
/// [`DatasetError::ReadJson`], [`DatasetError::EmptyJson`], [`DatasetError::ByteOrderMark`],
/// [`DatasetError::MalformedJson`] or [`DatasetError::InvalidJson`] (which lists every content
/// fault).
pub fn read_dataset_json(path: &Path) -> Result<DatasetJson, DatasetError> {
    let bytes = std::fs::read(path).map_err(|source| DatasetError::ReadJson {
        path: path.to_path_buf(),
        source,
    })?;
    parse_dataset_json(&bytes, path)
}

/// Parses `dataset.json` bytes; `path` only names the file in errors.
///
/// # Errors
/// As [`read_dataset_json`], except for I/O.
pub fn parse_dataset_json(bytes: &[u8], path: &Path) -> Result<DatasetJson, DatasetError> {
    let path = path.to_path_buf();
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return Err(DatasetError::ByteOrderMark { path });
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        // serde_json reports the position of the invalid UTF-8.
        Err(_) => {
            let source = serde_json::from_slice::<serde_json::Value>(bytes)
                .expect_err("bytes that are not UTF-8 are not JSON");
            return Err(DatasetError::MalformedJson { path, source });
        }
    };
    DatasetJson::parse(text).map_err(|failure| match failure {
        ParseFailure::Empty => DatasetError::EmptyJson { path },
        ParseFailure::Malformed(source) => DatasetError::MalformedJson { path, source },
        ParseFailure::Invalid(faults) => DatasetError::InvalidJson { path, faults },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{"channel_names": {"0": "MR"}, "labels": {"background": 0, "a": 1},
        "numTraining": 2, "file_ending": ".nii.gz"}"#;

    fn layout(files: &[&str]) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().expect("tempdir");
        for f in files {
            let p = tmp.path().join(f);
            std::fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
            std::fs::write(&p, b"x").expect("write");
        }
        std::fs::write(tmp.path().join("dataset.json"), JSON).expect("write json");
        tmp
    }

    #[test]
    fn open_discovers_training_and_test_cases() {
        let tmp = layout(&[
            "imagesTr/b_0000.nii.gz",
            "imagesTr/a_0000.nii.gz",
            "labelsTr/a.nii.gz",
            "imagesTs/t1_0000.nii.gz",
            "imagesTs/t2_0000.nii.gz",
            "labelsTs/t2.nii.gz",
        ]);
        let ds = Dataset::open(tmp.path()).expect("open");
        let ids: Vec<&str> = ds.training.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        // "b" has no label file: open still succeeds and keeps the expected path for verify.
        assert_eq!(
            ds.training[1].label,
            Some(tmp.path().join("labelsTr/b.nii.gz"))
        );
        assert_eq!(ds.test.len(), 2);
        assert_eq!(ds.test[0].label, None);
        assert_eq!(
            ds.test[1].label,
            Some(tmp.path().join("labelsTs/t2.nii.gz"))
        );
    }

    #[test]
    fn open_fails_with_named_errors_when_nothing_can_be_read() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = Dataset::open(tmp.path()).expect_err("no dataset.json");
        assert!(matches!(err, DatasetError::ReadJson { .. }));
        std::fs::write(tmp.path().join("dataset.json"), JSON).expect("write");
        let err = Dataset::open(tmp.path()).expect_err("no imagesTr");
        assert!(matches!(&err, DatasetError::MissingFolder { path } if path.ends_with("imagesTr")));
    }

    #[test]
    fn invalid_content_lists_every_fault_in_the_message() {
        let err = parse_dataset_json(br#"{"labels": {"a": 1}}"#, Path::new("ds/dataset.json"))
            .expect_err("invalid");
        let text = err.to_string();
        assert!(text.starts_with("ds/dataset.json: "), "{text}");
        for needle in ["channel_names", "numTraining", "file_ending", "background"] {
            assert!(text.contains(needle), "{needle} missing in: {text}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        // Deterministic xorshift bytes, plus every truncation of a valid file.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 0..2000usize {
            let bytes: Vec<u8> = (0..len % 97)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    b"{}[]\":,0123456789-.eE truefalsnul\\\x80\xff"[(state % 36) as usize]
                })
                .collect();
            let _ = parse_dataset_json(&bytes, Path::new("fuzz.json"));
        }
        for cut in 0..JSON.len() {
            let res = parse_dataset_json(&JSON.as_bytes()[..cut], Path::new("cut.json"));
            assert!(res.is_err(), "truncation at {cut} parsed");
        }
    }

    #[test]
    fn dataset_mapping_resolves_against_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let json = JSON.replace(
            "\"numTraining\": 2",
            r#""numTraining": 1, "dataset": {"c": {"images": ["img/c.nii.gz"], "label": "seg/c.nii.gz"}}"#,
        );
        std::fs::write(tmp.path().join("dataset.json"), json).expect("write");
        let ds = Dataset::open(tmp.path()).expect("open without imagesTr");
        assert_eq!(ds.training[0].images, [tmp.path().join("img/c.nii.gz")]);
        assert_eq!(ds.training[0].label, Some(tmp.path().join("seg/c.nii.gz")));
    }

    #[test]
    fn byte_order_mark_is_named() {
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend(JSON.as_bytes());
        let err = parse_dataset_json(&bytes, Path::new("ds/dataset.json")).expect_err("BOM");
        assert!(
            matches!(&err, DatasetError::ByteOrderMark { path } if path == Path::new("ds/dataset.json"))
        );
        assert_eq!(
            err.to_string(),
            "ds/dataset.json: starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without BOM"
        );
    }

    #[test]
    fn open_skips_entries_that_are_not_regular_files() {
        let tmp = layout(&["imagesTr/a_0000.nii.gz", "labelsTr/a.nii.gz"]);
        std::fs::create_dir(tmp.path().join("imagesTr/b_0000.nii.gz")).expect("mkdir");
        std::os::unix::fs::symlink("c_0000.nii.gz", tmp.path().join("imagesTr/c_0000.nii.gz"))
            .expect("symlink");
        let ds = Dataset::open(tmp.path()).expect("open");
        let ids: Vec<&str> = ds.training.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a"]);
    }
}
