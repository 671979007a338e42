//! The inference crate's error: a bad request (shapes, step, mirror axes), a model that
//! misbehaves, or a libtorch failure.

use autoseg_network::NetworkError;
use thiserror::Error;

/// Why a prediction could not be made.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum InferenceError {
    /// The tile step is not in `(0, 1]` (a fraction of the patch size).
    #[error("tile step {step} is not in (0, 1]")]
    InvalidStep {
        /// The step given.
        step: f64,
    },
    /// The patch has a zero size, or neither 2 nor 3 axes.
    #[error("patch {patch:?} is invalid: it needs 2 or 3 axes, each at least 1")]
    InvalidPatch {
        /// The patch given.
        patch: Vec<usize>,
    },
    /// The patch's Gaussian map (and so each tile) would pass the memory ceiling (an edited
    /// `patch_size` in plans.toml).
    #[error("patch {patch:?}: its Gaussian weight map {memory}")]
    PatchOverCeiling {
        /// The patch given.
        patch: Vec<usize>,
        /// The memory needed and the ceiling.
        memory: autoseg_preprocessing::limits::OverCeiling,
    },
    /// Image and patch disagree in their number of axes, or the image is smaller than the patch
    /// where it must not be (step computation runs on padded images).
    #[error("image of size {image:?} does not fit patch {patch:?}: {reason}")]
    ImagePatchMismatch {
        /// Spatial size of the image.
        image: Vec<usize>,
        /// The patch.
        patch: Vec<usize>,
        /// What is wrong, in words.
        reason: &'static str,
    },
    /// The input is not a `[c, z, y, x]` tensor.
    #[error("input of shape {shape:?} is not [c, z, y, x]")]
    InputShape {
        /// Shape of the input tensor.
        shape: Vec<i64>,
    },
    /// A mirror axis is out of range for the patch, or repeated.
    #[error("mirror axes {axes:?} are invalid for a {n_axes}-axis patch")]
    InvalidMirrorAxes {
        /// The axes given (patch axes, 0 = first spatial axis).
        axes: Vec<usize>,
        /// Axes of the patch.
        n_axes: usize,
    },
    /// The tile batch size is zero.
    #[error("tile batch size must be at least 1")]
    ZeroTileBatch,
    /// A model returned logits of an unexpected shape.
    #[error("model returned logits of shape {found:?}, expected [{batch}, n_classes, {patch:?}]")]
    ModelOutputShape {
        /// Shape returned.
        found: Vec<i64>,
        /// Tiles in the batch.
        batch: i64,
        /// The patch.
        patch: Vec<i64>,
    },
    /// Models of an ensemble disagree on the shape of their logits.
    #[error("ensemble member {index} returned logits of shape {found:?}, member 0 {expected:?}")]
    EnsembleShapeMismatch {
        /// Index of the disagreeing member.
        index: usize,
        /// Shape of member 0's logits.
        expected: Vec<i64>,
        /// Shape of this member's logits.
        found: Vec<i64>,
    },
    /// An ensemble with no member.
    #[error("an ensemble needs at least one model")]
    EmptyEnsemble,
    /// The accumulated logits overflowed (nnU-Net raises the same: reduce the Gaussian's value
    /// scaling or accumulate in float32).
    #[error(
        "the accumulated logits contain inf (float16 overflow); accumulate in float32 instead (predict --accumulate-fp32)"
    )]
    InfiniteLogits,
    /// A label map holds a value outside `0..=65535`.
    #[error("label value {value} does not fit u16")]
    LabelOutOfRange {
        /// The offending value.
        value: i64,
    },
    /// The number of region channels differs from the number of region labels.
    #[error("logits have {found} channels, regions_class_order has {expected} entries")]
    RegionCount {
        /// Entries of `regions_class_order`.
        expected: usize,
        /// Channels of the logits.
        found: usize,
    },
    /// A tensor could not become an array of the requested dimension.
    #[error("tensor of shape {shape:?} cannot become a {ndim}-D array")]
    ArrayShape {
        /// Shape of the tensor.
        shape: Vec<i64>,
        /// Dimensions wanted.
        ndim: usize,
    },
    /// Resampling logits failed.
    #[error("resampling: {0}")]
    Resample(#[from] autoseg_preprocessing::resample::ResampleError),
    /// The network failed.
    #[error("network: {0}")]
    Network(#[from] NetworkError),
    /// libtorch reported an error (e.g. out of memory).
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}
