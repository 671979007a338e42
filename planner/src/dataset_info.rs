//! What planning needs from `dataset.json`: the dataset's name, channel names in order, the
//! labels object in file order, the number of training cases and the file ending.
//! `autoseg-preprocessing` reads the file and builds this.

use std::fmt;

use crate::PlanError;

/// The value of one entry of dataset.json's `labels` object, and what is evaluated per class:
/// a label, or a region (the union of labels). The one type for this concept in autoseg:
/// preprocessing's checked `Labels`, evaluation's classes and the planner share it.
///
/// Its [`key`](LabelValue::key) is Python's `str` of the int or tuple, as nnU-Net keys
/// `summary.json`: `"1"`, `"(1, 2)"`, and `"(1,)"` for a one-label region.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LabelValue {
    /// A plain label: `"liver": 1`.
    Single(u16),
    /// A region, the union of labels: `"whole tumor": [1, 2, 3]` (a list, even of one value).
    Region(Vec<u16>),
}

impl LabelValue {
    /// The label values this entry covers: the label, or the region's labels.
    pub fn values(&self) -> &[u16] {
        match self {
            LabelValue::Single(v) => std::slice::from_ref(v),
            LabelValue::Region(vs) => vs,
        }
    }

    /// The key nnU-Net writes in `summary.json`: `"1"`, `"(1, 2)"` or `"(1,)"`.
    pub fn key(&self) -> String {
        match self {
            LabelValue::Single(label) => label.to_string(),
            LabelValue::Region(labels) if labels.len() == 1 => format!("({},)", labels[0]),
            LabelValue::Region(labels) => {
                let parts: Vec<String> = labels.iter().map(u16::to_string).collect();
                format!("({})", parts.join(", "))
            }
        }
    }

    /// Parses a [`key`](LabelValue::key) back (nnU-Net: `key_to_label_or_region`): an integer,
    /// or a parenthesised, comma-separated list of at least one integer. `None` otherwise.
    pub fn from_key(key: &str) -> Option<LabelValue> {
        let trimmed = key.trim();
        if let Ok(label) = trimmed.parse::<u16>() {
            return Some(LabelValue::Single(label));
        }
        let inner = trimmed.strip_prefix('(')?.strip_suffix(')')?;
        let labels = inner
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| part.parse::<u16>().ok())
            .collect::<Option<Vec<u16>>>()?;
        (!labels.is_empty()).then_some(LabelValue::Region(labels))
    }
}

impl fmt::Display for LabelValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// One entry of dataset.json's `labels` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelEntry {
    /// The key, e.g. `"background"`, `"ignore"` or a class name.
    pub name: String,
    /// The value.
    pub value: LabelValue,
}

/// The dataset description planning needs. Built by [`DatasetInfo::new`], which validates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetInfo {
    name: String,
    channel_names: Vec<String>,
    labels: Vec<LabelEntry>,
    num_training: usize,
    file_ending: String,
}

impl DatasetInfo {
    /// Builds a dataset description. `labels` is dataset.json's `labels` object in file order,
    /// including `background` and, if present, `ignore`.
    ///
    /// # Errors
    /// [`PlanError::InvalidDataset`] when there are no channels, no labels, a repeated label name
    /// or zero training cases.
    pub fn new(
        name: &str,
        channel_names: Vec<String>,
        labels: Vec<LabelEntry>,
        num_training: usize,
        file_ending: &str,
    ) -> Result<DatasetInfo, PlanError> {
        let invalid = |fault: String| PlanError::InvalidDataset {
            dataset: name.to_string(),
            fault,
        };
        if channel_names.is_empty() {
            return Err(invalid("dataset.json declares no channel_names".into()));
        }
        if labels.is_empty() {
            return Err(invalid("dataset.json declares no labels".into()));
        }
        if let Some((idx, entry)) = labels
            .iter()
            .enumerate()
            .find(|(idx, e)| labels[..*idx].iter().any(|p| p.name == e.name))
        {
            return Err(invalid(format!(
                "label name {:?} appears twice (entry {idx})",
                entry.name
            )));
        }
        if num_training == 0 {
            return Err(invalid("numTraining is 0".into()));
        }
        Ok(DatasetInfo {
            name: name.to_string(),
            channel_names,
            labels,
            num_training,
            file_ending: file_ending.to_string(),
        })
    }

    /// Dataset name (the raw folder's name), written to `plans.toml` as `dataset_name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Channel names in channel order (`"0"`, `"1"`, ... of dataset.json's `channel_names`).
    pub fn channel_names(&self) -> &[String] {
        &self.channel_names
    }

    /// Labels in dataset.json order, `background` and `ignore` included.
    pub fn labels(&self) -> &[LabelEntry] {
        &self.labels
    }

    /// The ignore label's value, if dataset.json declares `"ignore"`.
    pub fn ignore_label(&self) -> Option<u16> {
        self.labels
            .iter()
            .find(|e| e.name == "ignore")
            .and_then(|e| match e.value {
                LabelValue::Single(v) => Some(v),
                LabelValue::Region(_) => None,
            })
    }

    /// dataset.json's `numTraining`.
    pub fn num_training(&self) -> usize {
        self.num_training
    }

    /// dataset.json's `file_ending`, e.g. `".nii.gz"`.
    pub fn file_ending(&self) -> &str {
        &self.file_ending
    }

    /// Output channels of the network nnU-Net sizes for the VRAM estimate:
    /// `len(dataset_json['labels'])`, counting background, ignore and every region key.
    ///
    /// nnU-Net: `default_experiment_planner.py::get_plans_for_configuration`.
    pub fn n_segmentation_classes_for_vram(&self) -> usize {
        self.labels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, value: LabelValue) -> LabelEntry {
        LabelEntry {
            name: name.into(),
            value,
        }
    }

    #[test]
    fn keys_match_python_str_of_int_and_tuple_and_parse_back() {
        assert_eq!(LabelValue::Single(3).key(), "3");
        assert_eq!(LabelValue::Region(vec![1, 2, 3]).key(), "(1, 2, 3)");
        assert_eq!(LabelValue::Region(vec![2]).key(), "(2,)");
        for class in [
            LabelValue::Single(7),
            LabelValue::Region(vec![1, 2]),
            LabelValue::Region(vec![4]),
        ] {
            assert_eq!(LabelValue::from_key(&class.key()), Some(class));
        }
        assert_eq!(LabelValue::from_key("()"), None);
        assert_eq!(LabelValue::from_key("liver"), None);
        assert_eq!(LabelValue::from_key("(1, x)"), None);
        assert_eq!(LabelValue::Region(vec![2, 3]).values(), [2, 3]);
        assert_eq!(LabelValue::Single(5).values(), [5]);
    }

    #[test]
    fn vram_class_count_counts_background_ignore_and_regions() {
        let labels = vec![
            entry("background", LabelValue::Single(0)),
            entry("whole tumor", LabelValue::Region(vec![1, 2, 3])),
            entry("tumor core", LabelValue::Region(vec![2, 3])),
            entry("enhancing", LabelValue::Region(vec![3])),
            entry("ignore", LabelValue::Single(4)),
        ];
        let info = DatasetInfo::new("BraTS", vec!["t1".into()], labels, 3, ".nii.gz")
            .expect("valid dataset");
        assert_eq!(info.n_segmentation_classes_for_vram(), 5);
        assert_eq!(info.ignore_label(), Some(4));
    }

    #[test]
    fn new_rejects_empty_channels_labels_duplicates_and_zero_cases() {
        let labels = || vec![entry("background", LabelValue::Single(0))];
        let ch = || vec!["CT".to_string()];
        assert!(DatasetInfo::new("d", vec![], labels(), 1, ".nii.gz").is_err());
        assert!(DatasetInfo::new("d", ch(), vec![], 1, ".nii.gz").is_err());
        assert!(DatasetInfo::new("d", ch(), labels(), 0, ".nii.gz").is_err());
        let dup = vec![
            entry("background", LabelValue::Single(0)),
            entry("background", LabelValue::Single(1)),
        ];
        let err = DatasetInfo::new("d", ch(), dup, 1, ".nii.gz").expect_err("duplicate");
        assert!(
            err.to_string().contains("\"background\" appears twice"),
            "{err}"
        );
        assert_eq!(
            DatasetInfo::new("d", ch(), labels(), 1, ".nii.gz")
                .expect("valid")
                .ignore_label(),
            None
        );
    }
}
