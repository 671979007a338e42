//! What can be wrong with a checkpoint, as data ([`CheckpointFault`]), so callers can match
//! on the fault and the message names the numbers.

use std::fmt;

use super::format::{FileDigest, CHECKPOINT_SCHEMA_VERSION};

/// The first parameter of a network that pretrained weights do not fit (in name order).
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterMismatch {
    /// Parameter name.
    pub name: String,
    /// Its shape in the file, `None` when the file lacks it.
    pub found: Option<Vec<i64>>,
    /// Its shape in the network.
    pub expected: Vec<i64>,
}

impl fmt::Display for ParameterMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ParameterMismatch {
            name,
            found,
            expected,
        } = self;
        match found {
            None => write!(
                f,
                "'{name}' (shape {expected:?} in the network) is missing from the file"
            ),
            Some(found) => write!(
                f,
                "'{name}' has shape {found:?} in the file, {expected:?} in the network"
            ),
        }
    }
}

/// What is wrong with a checkpoint.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CheckpointFault {
    /// The metadata file does not exist.
    Missing,
    /// Written by another layout version.
    SchemaVersion {
        /// The version in the file.
        found: u32,
    },
    /// Trained for another configuration than asked for.
    Configuration {
        /// The configuration in the file.
        found: String,
        /// The one asked for.
        expected: String,
    },
    /// The seed is not a decimal `u64`.
    Seed(String),
    /// A tensor file does not match the digest its metadata records.
    Digest {
        /// The file's digest.
        found: FileDigest,
        /// The metadata's.
        expected: FileDigest,
    },
    /// A tensor in the file is not a parameter of the network.
    UnexpectedTensor(String),
    /// Parameters of the network that the file lacks.
    MissingTensors(Vec<String>),
    /// The tensor file is not a valid safetensors file (the words say what is wrong).
    NotSafetensors(String),
    /// Pretrained weights with a parameter of the network (other than a segmentation head)
    /// missing or of another shape (boxed, so the fault stays as small as before).
    PretrainedMismatch(Box<ParameterMismatch>),
    /// A file given as pretrained weights that is neither an nnU-Net checkpoint (`.pth`) nor the
    /// weights or metadata file of an autoseg checkpoint.
    NotPretrainedWeights,
    /// A tensor's shape is not its parameter's.
    Shape {
        /// Parameter name.
        name: String,
        /// Shape in the file.
        found: Vec<i64>,
        /// Shape of the parameter.
        expected: Vec<i64>,
    },
}

impl fmt::Display for CheckpointFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointFault::Missing => {
                write!(f, "checkpoint missing (was this fold trained to the end?)")
            }
            CheckpointFault::SchemaVersion { found } => write!(
                f,
                "schema_version {found} is not supported (this build reads \
                 {CHECKPOINT_SCHEMA_VERSION})"
            ),
            CheckpointFault::Configuration { found, expected } => {
                write!(f, "trained configuration {found}, not {expected}")
            }
            CheckpointFault::Seed(seed) => write!(f, "seed '{seed}' is not a u64"),
            CheckpointFault::Digest { found, expected } => write!(
                f,
                "does not match its metadata ({} bytes, hash {}; the metadata says {} bytes, \
                 hash {}): the checkpoint was interrupted while being written or was modified",
                found.bytes, found.hash, expected.bytes, expected.hash
            ),
            CheckpointFault::NotSafetensors(what) => {
                write!(f, "not a valid safetensors file: {what}")
            }
            CheckpointFault::UnexpectedTensor(name) => {
                write!(f, "tensor '{name}' is not a parameter of this network")
            }
            CheckpointFault::MissingTensors(names) => {
                write!(f, "parameters missing from the file: {names:?}")
            }
            CheckpointFault::PretrainedMismatch(mismatch) => write!(
                f,
                "pretrained weights do not fit this network: {mismatch}; every parameter but \
                 the segmentation heads (.seg_layers.) must be in the file with the same shape: \
                 train with the plans the weights were trained with (plan --plans-from) and the \
                 same input channels"
            ),
            CheckpointFault::NotPretrainedWeights => write!(
                f,
                "not a checkpoint to start from: give an nnU-Net checkpoint (.pth) or an autoseg \
                 fold's checkpoint_final, checkpoint_best or checkpoint_latest (.safetensors or \
                 .toml)"
            ),
            CheckpointFault::Shape {
                name,
                found,
                expected,
            } => write!(
                f,
                "'{name}' has shape {found:?}, the network expects {expected:?}"
            ),
        }
    }
}
