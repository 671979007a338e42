//! What is evaluated: a label or a region (a union of labels), and the voxel types label maps
//! may have.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::EvaluationError;

/// A voxel type a label map may have: `u8`/`u16` as in files, `i16` as in the preprocessed
/// cache (where −1 marks "outside"; it is never a class and counts as "not in any class").
pub trait LabelValue: Copy + PartialEq + Send + Sync + 'static {
    /// The background value, which postprocessing writes into removed voxels.
    const BACKGROUND: Self;
    /// The value as a wide signed integer, for comparison with label numbers.
    fn to_i64(self) -> i64;
}

macro_rules! label_value {
    ($($t:ty),*) => {$(
        impl LabelValue for $t {
            const BACKGROUND: Self = 0;
            fn to_i64(self) -> i64 {
                i64::from(self)
            }
        }
    )*};
}
label_value!(u8, u16, i16, i32, u32);

/// One evaluated class: a single label, or a region (the union of several labels), as in
/// nnU-Net's `labels_or_regions`.
///
/// nnU-Net: `evaluation/evaluate_predictions.py::region_or_label_to_mask`. In `summary.json` a
/// label is keyed `"1"` and a region `"(1, 2)"` (Python's `str` of an int or a tuple; a
/// one-label region is `"(1,)"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LabelOrRegion {
    /// One label value.
    Label(u16),
    /// The union of these label values.
    Region(Vec<u16>),
}

impl LabelOrRegion {
    /// The label values whose union this class is.
    pub fn labels(&self) -> &[u16] {
        match self {
            LabelOrRegion::Label(label) => std::slice::from_ref(label),
            LabelOrRegion::Region(labels) => labels,
        }
    }

    /// The key nnU-Net writes in `summary.json`: `"1"`, `"(1, 2)"` or `"(1,)"`.
    pub fn key(&self) -> String {
        match self {
            LabelOrRegion::Label(label) => label.to_string(),
            LabelOrRegion::Region(labels) if labels.len() == 1 => format!("({},)", labels[0]),
            LabelOrRegion::Region(labels) => {
                let parts: Vec<String> = labels.iter().map(u16::to_string).collect();
                format!("({})", parts.join(", "))
            }
        }
    }

    /// Parses a `summary.json` key back (nnU-Net: `key_to_label_or_region`).
    ///
    /// # Errors
    /// [`EvaluationError::InvalidClassKey`] when the key is neither an integer nor a
    /// parenthesised, comma-separated list of at least one integer.
    pub fn from_key(key: &str) -> Result<Self, EvaluationError> {
        let invalid = || EvaluationError::InvalidClassKey {
            key: key.to_string(),
        };
        let trimmed = key.trim();
        if let Ok(label) = trimmed.parse::<u16>() {
            return Ok(LabelOrRegion::Label(label));
        }
        let inner = trimmed
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(invalid)?;
        let labels = inner
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| part.parse::<u16>().map_err(|_| invalid()))
            .collect::<Result<Vec<u16>, _>>()?;
        if labels.is_empty() {
            return Err(invalid());
        }
        Ok(LabelOrRegion::Region(labels))
    }

    /// Whether a voxel value belongs to this class.
    pub(crate) fn contains(&self, value: i64) -> bool {
        self.labels().iter().any(|&l| i64::from(l) == value)
    }
}

impl fmt::Display for LabelOrRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// Checks that there is at least one class and that no region is empty.
pub(crate) fn validate_classes(classes: &[LabelOrRegion]) -> Result<(), EvaluationError> {
    if classes.is_empty() {
        return Err(EvaluationError::NoClasses);
    }
    match classes.iter().find(|c| c.labels().is_empty()) {
        Some(empty) => Err(EvaluationError::EmptyRegion { key: empty.key() }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_python_str_of_int_and_tuple() {
        assert_eq!(LabelOrRegion::Label(3).key(), "3");
        assert_eq!(LabelOrRegion::Region(vec![1, 2, 3]).key(), "(1, 2, 3)");
        assert_eq!(LabelOrRegion::Region(vec![2]).key(), "(2,)");
    }

    #[test]
    fn keys_parse_back() {
        for class in [
            LabelOrRegion::Label(7),
            LabelOrRegion::Region(vec![1, 2]),
            LabelOrRegion::Region(vec![4]),
        ] {
            assert_eq!(LabelOrRegion::from_key(&class.key()).unwrap(), class);
        }
        assert!(LabelOrRegion::from_key("()").is_err());
        assert!(LabelOrRegion::from_key("liver").is_err());
        assert!(LabelOrRegion::from_key("(1, x)").is_err());
    }
}
