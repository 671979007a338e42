//! `autoseg-evaluation`: how good a segmentation is, and which model to keep.
//!
//! Owns metrics per class/region and case (Dice, IoU, sensitivity, specificity, surface
//! distances), `summary.json`, connected components and postprocessing, probability averaging
//! for ensembles, the best-configuration search and the HTML report.
//!
//! Must not: depend on libtorch or run networks; it reads predictions and references only.
//!
//! # Overview
//! - [`evaluate_case`] / [`evaluate_cases`]: nnU-Net's metrics (TP, FP, FN, TN, `n_pred`,
//!   `n_ref`, Dice, IoU; NaN when a class is absent from both maps) plus sensitivity,
//!   specificity, precision, relative volume difference and, on request, HD95, ASSD and
//!   normalized surface Dice in mm (exact anisotropic distance transform; conventions in
//!   [`SurfaceMetrics`]). Ignore-label voxels count nowhere. Cases run in parallel.
//! - [`Summary`]: nnU-Net's `summary.json` (`foreground_mean`, `mean` keyed `"1"` or
//!   `"(1, 2)"`, `metric_per_case`), written with Python's `NaN`/`Infinity` tokens and read
//!   back; [`format_table`] renders it for a terminal.
//! - [`label_components`], [`keep_largest_component`] and friends: 26-connected components.
//! - [`determine_postprocessing`] / [`apply_postprocessing`]: nnU-Net's postprocessing choice.
//! - [`average_probabilities`], [`probabilities_to_segmentation`]: configuration ensembles.
//! - [`choose_best`]: the best configuration or ensemble by foreground Dice.
//! - [`evaluate_folder`] / [`ensemble_folders`]: folders of NIfTI masks and probability files
//!   ([`read_probabilities`], [`ProbabilityProperties`]: `<case>.npz` + `<case>.props.toml`).
//!
//! Arrays are `(z, y, x)` (probabilities `(c, z, y, x)`), spacings `(z, y, x)` in mm.
//!
//! # Example
//! ```
//! use autoseg_evaluation::{
//!     evaluate_cases, CaseInput, EvaluationSettings, LabelValue, Metric, SurfaceSettings,
//! };
//! use ndarray::{s, Array3};
//!
//! // Two 8³ cubes, the prediction shifted by 4 voxels along x: half of each overlaps.
//! let mut reference = Array3::<u8>::zeros((16, 16, 20));
//! reference.slice_mut(s![4..12, 4..12, 4..12]).fill(1);
//! let mut prediction = Array3::<u8>::zeros((16, 16, 20));
//! prediction.slice_mut(s![4..12, 4..12, 8..16]).fill(1);
//! let case = CaseInput {
//!     prediction_file: "case_000.nii.gz".into(),
//!     reference_file: "case_000.nii.gz".into(),
//!     prediction: prediction.view(),
//!     reference: reference.view(),
//!     spacing: [1.0, 1.0, 1.0],
//! };
//! let settings = EvaluationSettings {
//!     classes: vec![LabelValue::Single(1)],
//!     ignore_label: None,
//!     surface: Some(SurfaceSettings { nsd_tolerance_mm: 1.0 }),
//! };
//! let summary = evaluate_cases(&[case], &settings)?;
//! assert_eq!(summary.foreground_dice(), 0.5);
//! assert_eq!(summary.foreground_mean[&Metric::Hd95], 4.0);
//! let json = summary.to_json(); // nnU-Net's summary.json layout
//! assert!(json.contains("\"foreground_mean\""));
//! # Ok::<(), autoseg_evaluation::EvaluationError>(())
//! ```

mod boxes;
mod classes;
mod components;
mod counts;
mod edt;
mod ensemble;
mod error;
mod find_best;
mod folder;
mod metrics;
mod nnunet_postprocessing;
mod npz;
mod postprocessing;
pub mod report;
mod selection;
mod summary;
mod summary_json;
mod surface;

pub use autoseg_planner::LabelValue;
pub use classes::LabelVoxel;
pub use components::{
    keep_largest_component, keep_largest_component_of, keep_largest_component_per_label,
    label_components, label_mask, Components,
};
pub use counts::VoxelCounts;
pub use edt::euclidean_distance_transform;
pub use ensemble::{
    average_probabilities, logits_to_segmentation, probabilities_to_segmentation, SegmentationRule,
};
pub use error::EvaluationError;
pub use find_best::{
    find_best, read_best, write_single_choice, BestChoice, BestOutcome, FindBestError, FindBestJob,
    ScoredCandidate, BEST_SCHEMA_VERSION,
};
pub use folder::{
    detect_file_ending, ensemble_folders, evaluate_folder, evaluate_pairs, labels_in_references,
    match_cases, settings_from_dataset_json, CasePair, FolderError, DEFAULT_NSD_TOLERANCE_MM,
};
pub use metrics::{
    evaluate_case, CaseInput, CaseMetrics, EvaluationSettings, LabelMetrics, Metric,
    SurfaceSettings,
};
pub use npz::{
    probabilities_file, properties_file, read_probabilities, read_probabilities_shape,
    write_probabilities, NpyFault, NpzError, ProbabilityProperties, PROBABILITIES_KEY,
};
pub use postprocessing::{
    apply_postprocessing, determine_postprocessing, PostprocessingDecision, PostprocessingPlan,
    PostprocessingStep,
};
pub use selection::{choose_best, ensemble_pairs, Candidate};
pub use summary::{evaluate_cases, format_table, MetricValues, Summary};
pub use surface::{surface_metrics, SurfaceMetrics};
