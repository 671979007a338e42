//! `dataset.json`: nnU-Net's dataset description, parsed into a typed [`DatasetJson`].
//!
//! nnU-Net: `documentation/dataset_format.md`, `utilities/label_handling/label_handling.py`
//! (`LabelManager`). Parsing never panics: every problem of the file is collected as a
//! [`JsonFault`], so one run reports all of them.

use std::fmt;
use std::marker::PhantomData;
use std::path::{Component, Path, PathBuf};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::fault::{JsonFault, PathProblem};
use super::labels::{label_number, Labels};
use super::CaseId;

/// The files of one case as the `dataset` key of `dataset.json` lists them, relative to the
/// dataset folder (checked: no absolute paths, no `..`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseEntry {
    /// Case identifier (the mapping's key).
    pub id: CaseId,
    /// One image file per channel, in channel order.
    pub images: Vec<PathBuf>,
    /// The label file.
    pub label: PathBuf,
}

/// A parsed, checked `dataset.json`.
///
/// Unknown keys (`name`, `description`, `licence`, ...) are accepted and ignored, as in nnU-Net.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetJson {
    /// Channel names in channel order (`channel_names`, or the legacy `modality`).
    pub channel_names: Vec<String>,
    /// The label declaration (`labels`).
    pub labels: Labels,
    /// Output label per region (`regions_class_order`); present iff the labels declare regions.
    pub regions_class_order: Option<Vec<u16>>,
    /// Declared number of training cases (`numTraining`).
    pub num_training: usize,
    /// File ending of every image and label file, e.g. `.nii.gz` (`file_ending`).
    pub file_ending: String,
    /// Explicit case list (`dataset`), in file order; `None` means: discover `imagesTr`.
    pub cases: Option<Vec<CaseEntry>>,
    /// The reader nnU-Net should use (`overwrite_image_reader_writer`), kept for reference.
    pub overwrite_image_reader_writer: Option<String>,
}

/// A JSON object read with its keys in file order (serde_json's map would sort them, and the
/// order of `labels` decides the order of regions). A repeated key keeps its first position and
/// its last value, as Python's `json` does.
#[derive(Debug)]
pub(crate) struct Ordered<V>(pub(crate) Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for OrderedVisitor<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, V)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, V>()? {
                    match entries.iter_mut().find(|(k, _)| *k == key) {
                        Some(slot) => slot.1 = value,
                        None => entries.push((key, value)),
                    }
                }
                Ok(Ordered(entries))
            }
        }
        deserializer.deserialize_map(OrderedVisitor(PhantomData))
    }
}

/// The file as serde sees it: every key optional, so missing keys become [`JsonFault`]s.
#[derive(Debug, Deserialize)]
struct RawDatasetJson {
    channel_names: Option<Ordered<String>>,
    modality: Option<Ordered<String>>,
    labels: Option<Ordered<Value>>,
    #[serde(rename = "numTraining")]
    num_training: Option<Value>,
    file_ending: Option<Value>,
    regions_class_order: Option<Vec<Value>>,
    dataset: Option<Ordered<RawCaseEntry>>,
    overwrite_image_reader_writer: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawCaseEntry {
    images: Vec<String>,
    label: String,
}

/// Why `dataset.json` text could not be turned into a [`DatasetJson`].
#[derive(Debug)]
pub(crate) enum ParseFailure {
    /// Empty or whitespace only.
    Empty,
    /// Not JSON, or a key has the wrong JSON type.
    Malformed(serde_json::Error),
    /// Valid JSON; these content faults (at least one).
    Invalid(Vec<JsonFault>),
}

impl DatasetJson {
    /// Parses `dataset.json` text, collecting every content fault.
    pub(crate) fn parse(text: &str) -> Result<DatasetJson, ParseFailure> {
        if text.trim().is_empty() {
            return Err(ParseFailure::Empty);
        }
        let raw: RawDatasetJson = serde_json::from_str(text).map_err(ParseFailure::Malformed)?;
        let mut faults = Vec::new();
        let json = check_raw(raw, &mut faults);
        match json {
            Some(json) if faults.is_empty() => Ok(json),
            _ => Err(ParseFailure::Invalid(faults)),
        }
    }

    /// Number of input channels.
    pub fn n_channels(&self) -> usize {
        self.channel_names.len()
    }

    /// The planner's view of this file: channels, labels in file order (ignore included),
    /// `numTraining` and `file_ending`, under the dataset name `name`.
    ///
    /// # Errors
    /// [`autoseg_planner::PlanError::InvalidDataset`] when the planner refuses the description
    /// (e.g. `numTraining` is 0).
    pub fn dataset_info(
        &self,
        name: &str,
    ) -> Result<autoseg_planner::DatasetInfo, autoseg_planner::PlanError> {
        autoseg_planner::DatasetInfo::new(
            name,
            self.channel_names.clone(),
            self.labels.file_order(),
            self.num_training,
            &self.file_ending,
        )
    }
}

/// Checks every key; returns the typed file if no required part is missing or invalid.
fn check_raw(raw: RawDatasetJson, faults: &mut Vec<JsonFault>) -> Option<DatasetJson> {
    let channel_names = match raw.channel_names.or(raw.modality) {
        Some(map) => check_channels(map, faults),
        None => missing("channel_names", faults),
    };
    let labels = match raw.labels {
        Some(map) => Labels::from_json(map.0, faults),
        None => missing("labels", faults),
    };
    let num_training = match raw.num_training {
        Some(v) => check_num_training(&v, faults),
        None => missing("numTraining", faults),
    };
    let file_ending = match raw.file_ending {
        Some(v) => check_file_ending(v, faults),
        None => missing("file_ending", faults),
    };
    let regions_class_order = raw
        .regions_class_order
        .map(|v| check_class_order(&v, faults));
    let cases = raw.dataset.map(|map| check_cases(map, faults));
    let labels = labels?;
    let regions_class_order = check_regions(&labels, regions_class_order.flatten(), faults);
    Some(DatasetJson {
        channel_names: channel_names?,
        labels,
        regions_class_order,
        num_training: num_training?,
        file_ending: file_ending?,
        cases,
        overwrite_image_reader_writer: raw.overwrite_image_reader_writer,
    })
}

fn missing<T>(key: &'static str, faults: &mut Vec<JsonFault>) -> Option<T> {
    faults.push(JsonFault::MissingKey { key });
    None
}

/// `channel_names` keys must be "0".."n-1" (any order); returns the names in index order.
fn check_channels(map: Ordered<String>, faults: &mut Vec<JsonFault>) -> Option<Vec<String>> {
    let n = map.0.len();
    if n == 0 {
        faults.push(JsonFault::NoChannels);
        return None;
    }
    let mut names: Vec<Option<String>> = vec![None; n];
    for (key, name) in &map.0 {
        match key.parse::<usize>() {
            Ok(idx) if idx < n && key == &idx.to_string() => names[idx] = Some(name.clone()),
            _ => {}
        }
    }
    let names: Option<Vec<String>> = names.into_iter().collect();
    if names.is_none() {
        faults.push(JsonFault::ChannelIndices {
            last: n - 1,
            keys: map.0.into_iter().map(|(k, _)| k).collect(),
        });
    }
    names
}

fn check_num_training(value: &Value, faults: &mut Vec<JsonFault>) -> Option<usize> {
    let n = value.as_u64().and_then(|n| usize::try_from(n).ok());
    if n.is_none() {
        faults.push(JsonFault::NumTraining {
            found: value.to_string(),
        });
    }
    n
}

fn check_file_ending(value: Value, faults: &mut Vec<JsonFault>) -> Option<String> {
    match value {
        Value::String(s) if crate::ImageFormat::from_ending(&s).is_some() => Some(s),
        other => {
            faults.push(JsonFault::FileEnding {
                found: other.to_string(),
            });
            None
        }
    }
}

fn check_class_order(values: &[Value], faults: &mut Vec<JsonFault>) -> Option<Vec<u16>> {
    let order: Vec<Option<u16>> = values.iter().map(label_number).collect();
    for (value, parsed) in values.iter().zip(&order) {
        if parsed.is_none() {
            faults.push(JsonFault::RegionsClassOrderValue {
                found: value.to_string(),
            });
        }
    }
    order.into_iter().collect()
}

/// nnU-Net: `LabelManager._get_regions` asserts `regions_class_order` has one entry per region.
fn check_regions(
    labels: &Labels,
    order: Option<Vec<u16>>,
    faults: &mut Vec<JsonFault>,
) -> Option<Vec<u16>> {
    let Some(regions) = labels.regions() else {
        return order;
    };
    match order {
        None => faults.push(JsonFault::MissingRegionsClassOrder),
        Some(ref o) if o.len() != regions.len() => {
            faults.push(JsonFault::RegionsClassOrderLength {
                expected: regions.len(),
                found: o.len(),
            })
        }
        Some(_) => {}
    }
    order
}

fn check_cases(map: Ordered<RawCaseEntry>, faults: &mut Vec<JsonFault>) -> Vec<CaseEntry> {
    let mut cases = Vec::with_capacity(map.0.len());
    for (id, raw) in map.0 {
        if raw.images.is_empty() {
            faults.push(JsonFault::NoCaseImages { case: id.clone() });
        }
        let images: Vec<Option<PathBuf>> = raw
            .images
            .iter()
            .map(|p| checked_path(&id, p, faults))
            .collect();
        let label = checked_path(&id, &raw.label, faults);
        if let (Some(images), Some(label)) = (images.into_iter().collect(), label) {
            cases.push(CaseEntry { id, images, label });
        }
    }
    cases
}

fn checked_path(case: &str, path: &str, faults: &mut Vec<JsonFault>) -> Option<PathBuf> {
    match path_problem(path) {
        None => Some(PathBuf::from(path)),
        Some(problem) => {
            faults.push(JsonFault::UnsafePath {
                case: case.to_string(),
                path: path.to_string(),
                problem,
            });
            None
        }
    }
}

/// Why `path` may not be used inside a dataset folder, if it may not.
pub(crate) fn path_problem(path: &str) -> Option<PathProblem> {
    let p = Path::new(path);
    if path.is_empty() {
        Some(PathProblem::Empty)
    } else if p.is_absolute() || p.has_root() || path.starts_with('\\') {
        Some(PathProblem::Absolute)
    } else if path.contains('$') {
        Some(PathProblem::EnvVar)
    } else if p
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        || path.split(['/', '\\']).any(|part| part == "..")
    {
        Some(PathProblem::ParentDir)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(text: &str) -> Vec<JsonFault> {
        match DatasetJson::parse(text) {
            Err(ParseFailure::Invalid(f)) => f,
            other => panic!("expected content faults, got {other:?}"),
        }
    }

    const VALID: &str = r#"{"channel_names": {"1": "ADC", "0": "T2"},
        "labels": {"background": 0, "tumor": 2, "edema": 1},
        "numTraining": 3, "file_ending": ".nii.gz", "name": "x"}"#;

    #[test]
    fn valid_file_parses_with_channels_in_index_order_and_labels_in_file_order() {
        let json = DatasetJson::parse(VALID).expect("valid");
        assert_eq!(json.channel_names, ["T2", "ADC"]);
        let names: Vec<&str> = json
            .labels
            .entries()
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["background", "tumor", "edema"]);
        assert_eq!(json.num_training, 3);
        assert_eq!(json.file_ending, ".nii.gz");
        assert!(json.cases.is_none());
    }

    #[test]
    fn planner_view_keeps_label_order_and_ignore() {
        let text = r#"{"channel_names": {"0": "T1"}, "labels": {"background": 0, "whole": [1, 2], "core": 2, "ignore": 3},
            "regions_class_order": [1, 2], "numTraining": 4, "file_ending": ".nii.gz"}"#;
        let info = DatasetJson::parse(text)
            .expect("valid")
            .dataset_info("Dataset001_X")
            .expect("planner accepts");
        assert_eq!(info.name(), "Dataset001_X");
        assert_eq!(info.channel_names(), ["T1"]);
        assert_eq!(info.num_training(), 4);
        assert_eq!(info.ignore_label(), Some(3));
        assert_eq!(info.n_segmentation_classes_for_vram(), 4);
        assert_eq!(
            info.labels()[1].value,
            autoseg_planner::LabelValue::Region(vec![1, 2])
        );
    }

    #[test]
    fn legacy_modality_key_is_accepted() {
        let text = r#"{"modality": {"0": "CT"}, "labels": {"background": 0},
            "numTraining": 0, "file_ending": ".nii.gz"}"#;
        assert_eq!(
            DatasetJson::parse(text).expect("valid").channel_names,
            ["CT"]
        );
    }

    #[test]
    fn every_missing_key_is_reported() {
        let f = faults(r#"{"name": "x"}"#);
        let keys: Vec<&str> = f
            .iter()
            .map(|f| match f {
                JsonFault::MissingKey { key } => *key,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            keys,
            ["channel_names", "labels", "numTraining", "file_ending"]
        );
    }

    #[test]
    fn bad_values_are_each_reported() {
        let text = r#"{"channel_names": {"0": "T2", "2": "ADC"}, "labels": {"background": 0, "a": -1, "b": "x"},
            "numTraining": -3, "file_ending": ""}"#;
        let f = faults(text);
        assert_eq!(f.len(), 5, "{f:?}");
        assert!(matches!(&f[0], JsonFault::ChannelIndices { last: 1, .. }));
        assert!(matches!(&f[1], JsonFault::LabelValue { name, .. } if name == "a"));
        assert!(matches!(&f[2], JsonFault::LabelValue { name, .. } if name == "b"));
        assert!(matches!(&f[3], JsonFault::NumTraining { .. }));
        assert!(matches!(&f[4], JsonFault::FileEnding { .. }));
    }

    #[test]
    fn empty_and_malformed_text_are_told_apart() {
        assert!(matches!(
            DatasetJson::parse(" \n"),
            Err(ParseFailure::Empty)
        ));
        assert!(matches!(
            DatasetJson::parse("{\"labels\": "),
            Err(ParseFailure::Malformed(_))
        ));
        assert!(matches!(
            DatasetJson::parse("[1, 2]"),
            Err(ParseFailure::Malformed(_))
        ));
    }

    #[test]
    fn dataset_mapping_keeps_file_order_and_refuses_escapes() {
        let text = r#"{"channel_names": {"0": "CT"}, "labels": {"background": 0, "x": 1},
            "numTraining": 2, "file_ending": ".nii.gz",
            "dataset": {"b": {"images": ["imagesTr/b_0000.nii.gz"], "label": "labelsTr/b.nii.gz"},
                        "a": {"images": ["./sub/a.nii.gz"], "label": "a_seg.nii.gz"}}}"#;
        let json = DatasetJson::parse(text).expect("valid");
        let cases = json.cases.expect("dataset key");
        assert_eq!(cases[0].id, "b");
        assert_eq!(cases[1].label, PathBuf::from("a_seg.nii.gz"));

        let bad = text
            .replace("imagesTr/b_0000.nii.gz", "../other/b.nii.gz")
            .replace("a_seg.nii.gz", "/etc/passwd");
        let f = faults(&bad);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            matches!(&f[0], JsonFault::UnsafePath { case, problem: PathProblem::ParentDir, .. } if case == "b")
        );
        assert!(
            matches!(&f[1], JsonFault::UnsafePath { case, problem: PathProblem::Absolute, .. } if case == "a")
        );
    }

    #[test]
    fn path_rules() {
        assert_eq!(path_problem("imagesTr/a_0000.nii.gz"), None);
        assert_eq!(path_problem("./a.nii.gz"), None);
        assert_eq!(path_problem(""), Some(PathProblem::Empty));
        assert_eq!(path_problem("/abs.nii.gz"), Some(PathProblem::Absolute));
        assert_eq!(path_problem("a/../../b"), Some(PathProblem::ParentDir));
        assert_eq!(path_problem("a\\..\\b"), Some(PathProblem::ParentDir));
        assert_eq!(path_problem("$HOME/a"), Some(PathProblem::EnvVar));
    }

    #[test]
    fn repeated_key_keeps_last_value() {
        let text = r#"{"channel_names": {"0": "CT", "0": "MR"}, "labels": {"background": 0},
            "numTraining": 1, "file_ending": ".nii"}"#;
        assert_eq!(
            DatasetJson::parse(text).expect("valid").channel_names,
            ["MR"]
        );
    }
}
