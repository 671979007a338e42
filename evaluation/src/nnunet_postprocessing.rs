//! nnU-Net's `postprocessing.pkl` (written by `nnUNetv2_find_best_configuration`, applied by
//! `nnUNetv2_apply_postprocessing`) as a [`PostprocessingPlan`], both ways.
//!
//! The file is `(pp_fns, pp_fn_kwargs)`: a list of functions pickled by reference and a list of
//! their keyword arguments. nnU-Net 2.8.1 writes one function only,
//! `remove_all_but_largest_component_from_segmentation(labels_or_regions=...)`, where
//! `labels_or_regions` is a label, a region (a tuple of labels) or a list of either; the mask
//! is their union, which is what a [`PostprocessingStep`] keeps the largest component of. The
//! pickle is read by [`autoseg_planner::pickle`] (nothing in it is run); any other function is
//! refused with its name.

use std::path::Path;

use autoseg_planner::pickle::{to_pickle, unpickle, PickleError, Policy, Value};

use crate::postprocessing::{PostprocessingPlan, PostprocessingStep};
use crate::EvaluationError;

const MODULE: &str = "nnunetv2.postprocessing.remove_connected_components";
const KEEP_LARGEST: &str = "remove_all_but_largest_component_from_segmentation";

impl PostprocessingPlan {
    /// Reads nnU-Net's `postprocessing.pkl` (its bytes; `path` names it in errors).
    ///
    /// # Errors
    /// [`EvaluationError::NnUnetPostprocessing`] naming the file: a pickle that names a function
    /// other than nnU-Net's largest-component removal (named), a `background_label` other than
    /// 0, labels that are not integers of 1..65535, or not `(list, list)` of equal lengths.
    pub fn from_nnunet_pickle(
        bytes: &[u8],
        path: &Path,
    ) -> Result<PostprocessingPlan, EvaluationError> {
        let fault = |what: String| EvaluationError::NnUnetPostprocessing {
            path: path.to_path_buf(),
            what,
        };
        let policy = Policy {
            value_globals: &[(MODULE, KEEP_LARGEST)],
        };
        let value = unpickle(bytes, &policy).map_err(|e| match e {
            PickleError::ForbiddenGlobal { module, name } => fault(format!(
                "names the function {module}.{name}; autoseg applies only nnU-Net's {KEEP_LARGEST}"
            )),
            other => fault(other.to_string()),
        })?;
        let (functions, kwargs) = match value.as_seq() {
            Some([functions, kwargs]) => (functions.as_seq(), kwargs.as_seq()),
            _ => (None, None),
        };
        let (Some(functions), Some(kwargs)) = (functions, kwargs) else {
            return Err(fault(
                "not nnU-Net's (functions, keyword arguments) pair".into(),
            ));
        };
        if functions.len() != kwargs.len() {
            return Err(fault(format!(
                "{} functions but {} sets of keyword arguments",
                functions.len(),
                kwargs.len()
            )));
        }
        let mut steps = Vec::with_capacity(functions.len());
        for (i, (function, args)) in functions.iter().zip(kwargs).enumerate() {
            match function {
                Value::Global { module, name } if module == MODULE && name == KEEP_LARGEST => {}
                other => {
                    return Err(fault(format!(
                        "step {i} is a {}, not a function",
                        other.kind()
                    )))
                }
            }
            let Value::Dict(entries) = args else {
                return Err(fault(format!(
                    "step {i}: keyword arguments are a {}",
                    args.kind()
                )));
            };
            let mut labels = None;
            for (key, value) in entries {
                match (key.as_str(), value) {
                    (Some("labels_or_regions"), v) => {
                        labels = Some(union_of(v).ok_or_else(|| {
                            fault(format!(
                                "step {i}: labels_or_regions is not labels or regions"
                            ))
                        })?)
                    }
                    (Some("background_label"), Value::Int(0)) => {}
                    (Some(key), _) => {
                        return Err(fault(format!("step {i}: keyword {key} is not supported")))
                    }
                    (None, _) => return Err(fault(format!("step {i}: a keyword is not a string"))),
                }
            }
            let Some(mut labels) = labels else {
                return Err(fault(format!("step {i}: no labels_or_regions")));
            };
            labels.sort_unstable();
            labels.dedup();
            steps.push(PostprocessingStep {
                keep_largest_component_of: labels,
            });
        }
        Ok(PostprocessingPlan { steps })
    }

    /// The plan as nnU-Net's `postprocessing.pkl` (each step's labels as a list).
    ///
    /// # Errors
    /// None in practice ([`EvaluationError::NnUnetPostprocessing`] if pickling failed).
    pub fn to_nnunet_pickle(&self, path: &Path) -> Result<Vec<u8>, EvaluationError> {
        let function = Value::Global {
            module: MODULE.into(),
            name: KEEP_LARGEST.into(),
        };
        let functions = self.steps.iter().map(|_| function.clone()).collect();
        let kwargs = self
            .steps
            .iter()
            .map(|s| {
                let labels = s
                    .keep_largest_component_of
                    .iter()
                    .map(|&l| Value::Int(i64::from(l)))
                    .collect();
                Value::Dict(vec![(
                    Value::Str("labels_or_regions".into()),
                    Value::List(labels),
                )])
            })
            .collect();
        to_pickle(&Value::Tuple(vec![
            Value::List(functions),
            Value::List(kwargs),
        ]))
        .map_err(|e| EvaluationError::NnUnetPostprocessing {
            path: path.to_path_buf(),
            what: e.to_string(),
        })
    }
}

/// The labels of a label, a region (tuple) or a list of either; `None` for anything else or a
/// label outside 1..=65535.
fn union_of(value: &Value) -> Option<Vec<u16>> {
    match value {
        Value::Int(l) => u16::try_from(*l).ok().filter(|&l| l > 0).map(|l| vec![l]),
        Value::List(items) | Value::Tuple(items) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::List(_) => return None,
                    other => out.extend(union_of(other)?),
                }
            }
            (!out.is_empty()).then_some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/data/nnunet")
            .join(name)
    }

    fn read(name: &str) -> Result<PostprocessingPlan, EvaluationError> {
        let path = fixture(name);
        PostprocessingPlan::from_nnunet_pickle(&std::fs::read(&path).unwrap(), &path)
    }

    fn step(labels: &[u16]) -> PostprocessingStep {
        PostprocessingStep {
            keep_largest_component_of: labels.to_vec(),
        }
    }

    /// Files nnU-Net 2.8.1's `save_pickle` wrote (`scripts/make_nnunet_postprocessing_fixtures.py`).
    #[test]
    fn nnunets_files_read_as_the_steps_they_hold() {
        assert_eq!(
            read("postprocessing_labels.pkl").unwrap().steps,
            [step(&[1, 2]), step(&[2])]
        );
        assert_eq!(
            read("postprocessing_regions.pkl").unwrap().steps,
            [step(&[1, 2])]
        );
    }

    #[test]
    fn another_function_is_refused_by_name() {
        let err = read("postprocessing_foreign.pkl").unwrap_err().to_string();
        assert!(
            err.contains("shutil.rmtree") && err.contains("postprocessing_foreign.pkl"),
            "{err}"
        );
    }

    #[test]
    fn a_plan_written_for_nnunet_reads_back_equal() {
        let plan = PostprocessingPlan {
            steps: vec![step(&[1, 2, 3]), step(&[3])],
        };
        let path = Path::new("postprocessing.pkl");
        let bytes = plan.to_nnunet_pickle(path).unwrap();
        assert_eq!(
            PostprocessingPlan::from_nnunet_pickle(&bytes, path).unwrap(),
            plan
        );
        let empty = PostprocessingPlan { steps: vec![] };
        let bytes = empty.to_nnunet_pickle(path).unwrap();
        assert_eq!(
            PostprocessingPlan::from_nnunet_pickle(&bytes, path).unwrap(),
            empty
        );
    }

    #[test]
    fn labels_that_are_not_labels_are_refused() {
        for bad in [
            Value::Int(0),
            Value::Int(70000),
            Value::Str("1".into()),
            Value::List(vec![]),
        ] {
            assert_eq!(union_of(&bad), None, "{bad:?}");
        }
        assert_eq!(
            union_of(&Value::List(vec![
                Value::Int(1),
                Value::Tuple(vec![Value::Int(2), Value::Int(3)])
            ])),
            Some(vec![1, 2, 3])
        );
    }
}
