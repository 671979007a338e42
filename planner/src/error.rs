//! The planner's single error type. Every variant names the value, case or configuration at
//! fault, so a message read from a hand-edited `plans.toml` points at the line to fix.

/// Everything that can go wrong while building a fingerprint, planning, or reading plans.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The fingerprint lists no cases.
    #[error("fingerprint has no cases")]
    EmptyFingerprint,
    /// Per-case lists of the fingerprint differ in length.
    #[error("fingerprint lists {n_spacings} spacings but {n_shapes} shapes after cropping")]
    CaseCountMismatch {
        /// Number of spacings.
        n_spacings: usize,
        /// Number of shapes.
        n_shapes: usize,
    },
    /// A case's spacing is not a positive finite number.
    #[error(
        "fingerprint case {case}: spacing {spacing:?} must be positive and finite on every axis"
    )]
    InvalidSpacing {
        /// Index of the case in the fingerprint.
        case: usize,
        /// The offending spacing (z, y, x).
        spacing: [f64; 3],
    },
    /// A case's cropped shape has an empty axis.
    #[error("fingerprint case {case}: shape after cropping {shape:?} has an empty axis")]
    EmptyShape {
        /// Index of the case in the fingerprint.
        case: usize,
        /// The offending shape (z, y, x).
        shape: [usize; 3],
    },
    /// `median_relative_size_after_cropping` is outside `[0, 1]`.
    #[error("fingerprint: median_relative_size_after_cropping {0} must lie in [0, 1]")]
    InvalidRelativeSize(f64),
    /// The dataset description is unusable for planning.
    #[error("dataset {dataset}: {fault}")]
    InvalidDataset {
        /// Dataset name.
        dataset: String,
        /// What is wrong.
        fault: String,
    },
    /// Fingerprint and dataset disagree on the number of image channels.
    #[error(
        "dataset {dataset}: dataset.json declares {n_channels} channels but the fingerprint has \
         intensity properties for {n_fingerprint}"
    )]
    ChannelCountMismatch {
        /// Dataset name.
        dataset: String,
        /// Channels in `DatasetInfo`.
        n_channels: usize,
        /// Channels in the fingerprint.
        n_fingerprint: usize,
    },
    /// A planner setting is out of range.
    #[error("planner setting {setting} = {value} is invalid: {reason}")]
    InvalidSetting {
        /// Setting name.
        setting: &'static str,
        /// The value given, formatted.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// After resampling to the target spacing the median image has an empty axis.
    #[error("median image shape {shape:?} at target spacing {spacing:?} has an empty axis")]
    EmptyMedianShape {
        /// Median shape (transposed) after resampling.
        shape: Vec<f64>,
        /// Target spacing (transposed).
        spacing: Vec<f64>,
    },
    /// No patch size fits the GPU-memory budget.
    #[error(
        "configuration {configuration}: no patch fits the GPU memory budget (reference \
         {reference:.0}); patch shrank to {patch:?} with estimate {estimate}"
    )]
    BudgetTooSmall {
        /// Configuration being planned.
        configuration: String,
        /// Last patch tried.
        patch: Vec<usize>,
        /// Its estimate.
        estimate: u64,
        /// The reference value it had to reach.
        reference: f64,
    },
    /// A patch size has a different number of axes than the network.
    #[error("patch size {patch:?} has {} axes but the network is {n_axes}D", patch.len())]
    PatchDimMismatch {
        /// The patch size given.
        patch: Vec<usize>,
        /// Spatial axes of the network.
        n_axes: usize,
    },
    /// `plans.toml` could not be parsed.
    #[error("plans.toml: {0}")]
    ParsePlans(#[source] toml::de::Error),
    /// `fingerprint.toml` could not be parsed.
    #[error("fingerprint.toml: {0}")]
    ParseFingerprint(#[source] toml::de::Error),
    /// Serialising to TOML failed.
    #[error("cannot write {what} as TOML")]
    Serialize {
        /// Which artifact.
        what: &'static str,
        /// The serializer's error.
        #[source]
        source: toml::ser::Error,
    },
    /// The artifact was written by an incompatible version.
    #[error("{what}: schema_version {found} is not supported (this build reads {supported})")]
    UnsupportedSchemaVersion {
        /// Which artifact.
        what: &'static str,
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// A requested configuration is not in the plans.
    #[error("configuration {name} is not in the plans (available: {available:?})")]
    UnknownConfiguration {
        /// The requested name.
        name: String,
        /// Names present.
        available: Vec<String>,
    },
    /// `inherits_from` links form a cycle.
    #[error("configuration {name}: inherits_from forms a cycle: {}", chain.join(" -> "))]
    InheritanceCycle {
        /// The configuration being resolved.
        name: String,
        /// The chain of names, ending with the repeated one.
        chain: Vec<String>,
    },
    /// A resolved configuration lacks a required key.
    #[error("configuration {configuration}: missing key {key} (also after inherits_from)")]
    MissingKey {
        /// Configuration name.
        configuration: String,
        /// The missing key.
        key: &'static str,
    },
    /// `previous_stage` links form a cycle.
    #[error("configuration {name}: previous_stage links form a cycle: {}", chain.join(" -> "))]
    StageCycle {
        /// The configuration being ordered.
        name: String,
        /// The chain of names, ending with the repeated one.
        chain: Vec<String>,
    },
    /// An artifact does not exist yet: the hint says which command makes it.
    #[error("{}: not found; {hint}", path.display())]
    MissingArtifact {
        /// The file looked for.
        path: std::path::PathBuf,
        /// What to run first.
        hint: &'static str,
    },
    /// Another run holds the work folder's lock ([`crate::WorkLock`]).
    #[error("{}: in use by {holder}; wait for that run to finish or stop it (its lock is released when it ends), or use another --work folder", folder.display())]
    InUse {
        /// The work folder.
        folder: std::path::PathBuf,
        /// Who holds it, as the lock file says (e.g. `process 4242 (autoseg train)`).
        holder: String,
    },
    /// An artifact could not be read or written.
    #[error("{}: cannot {action}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What was being done.
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An artifact was read but its content is not usable.
    #[error("{}: cannot use this file", path.display())]
    InFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: Box<PlanError>,
    },
    /// nnU-Net plans (`nnUNetPlans.json`, a model's `plans.json`) autoseg cannot use.
    #[error("nnU-Net plans: {what}")]
    NnUnetPlans {
        /// What is wrong or not implemented, naming the key.
        what: String,
    },
    /// Plans moved to a dataset with another number of image channels.
    #[error(
        "the plans of {source_dataset} are for {n_plans} image channel(s) ({what}) but \
         {target_dataset} has {n_target}: plans (and pretrained weights) move only between \
         datasets with the same input channels"
    )]
    TransferChannels {
        /// The dataset the plans were made for.
        source_dataset: String,
        /// The dataset they were to be used for.
        target_dataset: String,
        /// Channels in the plans.
        n_plans: usize,
        /// Channels of the target dataset.
        n_target: usize,
        /// Which part of the plans has `n_plans` entries.
        what: String,
    },
    /// A resolved configuration has inconsistent or out-of-range values.
    #[error("configuration {configuration}: {fault}")]
    InvalidConfiguration {
        /// Configuration name.
        configuration: String,
        /// What is wrong, naming the keys.
        fault: String,
    },
    /// `--trainer` names no nnU-Net trainer autoseg reproduces.
    #[error("{}; the nnU-Net trainers autoseg reproduces: {known}", match not_yet {
        Some(what) => format!("nnU-Net's {name} changes {what}, which autoseg does not reproduce yet"),
        None => format!("unknown trainer {name:?}"),
    })]
    UnknownTrainer {
        /// The name given.
        name: String,
        /// What the trainer changes, when it is an nnU-Net trainer autoseg knows but lacks.
        not_yet: Option<String>,
        /// The names that work, comma-separated.
        known: String,
    },
}
