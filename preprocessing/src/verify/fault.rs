//! The faults `verify` can find; each message says what is wrong and what to do about it.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::dataset::{JsonFault, NotAFile};
use crate::{Shape3, Spacing};

/// One kind of problem in a dataset folder, with the data that describes it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// `dataset.json` is missing or cannot be read.
    DatasetJsonUnreadable {
        /// The reader's message.
        reason: String,
    },
    /// `dataset.json` is empty.
    DatasetJsonEmpty,
    /// `dataset.json` starts with a UTF-8 byte-order mark.
    DatasetJsonBom,
    /// `dataset.json` is not JSON, or a key has the wrong JSON type.
    DatasetJsonMalformed {
        /// The parser's message, with line and column.
        reason: String,
    },
    /// `dataset.json` parsed, but one key is missing or invalid.
    DatasetJson(JsonFault),
    /// `imagesTr/` or `labelsTr/` is missing.
    MissingFolder {
        /// The folder name.
        folder: &'static str,
    },
    /// A folder could not be listed.
    UnreadableFolder {
        /// The operating system's message.
        reason: String,
    },
    /// A file in `imagesTr/` is not named `{CASE}_{XXXX}{file_ending}`.
    MisnamedFile {
        /// The dataset's file ending.
        file_ending: String,
    },
    /// Warning: an entry of `imagesTr/` named like a case file is not a regular file, so it is no
    /// case (nnU-Net skips it too), and the dataset is complete without it.
    SkippedEntry {
        /// What the entry is.
        found: NotAFile,
    },
    /// An entry of `imagesTr/` named like a case file is not a regular file, and the dataset is
    /// incomplete without it (its case lacks this channel, or the cases do not add up to
    /// `numTraining`).
    SkippedCaseFile {
        /// What the entry is.
        found: NotAFile,
    },
    /// The number of training cases differs from `numTraining`.
    CaseCount {
        /// `numTraining`.
        declared: usize,
        /// Cases found.
        found: usize,
    },
    /// There are no training cases at all.
    NoTrainingCases,
    /// The declared labels (with the ignore label) are not consecutive integers.
    NonConsecutiveLabels {
        /// Values that do not follow their predecessor.
        offending: Vec<u16>,
        /// All declared values, sorted (ignore label last).
        expected: Vec<u16>,
    },
    /// A training case has no label file.
    MissingLabel,
    /// An image file named by the `dataset` mapping does not exist.
    MissingImage,
    /// A training case's label path holds something else than a regular file, or one this
    /// process may not read.
    LabelNotAFile {
        /// What is there.
        found: NotAFile,
    },
    /// A channel file's path holds something else than a regular file, or one this process may
    /// not read.
    ImageNotAFile {
        /// What is there.
        found: NotAFile,
    },
    /// A case's channel files do not match `channel_names`.
    ChannelCount {
        /// Channels declared.
        expected: usize,
        /// Channel files found.
        found: usize,
        /// Expected channel files that are absent.
        missing: Vec<PathBuf>,
        /// Channel files whose index is beyond the declared channels.
        unexpected: Vec<PathBuf>,
    },
    /// A case's files hold another number of channels than `channel_names` declares (formats
    /// whose files may hold several channels: an RGB image holds three).
    ChannelsInFiles {
        /// Channels declared.
        expected: usize,
        /// Channels the case's files hold.
        found: usize,
        /// The case's channel files.
        n_files: usize,
    },
    /// The file cannot be read (truncated, corrupt, empty, not of its format, ...).
    Unreadable {
        /// The reader's message.
        reason: String,
    },
    /// The image holds NaN or infinite voxels.
    NonFinite {
        /// NaN voxels.
        n_nan: usize,
        /// Infinite voxels.
        n_inf: usize,
    },
    /// The label map holds values `dataset.json` does not declare.
    UndeclaredLabels {
        /// The undeclared values found.
        found: Vec<u16>,
        /// The declared values (with the ignore label).
        declared: Vec<u16>,
    },
    /// The file's grid shape differs from the reference file's (channel 0 of the case).
    ShapeMismatch {
        /// The file compared against.
        reference: PathBuf,
        /// The reference's shape.
        expected: Shape3,
        /// This file's shape.
        found: Shape3,
    },
    /// The file's spacing differs from the reference file's (numpy `allclose` defaults).
    SpacingMismatch {
        /// The file compared against.
        reference: PathBuf,
        /// The reference's spacing.
        expected: Spacing,
        /// This file's spacing.
        found: Spacing,
    },
    /// Warning: the file's origin differs from the reference file's.
    OriginMismatch {
        /// The file compared against.
        reference: PathBuf,
        /// The reference's origin (RAS+ mm, `[x, y, z]`).
        expected: [f64; 3],
        /// This file's origin.
        found: [f64; 3],
    },
    /// Warning: the file's axis directions differ from the reference file's.
    DirectionMismatch {
        /// The file compared against.
        reference: PathBuf,
        /// Largest difference between the unit direction vectors' entries.
        max_diff: f64,
    },
}

fn name(path: &Path) -> String {
    path.display().to_string()
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::DatasetJsonUnreadable { reason } => write!(f, "cannot read dataset.json ({reason}); every dataset folder needs one describing channels, labels, numTraining and file_ending"),
            Fault::DatasetJsonEmpty => write!(f, "dataset.json is empty; it must declare channel_names, labels, numTraining and file_ending"),
            Fault::DatasetJsonBom => write!(f, "dataset.json starts with a UTF-8 byte-order mark (BOM), which nnU-Net's JSON reader refuses too; save it as UTF-8 without BOM"),
            Fault::DatasetJsonMalformed { reason } => write!(f, "dataset.json is malformed ({reason}); fix the JSON syntax or the key's type"),
            Fault::DatasetJson(fault) => write!(f, "dataset.json: {fault}"),
            Fault::MissingFolder { folder } => write!(f, "folder {folder}/ is missing; nnU-Net's raw layout puts training images in imagesTr/ and their labels in labelsTr/"),
            Fault::UnreadableFolder { reason } => write!(f, "cannot list the folder ({reason}); check that it exists and is readable"),
            Fault::MisnamedFile { file_ending } => write!(f, "file name does not follow {{CASE}}_{{XXXX}}{file_ending} (case id, underscore, four-digit channel index); rename it or move it out of imagesTr/"),
            Fault::SkippedEntry { found } => write!(f, "skipped: it {found} (nnU-Net skips it too); remove it if it is not meant to be a case file"),
            Fault::SkippedCaseFile { found } => write!(f, "not read as a case file: it {found} (nnU-Net skips it too), which leaves its case without this channel or the training cases short of numTraining; put the image file there"),
            Fault::CaseCount { declared, found } => write!(f, "dataset.json declares numTraining = {declared} but {found} training cases were found; correct numTraining or add the missing cases"),
            Fault::NoTrainingCases => write!(f, "no training cases found; put images named {{CASE}}_0000{{file_ending}} into imagesTr/"),
            Fault::NonConsecutiveLabels { offending, expected } => write!(f, "labels must be consecutive integers 0, 1, 2, ...: {offending:?} do not follow their predecessor in {expected:?}; renumber the labels in dataset.json and the label files"),
            Fault::MissingLabel => write!(f, "label file is missing; every training case needs its label map in labelsTr/ named {{CASE}}{{file_ending}}"),
            Fault::MissingImage => write!(f, "image file listed in dataset.json's `dataset` mapping does not exist; fix the path or add the file"),
            Fault::LabelNotAFile { found } => write!(f, "label file {found}; the case's label map must be a readable image file at this path"),
            Fault::ImageNotAFile { found } => write!(f, "image file {found}; the channel's image must be a readable image file at this path"),
            Fault::ChannelCount { expected, found, missing, unexpected } => {
                write!(f, "case has {found} channel file(s) but dataset.json declares {expected} channel(s)")?;
                if !missing.is_empty() {
                    let names: Vec<String> = missing.iter().map(|p| name(p)).collect();
                    write!(f, "; missing: {}", names.join(", "))?;
                }
                if !unexpected.is_empty() {
                    let names: Vec<String> = unexpected.iter().map(|p| name(p)).collect();
                    write!(f, "; unexpected: {}", names.join(", "))?;
                }
                write!(f, "; give every case one file per channel, numbered _0000 to _{:04}", expected.saturating_sub(1))
            }
            Fault::ChannelsInFiles { expected, found, n_files } => write!(f, "the case's {n_files} file(s) hold {found} channel(s) but dataset.json declares {expected} (an RGB image holds three, an RGBA image four); make channel_names list one channel per channel the files hold"),
            Fault::Unreadable { reason } => write!(f, "cannot read the file: {reason}; re-export it as a valid file of the dataset's format"),
            Fault::NonFinite { n_nan, n_inf } => write!(f, "image holds {n_nan} NaN and {n_inf} infinite voxel(s); replace them with finite values that make sense for the image"),
            Fault::UndeclaredLabels { found, declared } => write!(f, "label values {found:?} are not declared in dataset.json (declared: {declared:?}); declare them or fix the label map"),
            Fault::ShapeMismatch { reference, expected, found } => write!(f, "shape {:?} (z, y, x) differs from {:?} of {}; a case's channels and label must share one voxel grid", found.0, expected.0, name(reference)),
            Fault::SpacingMismatch { reference, expected, found } => write!(f, "spacing {:?} mm (z, y, x) differs from {:?} of {}; a case's channels and label must share one voxel grid", found.0, expected.0, name(reference)),
            Fault::OriginMismatch { reference, expected, found } => write!(f, "origin {found:?} mm differs from {expected:?} of {} (a warning: check in a viewer that the two overlay)", name(reference)),
            Fault::DirectionMismatch { reference, max_diff } => write!(f, "axis directions differ from those of {} by up to {max_diff:.3} (a warning: check in a viewer that the two overlay)", name(reference)),
        }
    }
}
