//! The training loop's error: every failure names the file, configuration, fold or case.

use std::path::PathBuf;

use autoseg_network::NetworkError;
use autoseg_planner::PlanError;
use thiserror::Error;

use crate::loss::LossError;
use crate::optim::OptimError;
use crate::sampling::{DataError, SourceError};
use crate::splits::SplitError;

/// Why training a fold failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The configuration cannot be resolved from the plans.
    #[error("configuration '{configuration}': invalid plan")]
    Plan {
        /// Configuration name.
        configuration: String,
        /// The planner's error (boxed: it is large).
        #[source]
        source: Box<PlanError>,
    },
    /// The job itself is inconsistent (e.g. fewer than two classes).
    #[error("configuration '{configuration}': {fault}")]
    Job {
        /// Configuration name.
        configuration: String,
        /// What is wrong.
        fault: String,
    },
    /// A stop was asked for (a signal): the loop finished its iteration and wrote
    /// `checkpoint_latest`, from which `--resume` goes on exactly.
    #[error(
        "training '{configuration}' fold {fold} stopped on request {where_}; checkpoint_latest \
         in {} holds it", fold_dir.display()
    )]
    Stopped {
        /// Configuration name.
        configuration: String,
        /// Fold.
        fold: String,
        /// The fold's folder.
        fold_dir: std::path::PathBuf,
        /// Where it stopped, e.g. `after iteration 12 of epoch 3`.
        where_: String,
        /// The exit code the stop asked for (130 for SIGINT, 143 for SIGTERM).
        exit_code: u8,
    },
    /// A stopped run cannot be resumed as recorded.
    #[error("cannot resume: {fault}")]
    Resume {
        /// Why, and what to do.
        fault: String,
    },
    /// The requested CUDA device does not exist.
    #[error("device {device} is not available: libtorch sees {n_devices} CUDA device(s); use --device cpu")]
    Device {
        /// The device asked for.
        device: String,
        /// CUDA devices libtorch can use.
        n_devices: i64,
    },
    /// The network cannot be built or run.
    #[error("network: {0}")]
    Network(#[from] NetworkError),
    /// The loss failed.
    #[error(transparent)]
    Loss(#[from] LossError),
    /// The optimiser failed.
    #[error(transparent)]
    Optim(#[from] OptimError),
    /// The data-parallel group failed (a rank died or hangs, or the ranks cannot meet).
    #[error(transparent)]
    Distributed(#[from] crate::distributed::DistError),
    /// Sampling, augmentation or the loader failed.
    #[error("training data: {0}")]
    Data(#[from] DataError),
    /// The training cases cannot be opened.
    #[error("cannot open the {which} cases of fold {fold}")]
    Cases {
        /// `"training"` or `"validation"`.
        which: &'static str,
        /// The fold.
        fold: String,
        /// The case store's error.
        #[source]
        source: SourceError,
    },
    /// A fold without training or validation cases.
    #[error("fold {fold} has no {which} cases")]
    EmptyFold {
        /// The fold.
        fold: String,
        /// `"training"` or `"validation"`.
        which: &'static str,
    },
    /// `splits.toml` cannot be made, read or used.
    #[error("{}: splits", path.display())]
    Splits {
        /// The splits file.
        path: PathBuf,
        /// The splits error.
        #[source]
        source: SplitError,
    },
    /// A file or folder cannot be read or written.
    #[error("{}: cannot {what}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The pretrained weights a fresh run starts from cannot be used.
    #[error("cannot start from the pretrained weights {}", file.display())]
    Pretrained {
        /// The file given.
        file: PathBuf,
        /// Why (the parameter that does not fit, or why the file cannot be read).
        #[source]
        source: Box<NetworkError>,
    },
    /// The progress plot cannot be drawn.
    #[error("{}: cannot draw the progress plot: {fault}", path.display())]
    Plot {
        /// The image file.
        path: PathBuf,
        /// The plotting library's message.
        fault: String,
    },
    /// A cache the fold needs cannot be brought up to date.
    #[error("cannot preprocess {configuration}")]
    Preprocess {
        /// The configuration whose cache failed.
        configuration: String,
        /// The cause.
        #[source]
        source: Box<autoseg_preprocessing::PreprocessError>,
    },
    /// The final validation of a trained fold failed.
    #[error("final validation of {configuration} fold {fold} failed")]
    Validation {
        /// Configuration trained.
        configuration: String,
        /// The fold.
        fold: String,
        /// The cause.
        #[source]
        source: Box<autoseg_inference::PredictError>,
    },
    /// A label value does not fit the preprocessed cache's `i16`.
    #[error("label {label} is above 32767, the largest the preprocessed cache holds")]
    LabelTooLarge {
        /// The label.
        label: u16,
    },
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

impl TrainError {
    pub(crate) fn io(path: &std::path::Path, what: &'static str, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.to_path_buf(),
            what,
            source,
        }
    }
}
