//! `summary.json` as nnU-Net writes it: sorted keys, 4-space indent, per-case counts as
//! integers, and NaN / ±infinity as Python's `json.dump` writes them (the bare tokens `NaN`,
//! `Infinity`, `-Infinity`), so the file reads back with Python's `json.load` and with
//! [`Summary::from_json`].
//!
//! serde_json cannot hold non-finite numbers, so they travel as sentinel strings that begin with
//! a NUL character (which no file name can contain) and are swapped for the bare tokens in the
//! text, in both directions.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::classes::class_from_key;
use crate::counts::VoxelCounts;
use crate::metrics::{CaseMetrics, LabelMetrics, Metric};
use crate::summary::{MetricValues, Summary};
use crate::surface::SurfaceMetrics;
use crate::EvaluationError;

/// Bare JSON tokens (Python's spelling) and the sentinel strings standing in for them.
const NON_FINITE: [(&str, &str, f64); 3] = [
    ("-Infinity", "\u{0}-Infinity", f64::NEG_INFINITY),
    ("Infinity", "\u{0}Infinity", f64::INFINITY),
    ("NaN", "\u{0}NaN", f64::NAN),
];

impl Summary {
    /// The `summary.json` text (see the module docs for the format).
    pub fn to_json(&self) -> String {
        let mut text = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut serializer = serde_json::Serializer::with_formatter(&mut text, formatter);
        summary_value(self)
            .serialize(&mut serializer)
            .expect("a serde_json::Value always serialises to memory");
        let mut text = String::from_utf8(text).expect("serde_json writes UTF-8");
        for (token, sentinel, _) in NON_FINITE {
            let quoted = serde_json::to_string(sentinel).expect("a string serialises");
            text = text.replace(&quoted, token);
        }
        text
    }

    /// Parses a `summary.json` written by nnU-Net or autoseg; `what` names it in errors.
    ///
    /// # Errors
    /// [`EvaluationError::Json`] for invalid JSON, [`EvaluationError::SummarySchema`] for a
    /// missing or mistyped field, [`EvaluationError::InvalidClassKey`] and
    /// [`EvaluationError::UnknownMetric`] for keys autoseg does not know.
    pub fn from_json(text: &str, what: &str) -> Result<Summary, EvaluationError> {
        let value: Value = serde_json::from_str(&quote_non_finite(text)).map_err(|source| {
            EvaluationError::Json {
                what: what.to_string(),
                source,
            }
        })?;
        SummaryReader { what }.summary(&value)
    }

    /// Writes `summary.json` to `path` atomically.
    ///
    /// # Errors
    /// [`EvaluationError::Io`] naming the file.
    pub fn write(&self, path: &Path) -> Result<(), EvaluationError> {
        autoseg_planner::write_atomic(path, self.to_json().as_bytes()).map_err(|source| {
            EvaluationError::Io {
                path: path.to_path_buf(),
                action: "write",
                source,
            }
        })
    }

    /// Reads a `summary.json`.
    ///
    /// # Errors
    /// [`EvaluationError::Io`] naming the file, or any error of [`Summary::from_json`].
    pub fn read(path: &Path) -> Result<Summary, EvaluationError> {
        let text = std::fs::read_to_string(path).map_err(|source| EvaluationError::Io {
            path: path.to_path_buf(),
            action: "read",
            source,
        })?;
        Summary::from_json(&text, &path.display().to_string())
    }
}

fn float_value(v: f64) -> Value {
    match Number::from_f64(v) {
        Some(n) => Value::Number(n),
        None => {
            let (_, sentinel, _) = NON_FINITE
                .into_iter()
                .find(|&(_, _, f)| (f.is_nan() && v.is_nan()) || f == v)
                .expect("a non-finite f64 is NaN or ±infinity");
            Value::String(sentinel.to_string())
        }
    }
}

/// A JSON object with keys inserted in sorted order (also sorted under serde_json's
/// `preserve_order`).
fn object(entries: BTreeMap<String, Value>) -> Value {
    Value::Object(entries.into_iter().collect::<Map<String, Value>>())
}

fn metric_values(values: &MetricValues) -> Value {
    object(
        values
            .iter()
            .map(|(m, &v)| (m.name().to_string(), float_value(v)))
            .collect(),
    )
}

fn label_metrics(metrics: &LabelMetrics) -> Value {
    let entries = metrics
        .present()
        .into_iter()
        .map(|m| {
            let v = metrics
                .get(m)
                .expect("present() lists computed metrics only");
            let value = if m.is_count() {
                Value::from(v as u64)
            } else {
                float_value(v)
            };
            (m.name().to_string(), value)
        })
        .collect();
    object(entries)
}

fn summary_value(summary: &Summary) -> Value {
    let mean = summary
        .mean
        .iter()
        .map(|(class, values)| (class.key(), metric_values(values)))
        .collect();
    let cases = summary.metric_per_case.iter().map(case_value).collect();
    let mut top = BTreeMap::new();
    top.insert(
        "foreground_mean".to_string(),
        metric_values(&summary.foreground_mean),
    );
    top.insert("mean".to_string(), object(mean));
    top.insert("metric_per_case".to_string(), Value::Array(cases));
    object(top)
}

fn case_value(case: &CaseMetrics) -> Value {
    let metrics = case
        .metrics
        .iter()
        .map(|(class, m)| (class.key(), label_metrics(m)))
        .collect();
    let mut entries = BTreeMap::new();
    entries.insert("metrics".to_string(), object(metrics));
    entries.insert(
        "prediction_file".to_string(),
        Value::from(case.prediction_file.clone()),
    );
    entries.insert(
        "reference_file".to_string(),
        Value::from(case.reference_file.clone()),
    );
    object(entries)
}

/// Replaces Python's bare `NaN`/`Infinity`/`-Infinity` tokens outside strings by sentinels.
fn quote_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut in_string = false;
    while let Some(c) = rest.chars().next() {
        if in_string {
            let len = if c == '\\' {
                1 + rest[1..].chars().next().map_or(0, char::len_utf8)
            } else {
                c.len_utf8()
            };
            in_string = c != '"';
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        if let Some((token, sentinel, _)) = NON_FINITE.iter().find(|(t, _, _)| rest.starts_with(t))
        {
            out.push_str(&serde_json::to_string(sentinel).expect("a string serialises"));
            rest = &rest[token.len()..];
            continue;
        }
        in_string = c == '"';
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Walks a parsed `summary.json`, naming the file and JSON path in every error.
struct SummaryReader<'a> {
    what: &'a str,
}

impl SummaryReader<'_> {
    fn fault(&self, fault: String) -> EvaluationError {
        EvaluationError::SummarySchema {
            what: self.what.to_string(),
            fault,
        }
    }

    fn field<'v>(
        &self,
        value: &'v Value,
        key: &str,
        path: &str,
    ) -> Result<&'v Value, EvaluationError> {
        value
            .get(key)
            .ok_or_else(|| self.fault(format!("{path}: missing key '{key}'")))
    }

    fn object<'v>(
        &self,
        value: &'v Value,
        path: &str,
    ) -> Result<&'v Map<String, Value>, EvaluationError> {
        value
            .as_object()
            .ok_or_else(|| self.fault(format!("{path}: expected an object")))
    }

    fn float(&self, value: &Value, path: &str) -> Result<f64, EvaluationError> {
        if let Some(s) = value.as_str() {
            if let Some(&(_, _, v)) = NON_FINITE.iter().find(|(_, sentinel, _)| *sentinel == s) {
                return Ok(v);
            }
        }
        value
            .as_f64()
            .ok_or_else(|| self.fault(format!("{path}: expected a number")))
    }

    fn count(&self, value: &Value, path: &str) -> Result<u64, EvaluationError> {
        let v = self.float(value, path)?;
        if v >= 0.0 && v.fract() == 0.0 && v.is_finite() {
            Ok(v as u64)
        } else {
            Err(self.fault(format!("{path}: expected a voxel count, found {v}")))
        }
    }

    fn summary(&self, value: &Value) -> Result<Summary, EvaluationError> {
        let foreground_mean =
            self.metric_values(self.field(value, "foreground_mean", "")?, "foreground_mean")?;
        let mut mean = Vec::new();
        for (key, values) in self.object(self.field(value, "mean", "")?, "mean")? {
            let path = format!("mean.{key}");
            mean.push((class_from_key(key)?, self.metric_values(values, &path)?));
        }
        mean.sort_by(|a, b| a.0.cmp(&b.0));
        let cases = self
            .field(value, "metric_per_case", "")?
            .as_array()
            .ok_or_else(|| self.fault("metric_per_case: expected an array".to_string()))?;
        let metric_per_case = cases
            .iter()
            .enumerate()
            .map(|(i, case)| self.case(case, &format!("metric_per_case[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Summary {
            foreground_mean,
            mean,
            metric_per_case,
        })
    }

    fn metric_values(&self, value: &Value, path: &str) -> Result<MetricValues, EvaluationError> {
        self.object(value, path)?
            .iter()
            .map(|(name, v)| {
                Ok((
                    Metric::from_name(name)?,
                    self.float(v, &format!("{path}.{name}"))?,
                ))
            })
            .collect()
    }

    fn case(&self, value: &Value, path: &str) -> Result<CaseMetrics, EvaluationError> {
        let text = |key: &str| -> Result<String, EvaluationError> {
            self.field(value, key, path)?
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| self.fault(format!("{path}.{key}: expected a string")))
        };
        let mut metrics = Vec::new();
        for (key, m) in self.object(self.field(value, "metrics", path)?, path)? {
            let class_path = format!("{path}.metrics.{key}");
            metrics.push((class_from_key(key)?, self.label_metrics(m, &class_path)?));
        }
        metrics.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(CaseMetrics {
            prediction_file: text("prediction_file")?,
            reference_file: text("reference_file")?,
            metrics,
        })
    }

    /// Counts are required; surface metrics are read when all three are present. The other
    /// metrics follow from the counts (unknown names are still an error).
    fn label_metrics(&self, value: &Value, path: &str) -> Result<LabelMetrics, EvaluationError> {
        let map = self.object(value, path)?;
        let mut read = BTreeMap::new();
        for (name, v) in map {
            read.insert(Metric::from_name(name)?, v);
        }
        let count = |m: Metric| -> Result<u64, EvaluationError> {
            let v = read
                .get(&m)
                .ok_or_else(|| self.fault(format!("{path}: missing key '{}'", m.name())))?;
            self.count(v, &format!("{path}.{}", m.name()))
        };
        let counts = VoxelCounts {
            true_positive: count(Metric::TP)?,
            false_positive: count(Metric::FP)?,
            false_negative: count(Metric::FN)?,
            true_negative: count(Metric::TN)?,
        };
        let surface_value = |m: Metric| {
            read.get(&m)
                .map(|v| self.float(v, &format!("{path}.{}", m.name())))
        };
        let surface = match (
            surface_value(Metric::Hd95),
            surface_value(Metric::Assd),
            surface_value(Metric::Nsd),
        ) {
            (Some(hd95), Some(assd), Some(nsd)) => Some(SurfaceMetrics {
                hd95: hd95?,
                assd: assd?,
                nsd: nsd?,
            }),
            _ => None,
        };
        Ok(LabelMetrics { counts, surface })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoseg_planner::LabelValue;

    #[test]
    fn non_finite_tokens_are_quoted_outside_strings_only() {
        let text = r#"{"a": NaN, "b": [Infinity, -Infinity], "NaN": "x NaN \" Infinity"}"#;
        let quoted = quote_non_finite(text);
        let value: Value = serde_json::from_str(&quoted).unwrap();
        assert_eq!(value["a"], Value::from("\u{0}NaN"));
        assert_eq!(value["b"][0], Value::from("\u{0}Infinity"));
        assert_eq!(value["b"][1], Value::from("\u{0}-Infinity"));
        assert_eq!(value["NaN"], Value::from("x NaN \" Infinity"));
    }

    #[test]
    fn reads_an_nnunet_summary() {
        // Shaped like nnU-Net 2.8.1's summary.json (json.dump, sort_keys=True, indent=4).
        let text = r#"{
    "foreground_mean": {"Dice": NaN, "FN": 1.0, "FP": 0.0, "IoU": NaN, "TN": 7.0, "TP": 0.0,
                        "n_pred": 0.0, "n_ref": 1.0},
    "mean": {"(1, 2)": {"Dice": NaN, "FN": 1.0, "FP": 0.0, "IoU": NaN, "TN": 7.0, "TP": 0.0,
                        "n_pred": 0.0, "n_ref": 1.0}},
    "metric_per_case": [{"metrics": {"(1, 2)": {"Dice": 0.0, "FN": 1, "FP": 0, "IoU": 0.0,
        "TN": 7, "TP": 0, "n_pred": 0, "n_ref": 1}},
        "prediction_file": "/p/a.nii.gz", "reference_file": "/r/a.nii.gz"}]
}"#;
        let summary = Summary::from_json(text, "summary.json").unwrap();
        assert!(summary.foreground_dice().is_nan());
        let region = LabelValue::Region(vec![1, 2]);
        let case = summary.metric_per_case[0].get(&region).unwrap();
        assert_eq!(case.counts.false_negative, 1);
        assert_eq!(case.counts.true_negative, 7);
        assert_eq!(summary.metric_per_case[0].reference_file, "/r/a.nii.gz");
    }

    #[test]
    fn schema_faults_name_the_path() {
        let text = r#"{"foreground_mean": {}, "mean": {}, "metric_per_case": [{"metrics": {"1": {"TP": 1}}, "prediction_file": "a", "reference_file": "b"}]}"#;
        let err = Summary::from_json(text, "s.json").unwrap_err().to_string();
        assert!(
            err.contains("s.json") && err.contains("metric_per_case[0].metrics.1"),
            "{err}"
        );
        let unknown = r#"{"foreground_mean": {"Dise": 1.0}, "mean": {}, "metric_per_case": []}"#;
        assert!(matches!(
            Summary::from_json(unknown, "s.json"),
            Err(EvaluationError::UnknownMetric { .. })
        ));
    }
}
