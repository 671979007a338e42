//! The network crate's error: a bad architecture, a bad input shape, a checkpoint that cannot
//! be read or written, or a libtorch failure.

use std::path::PathBuf;

use thiserror::Error;

use crate::checkpoint::fault::CheckpointFault;

/// Why a network could not be built or run.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// A U-Net needs an encoder stage and a bottleneck at least.
    #[error("architecture: {n_stages} stage(s); a U-Net needs at least 2")]
    TooFewStages {
        /// Number of stages given.
        n_stages: usize,
    },
    /// A kernel, stride or patch has the wrong number of axes for the configuration.
    #[error("architecture: stage {stage_idx} {what} has {len} axes, expected {expected}")]
    AxisCount {
        /// Stage index (0 = highest resolution).
        stage_idx: usize,
        /// `"kernel"` or `"stride"`.
        what: &'static str,
        /// Axes given.
        len: usize,
        /// Axes expected (2 or 3).
        expected: usize,
    },
    /// A size that must be positive is zero.
    #[error("architecture: stage {stage_idx} has a zero {what}")]
    ZeroSize {
        /// Stage index (0 = highest resolution).
        stage_idx: usize,
        /// `"kernel"`, `"stride"`, `"features"`, `"n_convs"` or `"n_convs_decoder"`.
        what: &'static str,
    },
    /// A stage above the bottleneck has no decoder convolution count.
    #[error("architecture: stage {stage_idx} is not the bottleneck but has no n_convs_decoder")]
    MissingDecoderConvs {
        /// Stage index (0 = highest resolution).
        stage_idx: usize,
    },
    /// A patch size has the wrong number of axes.
    #[error("patch {patch:?} has {} axes, the architecture has {expected}", patch.len())]
    PatchAxes {
        /// The patch given.
        patch: Vec<usize>,
        /// Axes expected (2 or 3).
        expected: usize,
    },
    /// The input tensor does not fit the network.
    #[error("input of shape {shape:?} does not fit the network: expected {expected}")]
    InputShape {
        /// Shape of the input tensor.
        shape: Vec<i64>,
        /// What the network needs, in words.
        expected: String,
    },
    /// A checkpoint file does not fit (missing, another schema, a digest, a tensor).
    #[error("{}: {fault}", path.display())]
    Checkpoint {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        fault: CheckpointFault,
    },
    /// A checkpoint's metadata is not valid TOML of the expected layout.
    #[error("{}: not a readable checkpoint metadata file", path.display())]
    CheckpointMeta {
        /// The metadata file.
        path: PathBuf,
        /// The parser's error, naming the key.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A checkpoint's metadata cannot be serialised.
    #[error("{}: cannot serialise the checkpoint metadata", path.display())]
    SerializeMeta {
        /// The metadata file.
        path: PathBuf,
        /// The serialiser's error.
        #[source]
        source: toml::ser::Error,
    },
    /// A checkpoint file could not be read or written.
    #[error("{}: cannot {action}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A `torch.save` archive that cannot be read (not a zip, a storage of the wrong size, a
    /// view past its storage).
    #[error("{}: {what}", path.display())]
    TorchFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The pickle inside a torch file was refused (a forbidden global: nothing was run).
    #[error("{}: {source}", path.display())]
    Pickle {
        /// The file.
        path: PathBuf,
        /// Why.
        source: autoseg_planner::pickle::PickleError,
    },
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}
