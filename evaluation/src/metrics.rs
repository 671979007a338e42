//! Metrics of one case per label or region ([`crate::evaluate_cases`] runs many at once and
//! summarises them).
//!
//! nnU-Net: `evaluation/evaluate_predictions.py::compute_metrics`. Voxels whose reference is the
//! ignore label are left out of every count, and out of both masks for the surface metrics.

use autoseg_planner::LabelValue;
use ndarray::{s, Array3, ArrayView3, Zip};
use rayon::prelude::*;

use crate::boxes::{class_boxes, Corners};
use crate::classes::{class_contains, validate_classes, LabelVoxel};
use crate::counts::{Confusion, VoxelCounts};
use crate::surface::{surface_metrics_on_axes, SurfaceMetrics};
use crate::EvaluationError;

/// What to evaluate. There is no `Default`: the classes come from the dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct EvaluationSettings {
    /// The labels (or, for region-based datasets, the regions) to evaluate, in dataset.json
    /// order; nnU-Net's `foreground_labels` or `foreground_regions`.
    pub classes: Vec<LabelValue>,
    /// The dataset's ignore label, if it declares one.
    pub ignore_label: Option<u16>,
    /// Surface metrics (HD95, ASSD, NSD) too; `None` computes the voxel-count metrics only.
    pub surface: Option<SurfaceSettings>,
}

/// Settings of the surface metrics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SurfaceSettings {
    /// Tolerance τ of the normalized surface Dice, in mm.
    pub nsd_tolerance_mm: f64,
}

/// One case to evaluate: a predicted and a reference label map of the same shape.
#[derive(Clone, Debug)]
pub struct CaseInput<'a, T> {
    /// The prediction's file name, as written to `summary.json`; also names the case in errors.
    pub prediction_file: String,
    /// The reference's file name, as written to `summary.json`.
    pub reference_file: String,
    /// The predicted label map, `(z, y, x)`.
    pub prediction: ArrayView3<'a, T>,
    /// The reference label map, `(z, y, x)`.
    pub reference: ArrayView3<'a, T>,
    /// Voxel size `(z, y, x)` in mm, used by the surface metrics.
    pub spacing: [f64; 3],
}

/// Every metric autoseg computes for one class; `summary.json` spells them as [`Metric::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Dice coefficient.
    Dice,
    /// Intersection over union.
    IoU,
    /// True positives.
    TP,
    /// False positives.
    FP,
    /// False negatives.
    FN,
    /// True negatives.
    TN,
    /// Predicted voxels, `TP + FP`.
    NPred,
    /// Reference voxels, `TP + FN`.
    NRef,
    /// Sensitivity (recall).
    Sensitivity,
    /// Specificity.
    Specificity,
    /// Precision.
    Precision,
    /// Relative volume difference `(n_pred − n_ref) / n_ref`.
    VolumeDifference,
    /// 95th percentile Hausdorff distance in mm.
    Hd95,
    /// Average symmetric surface distance in mm.
    Assd,
    /// Normalized surface Dice.
    Nsd,
}

impl Metric {
    /// All metrics, in declaration order.
    pub const ALL: [Metric; 15] = [
        Metric::Dice,
        Metric::IoU,
        Metric::TP,
        Metric::FP,
        Metric::FN,
        Metric::TN,
        Metric::NPred,
        Metric::NRef,
        Metric::Sensitivity,
        Metric::Specificity,
        Metric::Precision,
        Metric::VolumeDifference,
        Metric::Hd95,
        Metric::Assd,
        Metric::Nsd,
    ];

    /// The key in `summary.json` (nnU-Net's spelling for the metrics nnU-Net has).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Dice => "Dice",
            Metric::IoU => "IoU",
            Metric::TP => "TP",
            Metric::FP => "FP",
            Metric::FN => "FN",
            Metric::TN => "TN",
            Metric::NPred => "n_pred",
            Metric::NRef => "n_ref",
            Metric::Sensitivity => "Sensitivity",
            Metric::Specificity => "Specificity",
            Metric::Precision => "Precision",
            Metric::VolumeDifference => "VolumeDifference",
            Metric::Hd95 => "HD95",
            Metric::Assd => "ASSD",
            Metric::Nsd => "NSD",
        }
    }

    /// The metric a `summary.json` key names.
    ///
    /// # Errors
    /// [`EvaluationError::UnknownMetric`] listing the known names.
    pub fn from_name(name: &str) -> Result<Metric, EvaluationError> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| EvaluationError::UnknownMetric {
                name: name.to_string(),
                known: Metric::ALL.iter().map(|m| m.name()).collect(),
            })
    }

    /// Whether per-case values are voxel counts (written as integers, as nnU-Net does).
    pub fn is_count(self) -> bool {
        matches!(
            self,
            Metric::TP | Metric::FP | Metric::FN | Metric::TN | Metric::NPred | Metric::NRef
        )
    }
}

/// The metrics of one class in one case.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LabelMetrics {
    /// Voxel counts, from which every overlap metric follows.
    pub counts: VoxelCounts,
    /// Surface metrics, when the settings asked for them.
    pub surface: Option<SurfaceMetrics>,
}

impl LabelMetrics {
    /// The value of one metric; `None` for a surface metric that was not computed.
    pub fn get(&self, metric: Metric) -> Option<f64> {
        let c = &self.counts;
        let value = match metric {
            Metric::Dice => c.dice(),
            Metric::IoU => c.iou(),
            Metric::TP => c.true_positive as f64,
            Metric::FP => c.false_positive as f64,
            Metric::FN => c.false_negative as f64,
            Metric::TN => c.true_negative as f64,
            Metric::NPred => c.n_pred() as f64,
            Metric::NRef => c.n_ref() as f64,
            Metric::Sensitivity => c.sensitivity(),
            Metric::Specificity => c.specificity(),
            Metric::Precision => c.precision(),
            Metric::VolumeDifference => c.volume_difference(),
            Metric::Hd95 => return self.surface.map(|s| s.hd95),
            Metric::Assd => return self.surface.map(|s| s.assd),
            Metric::Nsd => return self.surface.map(|s| s.nsd),
        };
        Some(value)
    }

    /// The metrics this value holds, in [`Metric::ALL`] order.
    pub fn present(&self) -> Vec<Metric> {
        Metric::ALL
            .into_iter()
            .filter(|&m| self.get(m).is_some())
            .collect()
    }
}

/// The metrics of one case, per class in the settings' order (one entry of nnU-Net's
/// `metric_per_case`).
#[derive(Clone, Debug, PartialEq)]
pub struct CaseMetrics {
    /// The prediction's file name.
    pub prediction_file: String,
    /// The reference's file name.
    pub reference_file: String,
    /// Metrics per class.
    pub metrics: Vec<(LabelValue, LabelMetrics)>,
}

impl CaseMetrics {
    /// The metrics of one class, if it was evaluated.
    pub fn get(&self, class: &LabelValue) -> Option<&LabelMetrics> {
        self.metrics
            .iter()
            .find(|(c, _)| c == class)
            .map(|(_, m)| m)
    }
}

/// Evaluates one case for every class of the settings.
///
/// # Errors
/// [`EvaluationError::ShapeMismatch`], [`EvaluationError::InvalidSpacing`] (surface metrics
/// only), [`EvaluationError::InvalidTolerance`], [`EvaluationError::NoClasses`],
/// [`EvaluationError::EmptyRegion`].
pub fn evaluate_case<T: LabelVoxel>(
    case: &CaseInput<'_, T>,
    settings: &EvaluationSettings,
) -> Result<CaseMetrics, EvaluationError> {
    validate_settings(settings)?;
    validate_case(case, settings.surface.is_some())?;
    let confusion = Confusion::count(
        case.reference,
        case.prediction,
        &settings.classes,
        settings.ignore_label,
    );
    let boxes = settings.surface.map(|_| {
        class_boxes(
            case.reference,
            case.prediction,
            &settings.classes,
            settings.ignore_label,
        )
    });
    let metrics = settings
        .classes
        .par_iter()
        .enumerate()
        .map(|(i, class)| {
            let counts = confusion.counts(class, settings.ignore_label);
            let surface = settings.surface.zip(boxes.as_ref()).map(|(s, boxes)| {
                class_surface_metrics(case, class, boxes[i], settings.ignore_label, s)
            });
            (class.clone(), LabelMetrics { counts, surface })
        })
        .collect();
    Ok(CaseMetrics {
        prediction_file: case.prediction_file.clone(),
        reference_file: case.reference_file.clone(),
        metrics,
    })
}

pub(crate) fn validate_settings(settings: &EvaluationSettings) -> Result<(), EvaluationError> {
    validate_classes(&settings.classes)?;
    if let Some(s) = settings.surface {
        if !(s.nsd_tolerance_mm.is_finite() && s.nsd_tolerance_mm >= 0.0) {
            return Err(EvaluationError::InvalidTolerance {
                tolerance_mm: s.nsd_tolerance_mm,
            });
        }
    }
    Ok(())
}

/// Checks that the pair has one shape and, when distances are needed, a usable spacing.
pub(crate) fn validate_case<T>(
    case: &CaseInput<'_, T>,
    needs_spacing: bool,
) -> Result<(), EvaluationError> {
    let shape = |a: &ArrayView3<'_, T>| [a.dim().0, a.dim().1, a.dim().2];
    if case.reference.dim() != case.prediction.dim() {
        return Err(EvaluationError::ShapeMismatch {
            case: case.prediction_file.clone(),
            reference: shape(&case.reference),
            prediction: shape(&case.prediction),
        });
    }
    if needs_spacing && !case.spacing.iter().all(|s| s.is_finite() && *s > 0.0) {
        return Err(EvaluationError::InvalidSpacing {
            case: case.prediction_file.clone(),
            spacing: case.spacing,
        });
    }
    Ok(())
}

/// The surface metrics of one class, computed on `bounds`, the box of the class in either map
/// (`None` when it is in neither).
fn class_surface_metrics<T: LabelVoxel>(
    case: &CaseInput<'_, T>,
    class: &LabelValue,
    bounds: Option<Corners>,
    ignore: Option<u16>,
    settings: SurfaceSettings,
) -> SurfaceMetrics {
    let (nz, ny, nx) = case.reference.dim();
    let axes = [nz > 1, ny > 1, nx > 1];
    // Work on the bounding box of the class in either map: outside it both masks are empty.
    let Some((low, high)) = bounds else {
        let empty = Array3::from_elem((1, 1, 1), false);
        return surface_metrics_on_axes(empty.view(), empty.view(), case.spacing, 0.0, axes);
    };
    let crop = s![low[0]..=high[0], low[1]..=high[1], low[2]..=high[2]];
    let reference = case.reference.slice(crop);
    let reference_mask = class_mask(reference, reference, class, ignore);
    let prediction_mask = class_mask(case.prediction.slice(crop), reference, class, ignore);
    surface_metrics_on_axes(
        reference_mask.view(),
        prediction_mask.view(),
        case.spacing,
        settings.nsd_tolerance_mm,
        axes,
    )
}

/// Whether a voxel is in the class (prediction or reference value `v`) and not ignored.
fn counts_as<T: LabelVoxel>(class: &LabelValue, v: T, reference: T, ignore: Option<i64>) -> bool {
    class_contains(class, v.to_i64()) && Some(reference.to_i64()) != ignore
}

/// `labels ∈ class`, false where the reference holds the ignore label.
fn class_mask<T: LabelVoxel>(
    labels: ArrayView3<'_, T>,
    reference: ArrayView3<'_, T>,
    class: &LabelValue,
    ignore: Option<u16>,
) -> Array3<bool> {
    let ignore = ignore.map(i64::from);
    Zip::from(&labels)
        .and(&reference)
        .par_map_collect(|&v, &r| counts_as(class, v, r, ignore))
}
