//! What is evaluated: a label or a region (a union of labels), the planner's
//! [`LabelValue`], and the voxel types label maps may have ([`LabelVoxel`]).

use autoseg_planner::LabelValue;

use crate::EvaluationError;

/// A voxel type a label map may have: `u8`/`u16` as in files, `i16` as in the preprocessed
/// cache (where −1 marks "outside"; it is never a class and counts as "not in any class").
pub trait LabelVoxel: Copy + PartialEq + Send + Sync + 'static {
    /// The background value, which postprocessing writes into removed voxels.
    const BACKGROUND: Self;
    /// The value as a wide signed integer, for comparison with label numbers.
    fn to_i64(self) -> i64;
}

macro_rules! label_voxel {
    ($($t:ty),*) => {$(
        impl LabelVoxel for $t {
            const BACKGROUND: Self = 0;
            fn to_i64(self) -> i64 {
                i64::from(self)
            }
        }
    )*};
}
label_voxel!(u8, u16, i16, i32, u32);

/// Parses a `summary.json` class key (nnU-Net: `key_to_label_or_region`).
///
/// # Errors
/// [`EvaluationError::InvalidClassKey`] when the key is neither an integer nor a
/// parenthesised, comma-separated list of at least one integer.
pub(crate) fn class_from_key(key: &str) -> Result<LabelValue, EvaluationError> {
    LabelValue::from_key(key).ok_or_else(|| EvaluationError::InvalidClassKey {
        key: key.to_string(),
    })
}

/// Whether a voxel value belongs to `class`.
pub(crate) fn class_contains(class: &LabelValue, value: i64) -> bool {
    class.values().iter().any(|&l| i64::from(l) == value)
}

/// Checks that there is at least one class and that no region is empty.
pub(crate) fn validate_classes(classes: &[LabelValue]) -> Result<(), EvaluationError> {
    if classes.is_empty() {
        return Err(EvaluationError::NoClasses);
    }
    match classes.iter().find(|c| c.values().is_empty()) {
        Some(empty) => Err(EvaluationError::EmptyRegion { key: empty.key() }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_keys_parse_or_name_the_bad_key() {
        assert_eq!(
            class_from_key("(1, 2)").unwrap(),
            LabelValue::Region(vec![1, 2])
        );
        assert_eq!(class_from_key(" 7 ").unwrap(), LabelValue::Single(7));
        assert!(matches!(
            class_from_key("liver"),
            Err(EvaluationError::InvalidClassKey { key }) if key == "liver"
        ));
        assert!(validate_classes(&[]).is_err());
        assert!(validate_classes(&[LabelValue::Region(vec![])]).is_err());
    }
}
