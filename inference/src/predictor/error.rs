//! The predictor's error: every variant names the file, fold or case involved.

use std::io;
use std::path::{Path, PathBuf};

use autoseg_evaluation::{EvaluationError, FindBestError, FolderError, NpzError};
use autoseg_network::NetworkError;
use autoseg_planner::PlanError;
use autoseg_preprocessing::{CacheError, DatasetError, ImageError, PreprocessError};
use thiserror::Error;

use crate::{ExportError, InferenceError};

/// Why a model could not be loaded or a case not be predicted.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PredictError {
    /// No fold was asked for.
    #[error("no fold to predict with")]
    NoFolds,
    /// A requested fold has no final checkpoint.
    #[error("{}: checkpoint missing (was this fold trained to the end?)", path.display())]
    MissingCheckpoint {
        /// The missing file.
        path: PathBuf,
    },
    /// A file could not be read, written or listed.
    #[error("{}: cannot {action}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A checkpoint cannot be read or does not fit (schema, configuration, digest, tensors).
    #[error(transparent)]
    Checkpoint(Box<NetworkError>),
    /// The folds of one ensemble were trained with different plans, channels or classes.
    #[error("{}: its plans, channels or classes differ from the first fold's", path.display())]
    FoldsDiffer {
        /// The metadata of the fold that differs.
        path: PathBuf,
    },
    /// The dataset's channels or outputs are not the network's.
    #[error(
        "{}: the network takes {network_channels} channels and predicts {network_classes} classes, \
         but dataset.json declares {dataset_channels} channels{} and {dataset_heads} outputs",
        path.display(),
        if *with_previous_stage { " (with the previous stage's one-hot labels)" } else { "" }
    )]
    DatasetMismatch {
        /// The checkpoint's metadata.
        path: PathBuf,
        /// Input channels of the network.
        network_channels: usize,
        /// Outputs of the network.
        network_classes: usize,
        /// Channels the dataset gives (plus a cascade's one-hot channels).
        dataset_channels: usize,
        /// Segmentation heads the dataset declares.
        dataset_heads: usize,
        /// Whether `dataset_channels` counts a previous stage's one-hot labels.
        with_previous_stage: bool,
    },
    /// The plans stored with a checkpoint (or `plans.toml`) do not resolve the configuration.
    #[error("{}: the plans cannot resolve the configuration", path.display())]
    Plan {
        /// The file the plans came from.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<PlanError>,
    },
    /// A configuration with a next stage is not 3D.
    #[error("{}: {configuration} has a next stage but is not 3D", path.display())]
    NextStageNot3d {
        /// The plans.
        path: PathBuf,
        /// The configuration.
        configuration: String,
    },
    /// A cascade stage was given a case prepared without its images (see
    /// [`crate::Predictor::preprocessor`]).
    #[error("case {case}: a cascade stage needs the case's images; prepare it with this predictor's preprocessor")]
    CascadeInput {
        /// Case identifier.
        case: String,
    },
    /// The network of a checkpoint cannot be built.
    #[error("{}: cannot build the network", path.display())]
    Network {
        /// The metadata file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: NetworkError,
    },
    /// `dataset.json` cannot be read.
    #[error(transparent)]
    Dataset(Box<DatasetError>),
    /// An input file is not named `CASE_XXXX<file_ending>`.
    #[error("{}: not named CASE_XXXX{file_ending} (XXXX: the channel, e.g. 0000)", path.display())]
    Misnamed {
        /// The file.
        path: PathBuf,
        /// The dataset's file ending.
        file_ending: String,
    },
    /// The input folder holds no case.
    #[error("{}: no CASE_XXXX{file_ending} image files and no DICOM series folders", path.display())]
    NoCases {
        /// The input folder.
        path: PathBuf,
        /// The dataset's file ending.
        file_ending: String,
    },
    /// A case was given without image files.
    #[error("a case needs at least one image file")]
    NoImages,
    /// The next stage's preprocessed case, whose grid a first stage's validation writes on, is
    /// missing.
    #[error("{}: the next stage's preprocessed case is missing; preprocess that configuration first (`autoseg preprocess`, which plan-and-train runs)", path.display())]
    MissingNextStageCase {
        /// The missing cache file.
        path: PathBuf,
    },
    /// Preprocessing a case failed.
    #[error(transparent)]
    Preprocess(Box<PreprocessError>),
    /// Reading a preprocessed case failed.
    #[error(transparent)]
    Cache(Box<CacheError>),
    /// The sliding window or the ensemble failed.
    #[error("case {case}: prediction failed")]
    Inference {
        /// Case identifier.
        case: String,
        /// The cause.
        #[source]
        source: InferenceError,
    },
    /// Export failed.
    #[error(transparent)]
    Export(Box<ExportError>),
    /// Writing a mask failed.
    #[error(transparent)]
    WriteMask(Box<ImageError>),
    /// Writing probabilities failed.
    #[error(transparent)]
    Npz(Box<NpzError>),
    /// Evaluating the validation predictions failed.
    #[error(transparent)]
    Evaluation(Box<FolderError>),
    /// `results/best.toml` could not be read.
    #[error(transparent)]
    Best(Box<FindBestError>),
    /// Writing `summary.json` failed.
    #[error("{}: cannot write the summary", path.display())]
    Summary {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: EvaluationError,
    },
    /// The prediction options are invalid.
    #[error("invalid prediction options")]
    Options(#[source] InferenceError),
    /// libtorch failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// An nnU-Net model folder autoseg cannot run (yet).
    #[error("{}: {what}", path.display())]
    NnUnet {
        /// The file at fault.
        path: PathBuf,
        /// What is not supported.
        what: String,
    },
}

/// `From` for the boxed sources, so that `?` boxes them.
macro_rules! boxed_from {
    ($($variant:ident: $source:ty),* $(,)?) => {$(
        impl From<$source> for PredictError {
            fn from(source: $source) -> PredictError {
                PredictError::$variant(Box::new(source))
            }
        }
    )*};
}

boxed_from!(
    Checkpoint: NetworkError,
    Dataset: DatasetError,
    Preprocess: PreprocessError,
    Cache: CacheError,
    Export: ExportError,
    WriteMask: ImageError,
    Npz: NpzError,
    Evaluation: FolderError,
    Best: FindBestError,
);

/// Maps an I/O error on `path` while doing `action`.
pub(crate) fn io_err<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(io::Error) -> PredictError + 'a {
    move |source| PredictError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}
