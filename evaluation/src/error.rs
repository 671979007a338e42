//! The one error type of `autoseg-evaluation`: every variant names the case, file or value at
//! fault.

use std::path::PathBuf;

/// Everything that can go wrong while evaluating, summarising, postprocessing or ensembling.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvaluationError {
    /// The prediction and the reference of one case do not have the same shape.
    #[error(
        "case {case}: prediction shape {prediction:?} differs from reference shape {reference:?} \
         (axis order z, y, x)"
    )]
    ShapeMismatch {
        /// The prediction file (or case name) of the pair.
        case: String,
        /// Shape of the reference label map.
        reference: [usize; 3],
        /// Shape of the predicted label map.
        prediction: [usize; 3],
    },
    /// A voxel spacing is not a finite positive number.
    #[error("case {case}: spacing {spacing:?} must be finite and > 0 on every axis (z, y, x)")]
    InvalidSpacing {
        /// The prediction file (or case name) of the pair.
        case: String,
        /// The spacing given, in mm.
        spacing: [f64; 3],
    },
    /// The normalized-surface-Dice tolerance is negative or not finite.
    #[error("normalized surface Dice tolerance {tolerance_mm} mm must be finite and >= 0")]
    InvalidTolerance {
        /// The tolerance given, in mm.
        tolerance_mm: f64,
    },
    /// Evaluation was asked for without any label or region.
    #[error("no labels or regions to evaluate")]
    NoClasses,
    /// A region lists no label.
    #[error("region {key} lists no label")]
    EmptyRegion {
        /// The region's summary key.
        key: String,
    },
    /// An operation that needs at least one case got none.
    #[error("no cases to {what}")]
    NoCases {
        /// What was to be done with the cases.
        what: &'static str,
    },
    /// A `summary.json` key is neither a label (`"1"`) nor a region (`"(1, 2)"`).
    #[error("'{key}' is neither a label such as \"1\" nor a region such as \"(1, 2)\"")]
    InvalidClassKey {
        /// The key as written.
        key: String,
    },
    /// A metric name in a `summary.json` is not one autoseg knows.
    #[error("unknown metric '{name}' (known: {known:?})")]
    UnknownMetric {
        /// The name as written.
        name: String,
        /// Every metric name autoseg reads and writes.
        known: Vec<&'static str>,
    },
    /// A `summary.json` is not JSON (with Python's `NaN`/`Infinity` tokens).
    #[error("{what}: not valid JSON")]
    Json {
        /// The file (or "summary text") being read.
        what: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// A `summary.json` is JSON but does not follow nnU-Net's summary schema.
    #[error("{what}: {fault}")]
    SummarySchema {
        /// The file (or "summary text") being read.
        what: String,
        /// What is missing or of the wrong type, with its JSON path.
        fault: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {action} failed", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// "read", "write" or "rename".
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A postprocessing plan could not be turned into TOML or read back from it.
    #[error("postprocessing plan: {0}")]
    Toml(String),
    /// Ensembling was asked for without any member.
    #[error("no probability maps to average")]
    EmptyEnsemble,
    /// Two ensemble members' probability maps have different shapes.
    #[error(
        "ensemble member {index}: probability shape {found:?} differs from member 0's {expected:?}"
    )]
    EnsembleShapeMismatch {
        /// Index of the offending member in the input list.
        index: usize,
        /// Shape of member 0, `(c, z, y, x)`.
        expected: [usize; 4],
        /// Shape of the offending member.
        found: [usize; 4],
    },
    /// The channel count of a probability or logit map does not match the segmentation rule.
    #[error("map has {found} channels but the rule needs {expected} (regions_class_order length)")]
    ChannelCount {
        /// Channels the rule needs.
        expected: usize,
        /// Channels the map has.
        found: usize,
    },
    /// The argmax channel index does not fit in a `u16` label.
    #[error("map has {found} channels; labels must fit in u16")]
    TooManyChannels {
        /// Channels the map has.
        found: usize,
    },
    /// nnU-Net's `postprocessing.pkl` holds something autoseg does not apply.
    #[error("{}: {what}", path.display())]
    NnUnetPostprocessing {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Choosing the best configuration needs at least one candidate.
    #[error("no candidate configurations to choose from")]
    NoCandidates,
}
