//! [`JsonFault`]: one problem in the content of a `dataset.json`, [`PathProblem`], why a
//! case path of its `dataset` mapping is refused, and [`NotAFile`], what is at a case path that
//! is not a regular file.

use std::fmt;
use std::path::PathBuf;

use super::CaseId;

/// One problem in the content of a `dataset.json` (the file parsed as JSON, but a key is missing
/// or holds a value nnU-Net would refuse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonFault {
    /// A key nnU-Net requires is absent.
    #[error("required key `{key}` is missing; nnU-Net needs `labels`, `channel_names`, `numTraining` and `file_ending`")]
    MissingKey {
        /// The missing key.
        key: &'static str,
    },
    /// `channel_names` has no entries.
    #[error(
        "`channel_names` is empty; declare one entry per input channel, e.g. {{\"0\": \"CT\"}}"
    )]
    NoChannels,
    /// `channel_names` keys are not exactly the indices `0..n`.
    #[error("`channel_names` keys must be the channel indices \"0\"..\"{last}\", found {keys:?}")]
    ChannelIndices {
        /// The last index expected (`n - 1`).
        last: usize,
        /// The keys found.
        keys: Vec<String>,
    },
    /// `numTraining` is not a non-negative integer.
    #[error("`numTraining` must be a non-negative integer, found {found}")]
    NumTraining {
        /// The JSON value found.
        found: String,
    },
    /// `file_ending` is not the ending of a format autoseg reads.
    #[error(
        "`file_ending` must be the ending of a format autoseg reads ({}), found {found}",
        crate::ImageFormat::endings()
    )]
    FileEnding {
        /// The JSON value found.
        found: String,
    },
    /// A label's value is neither an integer in `0..=65535` nor a list of them.
    #[error(
        "label `{name}`: {found} is not a label value (an integer 0..=65535) or a list of them"
    )]
    LabelValue {
        /// The label's name.
        name: String,
        /// The JSON value found.
        found: String,
    },
    /// `labels` lacks the `background` entry.
    #[error(
        "`labels` has no `background` entry; add \"background\": 0 (labels map name -> value)"
    )]
    NoBackground,
    /// `labels.background` is not the single value 0.
    #[error("`labels.background` must be 0, found {found}")]
    BackgroundNotZero {
        /// The JSON value found.
        found: String,
    },
    /// `labels.ignore` is a region (a list) instead of one integer.
    #[error("`labels.ignore` must be a single integer, not a list: found {found}")]
    IgnoreNotInteger {
        /// The JSON value found.
        found: String,
    },
    /// The ignore label is not `max(labels) + 1`.
    #[error(
        "the ignore label is {ignore} but must be the highest value, max(labels) + 1 = {expected}"
    )]
    IgnoreNotHighest {
        /// The declared ignore label.
        ignore: u16,
        /// `max(labels) + 1`.
        expected: u32,
    },
    /// Regions are declared but `regions_class_order` is absent.
    #[error("`labels` declares regions (lists of values) but `regions_class_order` is missing; give one output label per region")]
    MissingRegionsClassOrder,
    /// `regions_class_order` does not have one entry per region.
    #[error("`regions_class_order` has {found} entries but `labels` declares {expected} regions; give one per region")]
    RegionsClassOrderLength {
        /// Number of foreground regions declared.
        expected: usize,
        /// Number of entries found.
        found: usize,
    },
    /// A `regions_class_order` entry is not a label value.
    #[error("`regions_class_order` entry {found} is not an integer 0..=65535")]
    RegionsClassOrderValue {
        /// The JSON value found.
        found: String,
    },
    /// A path in the `dataset` mapping could reach outside the dataset folder.
    #[error("case `{case}`: path \"{path}\" {problem}; write it relative to the dataset folder, without `..`")]
    UnsafePath {
        /// The case whose entry holds the path.
        case: CaseId,
        /// The path as written.
        path: String,
        /// Why it is refused.
        problem: PathProblem,
    },
    /// A case of the `dataset` mapping lists no image files.
    #[error("case `{case}` in `dataset` lists no images; give one image file per channel")]
    NoCaseImages {
        /// The case.
        case: CaseId,
    },
}

/// Why a path of the `dataset` mapping is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathProblem {
    /// The path is empty.
    Empty,
    /// The path is absolute.
    Absolute,
    /// The path has a `..` component.
    ParentDir,
    /// The path names an environment variable (`$VAR`), which autoseg does not expand.
    EnvVar,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathProblem::Empty => "is empty",
            PathProblem::Absolute => "is absolute",
            PathProblem::ParentDir => "has a `..` component",
            PathProblem::EnvVar => "uses `$` (environment variables are not expanded)",
        })
    }
}

/// What is at a path where a case file (a channel image or a label map) should be, when it is not
/// a regular file that can be opened. Discovery skips such entries, as nnU-Net's `subfiles`
/// (`os.path.isfile`) does; `verify` and the commands name them instead of ignoring them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotAFile {
    /// Nothing is there.
    Missing,
    /// A directory.
    Directory,
    /// A symbolic link that leads back to itself (directly or through other links).
    SymlinkLoop,
    /// A symbolic link whose target does not exist.
    DanglingSymlink {
        /// The link's target, as stored in the link.
        target: PathBuf,
    },
    /// The file's metadata cannot be read (e.g. permission denied on a folder on its way).
    Unreadable {
        /// The operating system's message.
        reason: String,
    },
    /// A fifo, socket or device.
    NotRegularFile,
}

impl fmt::Display for NotAFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotAFile::Missing => write!(f, "is missing"),
            NotAFile::Directory => write!(f, "is a directory"),
            NotAFile::SymlinkLoop => write!(f, "is a symlink loop"),
            NotAFile::DanglingSymlink { target } => {
                write!(f, "is a dangling symlink to {}", target.display())
            }
            NotAFile::Unreadable { reason } => write!(f, "cannot be read: {reason}"),
            NotAFile::NotRegularFile => {
                write!(f, "is not a regular file (a fifo, socket or device)")
            }
        }
    }
}
