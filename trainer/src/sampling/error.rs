//! The errors of sampling, augmentation and loading ([`DataError`]), and the boxed error a
//! [`CaseSource`](super::CaseSource) reports.

use thiserror::Error;

/// A boxed error from a [`CaseSource`](super::CaseSource) implementation (file I/O, decoding).
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong sampling, augmenting or loading training batches.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DataError {
    /// A patch size with the wrong number of axes or a zero extent.
    #[error("patch size {patch:?} is invalid: need 2 or 3 axes, each at least 1")]
    PatchSize {
        /// The offending patch size.
        patch: Vec<usize>,
    },
    /// A batch size of zero.
    #[error("batch size must be at least 1")]
    BatchSize,
    /// One batch of crops would take more memory than the ceiling allows (an edited
    /// `patch_size` or `batch_size` in plans.toml).
    #[error("a batch of {batch_size} crops of {crop:?} (z, y, x) {memory}")]
    OverCeiling {
        /// The crop read per sample `(z, y, x)`.
        crop: [usize; 3],
        /// Samples per batch.
        batch_size: usize,
        /// The memory needed (one float32 channel) and the ceiling.
        memory: autoseg_preprocessing::limits::OverCeiling,
    },
    /// The source has no cases to draw from.
    #[error("the training set is empty: no case to sample patches from")]
    NoCases,
    /// The source failed to read a patch.
    #[error("case '{case}': cannot read patch at {lower:?} of size {size:?}")]
    ReadPatch {
        /// Case name.
        case: String,
        /// Lower corner requested `(z, y, x)`.
        lower: [isize; 3],
        /// Size requested `(z, y, x)`.
        size: [usize; 3],
        /// The source's error.
        #[source]
        source: SourceError,
    },
    /// The source returned arrays of another shape than requested.
    #[error("case '{case}': source returned data {data:?} and seg {seg:?} for a {size:?} patch with {n_channels} channels")]
    PatchShape {
        /// Case name.
        case: String,
        /// Size requested `(z, y, x)`.
        size: [usize; 3],
        /// Channels the source declares.
        n_channels: usize,
        /// Shape of the returned data.
        data: Vec<usize>,
        /// Shape of the returned segmentation.
        seg: Vec<usize>,
    },
    /// The pipeline returned samples of another size than the network patch (a validation
    /// pipeline, which does not crop, fed by a sampler whose crop is larger than the patch).
    #[error("augmented samples have spatial shape {found:?}, the network patch is {expected:?}")]
    SampleShape {
        /// The network patch `(z, y, x)`.
        expected: [usize; 3],
        /// The sample's spatial shape.
        found: Vec<usize>,
    },
    /// The pipeline returned samples whose channels do not match the batch (its cascade and
    /// region options disagree with what it produced).
    #[error("augmented samples have {found_data} data channels and targets {found_targets:?}, the batch expects {expected_data} and {expected_targets:?}")]
    SampleChannels {
        /// Data channels the batch holds.
        expected_data: usize,
        /// Data channels of the sample.
        found_data: usize,
        /// Shape `(t, z, y, x)` of each target level the batch holds.
        expected_targets: Vec<Vec<usize>>,
        /// Shape of each target level of the sample.
        found_targets: Vec<Vec<usize>>,
    },
    /// `use_mask_for_norm` does not list one flag per image channel.
    #[error("use_mask_for_norm has {n_flags} entries but the images have {n_channels} channels")]
    MaskFlags {
        /// Entries in `use_mask_for_norm`.
        n_flags: usize,
        /// Image channels.
        n_channels: usize,
    },
    /// A deep-supervision scale that is not in (0, 1].
    #[error("deep-supervision scale {scale:?} is invalid: every entry must be in (0, 1]")]
    DsScale {
        /// The offending scale `(z, y, x)`.
        scale: [f64; 3],
    },
    /// An elastic displacement field whose shape is not `(3, z or 1, y, x)` of the patch.
    #[error("elastic displacement field has shape {found:?}, expected (3, z or 1, y, x) of the patch {patch:?}")]
    ElasticField {
        /// The transform's output patch `(z, y, x)`.
        patch: [usize; 3],
        /// The field's shape.
        found: [usize; 4],
    },
    /// A loader with zero workers or a zero queue depth.
    #[error("data loader needs at least one worker and a queue depth of at least one (got {n_workers} workers, depth {queue_depth})")]
    LoaderSettings {
        /// Requested workers.
        n_workers: usize,
        /// Requested queue depth.
        queue_depth: usize,
    },
    /// A worker thread stopped (it panicked); no more batches will come.
    #[error("data loader worker {worker_idx} stopped unexpectedly")]
    WorkerStopped {
        /// Index of the worker.
        worker_idx: usize,
    },
    /// A worker thread could not be started.
    #[error("cannot start data loader worker {worker_idx}")]
    SpawnWorker {
        /// Index of the worker.
        worker_idx: usize,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}
