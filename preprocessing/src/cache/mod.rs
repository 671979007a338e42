//! The preprocessed cache: `<work>/<dataset>/preprocessed/<config>/`, one file per case plus a
//! stamp of the plan fields the files depend on.
//!
//! A case file (`<case>.case`) is an 80-byte little-endian header, the case's properties as
//! JSON, padding to a 64-byte boundary, the image as raw `f32` `(c, z, y, x)` and the
//! segmentation as raw `i16` `(1, z, y, x)`, all uncompressed so that a training patch is read
//! with one positioned read per `(channel, z)` plane, without loading the volume (see
//! [`format`] for the byte layout). Files are written atomically, so a killed run leaves only
//! complete files, and every file carries the stamp key it was made under and a key of its
//! source files, so a re-run skips exactly the cases that are still current.
//!
//! `stamp.toml` holds `schema_version`, the hashed [`StampFields`] (spacing, normalization,
//! resampling, transpose, CT statistics, location classes, format version; not batch size or
//! patch size) and the key. nnU-Net instead deletes its output folder on every run and asks the
//! user to pick a unique `data_identifier` (style rule 23).

mod format;
mod prev_stage;
mod properties;
mod run;
mod stamp;

use std::path::PathBuf;

use thiserror::Error;

pub use format::{write_case, CachedCase, CaseKeys, CACHE_FORMAT_VERSION};
pub use prev_stage::{append_one_hot, prev_stage_path, read_prev_stage_seg, write_prev_stage_seg};
pub use run::{
    case_path, preprocess, source_key, PreprocessSettings, PreprocessSummary, CASE_EXTENSION,
};
pub use stamp::{read_stamp, write_stamp, Stamp, StampFields, STAMP_FILE, STAMP_SCHEMA_VERSION};

/// Why a cache file or stamp cannot be read or written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CacheError {
    /// An I/O error on a cache file or folder.
    #[error("{}: {what}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the cache's magic bytes.
    #[error("{}: not an autoseg preprocessed case file", path.display())]
    NotACaseFile {
        /// The file.
        path: PathBuf,
    },
    /// The file was written by another format version.
    #[error("{}: cache format version {found}, this build reads version {supported}; run `autoseg preprocess` again", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The header or properties are inconsistent with the file.
    #[error("{}: corrupt case file: {fault}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        fault: String,
    },
    /// The properties section is not valid JSON of the expected shape.
    #[error("{}: cannot parse the case properties", path.display())]
    Properties {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// `stamp.toml` cannot be parsed.
    #[error("{}: cannot parse the cache stamp", path.display())]
    Stamp {
        /// The stamp file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: toml::de::Error,
    },
    /// A value cannot be serialized (e.g. a NaN in JSON properties).
    #[error("case {case}: cannot serialize {what}: {fault}")]
    Serialize {
        /// Case identifier (or the configuration for the stamp).
        case: String,
        /// What was being serialized.
        what: &'static str,
        /// The serializer's message.
        fault: String,
    },
    /// A previous-stage segmentation (cascade input) is missing, unreadable or misshapen.
    #[error("{}: previous-stage segmentation: {fault}", path.display())]
    PrevStage {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        fault: String,
    },
    /// Only cases with a segmentation can be cached for training.
    #[error("case {case}: the cache holds training cases, and this one has no segmentation")]
    MissingSegmentation {
        /// Case identifier.
        case: String,
    },
}

impl CacheError {
    pub(crate) fn io(path: &std::path::Path, what: &'static str, source: std::io::Error) -> Self {
        CacheError::Io {
            path: path.to_path_buf(),
            what,
            source,
        }
    }
}

#[cfg(test)]
mod tests;
