//! The `labels` entry of `dataset.json`: plain labels, regions and the ignore label.
//!
//! nnU-Net: `utilities/label_handling/label_handling.py::LabelManager` (sanity check, ignore
//! label, `all_labels`, regions) and `verify_dataset_integrity.py` (consecutive labels).

use autoseg_planner::{LabelEntry, LabelValue};
use serde_json::Value;

use super::fault::JsonFault;

/// The checked `labels` declaration: `background` is 0; the ignore label, if any, is one integer
/// equal to `max(labels) + 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    entries: Vec<LabelEntry>,
    ignore: Option<u16>,
    /// Position of the `ignore` key among all keys of `labels` (file order).
    ignore_position: usize,
}

impl Labels {
    /// Builds the declaration from the `labels` object in file order, collecting faults.
    /// nnU-Net: `LabelManager.__init__` and `_sanity_check`.
    pub(crate) fn from_json(
        map: Vec<(String, Value)>,
        faults: &mut Vec<JsonFault>,
    ) -> Option<Labels> {
        let n_faults = faults.len();
        let mut ignore = None;
        let mut ignore_position = 0;
        let mut rest = Vec::with_capacity(map.len());
        for (position, (name, value)) in map.into_iter().enumerate() {
            if name == "ignore" {
                ignore = check_ignore(&value, faults);
                ignore_position = position;
            } else {
                rest.push((name, value));
            }
        }
        let entries = label_entries(rest, faults);
        check_background(&entries, faults);
        let labels = Labels {
            entries,
            ignore,
            ignore_position,
        };
        labels.check_ignore_is_highest(faults);
        (faults.len() == n_faults).then_some(labels)
    }

    /// Named entries in file order, without the ignore label.
    pub fn entries(&self) -> &[LabelEntry] {
        &self.entries
    }

    /// Every entry in file order, the ignore label (named `ignore`) included.
    pub fn file_order(&self) -> Vec<LabelEntry> {
        let mut all = self.entries.clone();
        if let Some(ignore) = self.ignore {
            let entry = LabelEntry {
                name: "ignore".to_string(),
                value: LabelValue::Single(ignore),
            };
            all.insert(self.ignore_position.min(all.len()), entry);
        }
        all
    }

    /// The ignore label, if declared (`"ignore": K`).
    pub fn ignore_label(&self) -> Option<u16> {
        self.ignore
    }

    /// Whether any entry is a region of more than one value. nnU-Net: `LabelManager.has_regions`.
    pub fn has_regions(&self) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(&e.value, LabelValue::Region(vs) if vs.len() > 1))
    }

    /// Every declared value except the ignore label, sorted and unique.
    /// nnU-Net: `LabelManager.all_labels`.
    pub fn all_labels(&self) -> Vec<u16> {
        let mut all: Vec<u16> = self
            .entries
            .iter()
            .flat_map(|e| e.value.values().iter().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// [`Labels::all_labels`] without background 0: the labels a cascade's previous-stage
    /// segmentation is one-hot encoded over. nnU-Net: `LabelManager.foreground_labels`.
    pub fn foreground_labels(&self) -> Vec<u16> {
        self.all_labels().into_iter().filter(|&l| l != 0).collect()
    }

    /// The values a label file may contain: [`Labels::all_labels`] plus the ignore label.
    /// nnU-Net: `expected_labels` in `verify_dataset_integrity`.
    pub fn expected_labels(&self) -> Vec<u16> {
        let mut expected = self.all_labels();
        expected.extend(self.ignore);
        expected
    }

    /// The values that break "labels are consecutive integers": each value of
    /// [`Labels::expected_labels`] (after the first) that is not its predecessor plus one.
    /// Empty when the labels are valid. nnU-Net: `np.ediff1d(expected_labels) == 1`.
    pub fn non_consecutive(&self) -> Vec<u16> {
        self.expected_labels()
            .windows(2)
            .filter(|w| u32::from(w[1]) != u32::from(w[0]) + 1)
            .map(|w| w[1])
            .collect()
    }

    /// The foreground regions in file order when the labels declare regions, else `None`.
    /// nnU-Net: `LabelManager._get_regions` (background-only entries are skipped).
    pub fn regions(&self) -> Option<Vec<Vec<u16>>> {
        if !self.has_regions() {
            return None;
        }
        let regions = self
            .entries
            .iter()
            .filter(|e| !is_background(&e.value))
            .map(|e| e.value.values().to_vec())
            .collect();
        Some(regions)
    }

    /// Number of network outputs: one per foreground region, else one per label (background
    /// included, ignore excluded). nnU-Net: `LabelManager.num_segmentation_heads`.
    pub fn num_segmentation_heads(&self) -> usize {
        match self.regions() {
            Some(regions) => regions.len(),
            None => self.all_labels().len(),
        }
    }

    /// nnU-Net asserts `ignore == max(all_labels) + 1`.
    fn check_ignore_is_highest(&self, faults: &mut Vec<JsonFault>) {
        let Some(ignore) = self.ignore else {
            return;
        };
        let max = self.all_labels().last().copied().unwrap_or(0);
        let expected = u32::from(max) + 1;
        if u32::from(ignore) != expected {
            faults.push(JsonFault::IgnoreNotHighest { ignore, expected });
        }
    }
}

fn check_ignore(value: &Value, faults: &mut Vec<JsonFault>) -> Option<u16> {
    let ignore = label_number(value);
    if ignore.is_none() {
        faults.push(JsonFault::IgnoreNotInteger {
            found: value.to_string(),
        });
    }
    ignore
}

fn check_background(entries: &[LabelEntry], faults: &mut Vec<JsonFault>) {
    match entries.iter().find(|e| e.name == "background") {
        None => faults.push(JsonFault::NoBackground),
        Some(LabelEntry {
            value: LabelValue::Single(0),
            ..
        }) => {}
        Some(e) => faults.push(JsonFault::BackgroundNotZero {
            found: format!("{:?}", e.value.values()),
        }),
    }
}

/// Whether the entry covers only background (0).
fn is_background(value: &LabelValue) -> bool {
    let values = value.values();
    !values.is_empty() && values.iter().all(|&v| v == 0)
}

/// The entries of the ordered `labels` object (without `ignore`), collecting a fault per
/// value that is not a label or a list of labels.
fn label_entries(map: Vec<(String, Value)>, faults: &mut Vec<JsonFault>) -> Vec<LabelEntry> {
    let mut entries = Vec::with_capacity(map.len());
    for (name, value) in map {
        match parse_label_value(&value) {
            Some(value) => entries.push(LabelEntry { name, value }),
            None => faults.push(JsonFault::LabelValue {
                name,
                found: value.to_string(),
            }),
        }
    }
    entries
}

fn parse_label_value(value: &Value) -> Option<LabelValue> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(label_number)
            .collect::<Option<Vec<u16>>>()
            .map(LabelValue::Region),
        other => label_number(other).map(LabelValue::Single),
    }
}

/// A label value: an integer in `0..=65535`.
pub(crate) fn label_number(value: &Value) -> Option<u16> {
    value.as_u64().and_then(|n| u16::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::super::json::Ordered;
    use super::*;

    fn labels(json: &str) -> Result<Labels, Vec<JsonFault>> {
        let map: Ordered<Value> = serde_json::from_str(json).expect("test JSON object");
        let mut faults = Vec::new();
        Labels::from_json(map.0, &mut faults).ok_or(faults)
    }

    #[test]
    fn plain_labels() {
        let l = labels(r#"{"background": 0, "b": 2, "a": 1}"#).expect("valid");
        assert_eq!(l.all_labels(), [0, 1, 2]);
        assert!(!l.has_regions());
        assert_eq!(l.regions(), None);
        assert_eq!(l.num_segmentation_heads(), 3);
        assert!(l.non_consecutive().is_empty());
    }

    #[test]
    fn brats_regions_in_file_order() {
        // nnU-Net's documented BraTS example (dataset_format.md, region-based training).
        let l = labels(r#"{"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": 3}"#)
            .expect("valid");
        assert!(l.has_regions());
        assert_eq!(l.regions(), Some(vec![vec![1, 2, 3], vec![2, 3], vec![3]]));
        assert_eq!(l.num_segmentation_heads(), 3);
        assert_eq!(l.all_labels(), [0, 1, 2, 3]);
    }

    #[test]
    fn ignore_label_must_be_highest_plus_one() {
        let l = labels(r#"{"background": 0, "a": 1, "ignore": 2}"#).expect("valid");
        assert_eq!(l.ignore_label(), Some(2));
        assert_eq!(l.expected_labels(), [0, 1, 2]);
        assert_eq!(l.num_segmentation_heads(), 2);
        let names: Vec<String> = l.file_order().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["background", "a", "ignore"]);
        let l = labels(r#"{"ignore": 2, "background": 0, "a": 1}"#).expect("valid");
        assert_eq!(l.file_order()[0].name, "ignore");
        let f = labels(r#"{"background": 0, "a": 1, "ignore": 5}"#).expect_err("invalid");
        assert_eq!(
            f,
            [JsonFault::IgnoreNotHighest {
                ignore: 5,
                expected: 2
            }]
        );
        let f = labels(r#"{"background": 0, "ignore": [1, 2]}"#).expect_err("invalid");
        assert!(matches!(&f[0], JsonFault::IgnoreNotInteger { .. }));
    }

    #[test]
    fn background_rules() {
        assert_eq!(
            labels(r#"{"a": 1}"#).expect_err("invalid"),
            [JsonFault::NoBackground]
        );
        let f = labels(r#"{"background": 1}"#).expect_err("invalid");
        assert!(matches!(&f[0], JsonFault::BackgroundNotZero { .. }));
        let f = labels(r#"{"background": [0, 1]}"#).expect_err("invalid");
        assert!(matches!(&f[0], JsonFault::BackgroundNotZero { .. }));
    }

    #[test]
    fn gaps_are_listed_as_nnunet_does() {
        let l = labels(r#"{"background": 0, "a": 1, "b": 3, "c": 7}"#).expect("valid");
        assert_eq!(l.non_consecutive(), [3, 7]);
        let l = labels(r#"{"background": 0, "a": 1, "ignore": 2}"#).expect("valid");
        assert!(l.non_consecutive().is_empty());
    }
}
