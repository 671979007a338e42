//! Postprocessing: which "keep the largest connected component" steps improve Dice on the
//! cross-validation predictions, and applying the chosen steps to a new prediction.
//!
//! nnU-Net: `postprocessing/remove_connected_components.py::determine_postprocessing`:
//! (a) keep the largest component of the union of all foreground labels; accept iff the
//! foreground-mean Dice strictly improves and no class's mean Dice decreases.
//! (b) if there is more than one class, for each label or region in order, on the current best
//! predictions: keep the largest component of that class; accept iff its mean Dice strictly
//! improves. Comparisons with NaN are false, as in Python.

use autoseg_planner::LabelValue;
use ndarray::{Array3, ArrayViewMut3};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::classes::{validate_classes, LabelVoxel};
use crate::components::keep_largest_component_of;
use crate::metrics::{CaseInput, EvaluationSettings};
use crate::summary::{evaluate_cases, Summary};
use crate::EvaluationError;

/// One postprocessing step: keep only the largest connected component (26-connectivity; ties
/// keep all of the largest size) of the union of these labels; the rest becomes background 0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostprocessingStep {
    /// The labels whose union forms the mask.
    pub keep_largest_component_of: Vec<u16>,
}

/// The postprocessing chosen for a model: its steps, applied in order (the `[postprocessing]`
/// table of `results/best.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostprocessingPlan {
    /// Steps in application order; empty (or absent in the file) means "no postprocessing".
    #[serde(default)]
    pub steps: Vec<PostprocessingStep>,
}

impl PostprocessingPlan {
    /// The TOML text of the plan.
    ///
    /// # Errors
    /// [`EvaluationError::Toml`] (not expected for this plain data).
    pub fn to_toml(&self) -> Result<String, EvaluationError> {
        toml::to_string(self).map_err(|e| EvaluationError::Toml(e.to_string()))
    }

    /// Reads a plan from TOML text.
    ///
    /// # Errors
    /// [`EvaluationError::Toml`] with the parser's message (line, field).
    pub fn from_toml(text: &str) -> Result<PostprocessingPlan, EvaluationError> {
        toml::from_str(text).map_err(|e| EvaluationError::Toml(e.to_string()))
    }
}

/// Applies a plan to one label map in place (nnU-Net: `apply_postprocessing`).
///
/// # Shapes
/// `segmentation`: `(z, y, x)`.
pub fn apply_postprocessing<T: LabelVoxel>(
    plan: &PostprocessingPlan,
    mut segmentation: ArrayViewMut3<'_, T>,
) {
    for step in &plan.steps {
        keep_largest_component_of(segmentation.view_mut(), &step.keep_largest_component_of);
    }
}

/// The chosen plan with the summaries before and after it (nnU-Net's `postprocessing.json`
/// records the same two).
#[derive(Clone, Debug, PartialEq)]
pub struct PostprocessingDecision {
    /// The accepted steps.
    pub plan: PostprocessingPlan,
    /// Evaluation of the predictions as given.
    pub before: Summary,
    /// Evaluation of the predictions with the plan applied.
    pub after: Summary,
}

/// Decides the postprocessing on a set of predictions and their references, as nnU-Net does.
///
/// Only the voxel-count metrics are computed (the decision uses Dice); `settings.surface` is
/// ignored. `settings.classes` are nnU-Net's `foreground_labels` or `foreground_regions`; step
/// (a) uses the union of every label they name, except 0.
///
/// # Errors
/// [`EvaluationError::NoCases`], and the errors of [`evaluate_cases`].
pub fn determine_postprocessing<T: LabelVoxel>(
    cases: &[CaseInput<'_, T>],
    settings: &EvaluationSettings,
) -> Result<PostprocessingDecision, EvaluationError> {
    if cases.is_empty() {
        return Err(EvaluationError::NoCases {
            what: "determine postprocessing on",
        });
    }
    validate_classes(&settings.classes)?;
    let settings = EvaluationSettings {
        surface: None,
        ..settings.clone()
    };
    let before = evaluate_cases(cases, &settings)?;
    let mut state = Candidate {
        // Deliberate copies: the accepted steps are applied to these, never to the caller's maps.
        predictions: cases.iter().map(|c| c.prediction.to_owned()).collect(),
        summary: before.clone(),
    };
    let mut plan = PostprocessingPlan { steps: Vec::new() };
    let foreground = PostprocessingStep {
        keep_largest_component_of: foreground_labels(&settings.classes),
    };
    let tried = state.with_step(&foreground, cases, &settings)?;
    if foreground_step_helps(&state.summary, &tried.summary, &settings.classes) {
        plan.steps.push(foreground);
        state = tried;
    }
    if settings.classes.len() > 1 {
        for class in &settings.classes {
            let step = PostprocessingStep {
                keep_largest_component_of: class.values().to_vec(),
            };
            let tried = state.with_step(&step, cases, &settings)?;
            if tried.summary.class_dice(class) > state.summary.class_dice(class) {
                plan.steps.push(step);
                state = tried;
            }
        }
    }
    Ok(PostprocessingDecision {
        plan,
        before,
        after: state.summary,
    })
}

/// Every label named by the classes, sorted, without background 0 (nnU-Net's
/// `foreground_labels`).
fn foreground_labels(classes: &[LabelValue]) -> Vec<u16> {
    let mut labels: Vec<u16> = classes
        .iter()
        .flat_map(|c| c.values().iter().copied())
        .filter(|&l| l != 0)
        .collect();
    labels.sort_unstable();
    labels.dedup();
    labels
}

/// Step (a)'s rule: foreground Dice strictly better and no class's Dice lower.
fn foreground_step_helps(baseline: &Summary, tried: &Summary, classes: &[LabelValue]) -> bool {
    tried.foreground_dice() > baseline.foreground_dice()
        && !classes
            .iter()
            .any(|c| tried.class_dice(c) < baseline.class_dice(c))
}

/// Predictions with the steps accepted so far, and their evaluation.
struct Candidate<T> {
    predictions: Vec<Array3<T>>,
    summary: Summary,
}

impl<T: LabelVoxel> Candidate<T> {
    /// These predictions with one more step applied, evaluated against the references.
    fn with_step(
        &self,
        step: &PostprocessingStep,
        cases: &[CaseInput<'_, T>],
        settings: &EvaluationSettings,
    ) -> Result<Candidate<T>, EvaluationError> {
        let predictions: Vec<Array3<T>> = self
            .predictions
            .par_iter()
            .map(|p| {
                let mut p = p.clone();
                keep_largest_component_of(p.view_mut(), &step.keep_largest_component_of);
                p
            })
            .collect();
        let inputs: Vec<CaseInput<'_, T>> = cases
            .iter()
            .zip(&predictions)
            .map(|(case, p)| CaseInput {
                prediction_file: case.prediction_file.clone(),
                reference_file: case.reference_file.clone(),
                prediction: p.view(),
                reference: case.reference.view(),
                spacing: case.spacing,
            })
            .collect();
        let summary = evaluate_cases(&inputs, settings)?;
        drop(inputs);
        Ok(Candidate {
            predictions,
            summary,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_round_trips_through_toml() {
        let plan = PostprocessingPlan {
            steps: vec![
                PostprocessingStep {
                    keep_largest_component_of: vec![1, 2],
                },
                PostprocessingStep {
                    keep_largest_component_of: vec![2],
                },
            ],
        };
        let text = plan.to_toml().unwrap();
        assert!(
            text.contains("[[steps]]\nkeep_largest_component_of = [1, 2]"),
            "{text}"
        );
        assert_eq!(PostprocessingPlan::from_toml(&text).unwrap(), plan);
        let empty = PostprocessingPlan { steps: Vec::new() };
        assert_eq!(
            PostprocessingPlan::from_toml(&empty.to_toml().unwrap()).unwrap(),
            empty
        );
        assert!(PostprocessingPlan::from_toml("[[steps]]\nkeep = [1]").is_err());
    }

    #[test]
    fn foreground_labels_are_the_union_without_background() {
        let classes = [
            LabelValue::Region(vec![1, 2, 3]),
            LabelValue::Region(vec![2, 3]),
            LabelValue::Single(0),
        ];
        assert_eq!(foreground_labels(&classes), vec![1, 2, 3]);
    }
}
