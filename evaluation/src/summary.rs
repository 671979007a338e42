//! The summary of an evaluation, shaped like nnU-Net's `summary.json`, and a readable table.
//!
//! nnU-Net: `evaluation/evaluate_predictions.py::compute_metrics_on_folder`:
//! `mean[class][metric]` is the NaN-ignoring mean over cases, and `foreground_mean[metric]` the
//! plain mean over classes of those means (a NaN class mean makes it NaN), leaving out a class
//! keyed `"0"`. The JSON form is in `summary_json.rs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::classes::LabelOrRegion;
use crate::metrics::{CaseMetrics, Metric};

/// Values of several metrics (a mean per class, or the foreground mean).
pub type MetricValues = BTreeMap<Metric, f64>;

/// An evaluation of many cases: nnU-Net's `summary.json` plus autoseg's extra metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Mean over classes of the per-class means.
    pub foreground_mean: MetricValues,
    /// NaN-ignoring mean over cases, per class in evaluation order.
    pub mean: Vec<(LabelOrRegion, MetricValues)>,
    /// Every case's metrics, in input order.
    pub metric_per_case: Vec<CaseMetrics>,
}

impl Summary {
    /// Aggregates per-case metrics. The metrics averaged are those of the first case's first
    /// class (nnU-Net's `metric_list`); without cases every mean is empty.
    pub fn from_cases(classes: &[LabelOrRegion], metric_per_case: Vec<CaseMetrics>) -> Summary {
        let metric_list: Vec<Metric> = metric_per_case
            .first()
            .and_then(|case| case.metrics.first())
            .map(|(_, m)| m.present())
            .unwrap_or_default();
        let mean: Vec<(LabelOrRegion, MetricValues)> = classes
            .iter()
            .map(|class| {
                let values = metric_list
                    .iter()
                    .map(|&m| (m, nanmean(&case_values(&metric_per_case, class, m))))
                    .collect();
                (class.clone(), values)
            })
            .collect();
        let foreground_mean = foreground_mean(&mean, &metric_list);
        Summary {
            foreground_mean,
            mean,
            metric_per_case,
        }
    }

    /// The mean metrics of one class.
    pub fn mean_of(&self, class: &LabelOrRegion) -> Option<&MetricValues> {
        self.mean.iter().find(|(c, _)| c == class).map(|(_, v)| v)
    }

    /// The foreground-mean Dice, the number nnU-Net selects models and postprocessing by (NaN
    /// when absent).
    pub fn foreground_dice(&self) -> f64 {
        self.foreground_mean
            .get(&Metric::Dice)
            .copied()
            .unwrap_or(f64::NAN)
    }

    /// The mean Dice of one class (NaN when absent).
    pub fn class_dice(&self, class: &LabelOrRegion) -> f64 {
        self.mean_of(class)
            .and_then(|v| v.get(&Metric::Dice).copied())
            .unwrap_or(f64::NAN)
    }
}

/// One metric of one class over all cases (cases without the class or metric are skipped).
fn case_values(cases: &[CaseMetrics], class: &LabelOrRegion, metric: Metric) -> Vec<f64> {
    cases
        .iter()
        .filter_map(|case| case.get(class).and_then(|m| m.get(metric)))
        .collect()
}

/// numpy's `nanmean`: mean of the non-NaN values, NaN if there are none.
pub(crate) fn nanmean(values: &[f64]) -> f64 {
    let kept: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if kept.is_empty() {
        return f64::NAN;
    }
    kept.iter().sum::<f64>() / kept.len() as f64
}

/// numpy's `nanstd` (population, ddof = 0): NaN if no value is left.
fn nanstd(values: &[f64]) -> f64 {
    let mean = nanmean(values);
    let squares: Vec<f64> = values
        .iter()
        .filter(|v| !v.is_nan())
        .map(|v| (v - mean) * (v - mean))
        .collect();
    nanmean(&squares).sqrt()
}

fn foreground_mean(mean: &[(LabelOrRegion, MetricValues)], metric_list: &[Metric]) -> MetricValues {
    let foreground: Vec<&MetricValues> = mean
        .iter()
        .filter(|(class, _)| *class != LabelOrRegion::Label(0))
        .map(|(_, values)| values)
        .collect();
    metric_list
        .iter()
        .map(|&m| {
            let values: Vec<f64> = foreground.iter().map(|v| v[&m]).collect();
            let plain_mean = if values.is_empty() {
                f64::NAN
            } else {
                values.iter().sum::<f64>() / values.len() as f64
            };
            (m, plain_mean)
        })
        .collect()
}

/// The metrics the table shows, when the summary has them.
const TABLE_METRICS: [Metric; 7] = [
    Metric::Dice,
    Metric::IoU,
    Metric::Sensitivity,
    Metric::Precision,
    Metric::Hd95,
    Metric::Assd,
    Metric::Nsd,
];

/// A plain-text table: one row per class with `mean ± std` over cases (NaN cases left out),
/// and a last row with the foreground mean. Distances are in mm.
pub fn format_table(summary: &Summary) -> String {
    let shown: Vec<Metric> = TABLE_METRICS
        .into_iter()
        .filter(|m| summary.foreground_mean.contains_key(m))
        .collect();
    let mut out = format!("{:<14}", "class");
    for m in &shown {
        let header = match m {
            Metric::Hd95 | Metric::Assd => format!("{} (mm)", m.name()),
            _ => m.name().to_string(),
        };
        let _ = write!(out, " {header:>19}");
    }
    out.push('\n');
    for (class, means) in &summary.mean {
        let _ = write!(out, "{:<14}", class.key());
        for &m in &shown {
            let std = nanstd(&case_values(&summary.metric_per_case, class, m));
            let cell = format!("{} ± {}", number(means[&m]), number(std));
            let _ = write!(out, " {cell:>19}");
        }
        out.push('\n');
    }
    let _ = write!(out, "{:<14}", "foreground");
    for m in &shown {
        let _ = write!(out, " {:>19}", number(summary.foreground_mean[m]));
    }
    out.push('\n');
    out
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "nan".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format!("{v:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counts::VoxelCounts;
    use crate::metrics::LabelMetrics;

    fn case(dices: &[(u64, u64, u64)]) -> CaseMetrics {
        CaseMetrics {
            prediction_file: "p.nii.gz".into(),
            reference_file: "r.nii.gz".into(),
            metrics: dices
                .iter()
                .enumerate()
                .map(|(i, &(tp, fp, fn_))| {
                    let counts = VoxelCounts {
                        true_positive: tp,
                        false_positive: fp,
                        false_negative: fn_,
                        true_negative: 100,
                    };
                    let class = LabelOrRegion::Label(i as u16 + 1);
                    let metrics = LabelMetrics {
                        counts,
                        surface: None,
                    };
                    (class, metrics)
                })
                .collect(),
        }
    }

    #[test]
    fn means_are_nanmean_over_cases_and_plain_mean_over_classes() {
        let classes = [LabelOrRegion::Label(1), LabelOrRegion::Label(2)];
        // Label 1: Dice 1.0 and 0.5. Label 2: Dice 0.0 and NaN (absent in case 2).
        let cases = vec![case(&[(4, 0, 0), (0, 2, 2)]), case(&[(1, 1, 1), (0, 0, 0)])];
        let summary = Summary::from_cases(&classes, cases);
        assert_eq!(summary.class_dice(&classes[0]), 0.75);
        assert_eq!(summary.class_dice(&classes[1]), 0.0);
        assert_eq!(summary.foreground_dice(), 0.375);
        assert_eq!(summary.mean_of(&classes[0]).unwrap()[&Metric::TP], 2.5);
        assert!(!summary.foreground_mean.contains_key(&Metric::Hd95));
    }

    #[test]
    fn a_class_absent_everywhere_makes_the_foreground_mean_nan() {
        let classes = [LabelOrRegion::Label(1), LabelOrRegion::Label(2)];
        let summary = Summary::from_cases(&classes, vec![case(&[(4, 0, 0), (0, 0, 0)])]);
        assert!(summary.class_dice(&classes[1]).is_nan());
        assert!(summary.foreground_dice().is_nan());
    }

    #[test]
    fn table_shows_mean_and_std_per_class() {
        let classes = [LabelOrRegion::Label(1), LabelOrRegion::Label(2)];
        let cases = vec![case(&[(4, 0, 0), (0, 2, 2)]), case(&[(1, 1, 1), (0, 0, 0)])];
        let table = format_table(&Summary::from_cases(&classes, cases));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[1].starts_with("1 ") && lines[1].contains("0.7500 ± 0.2500"));
        assert!(lines[2].contains("0.0000 ± 0.0000"));
        assert!(lines[3].starts_with("foreground") && lines[3].contains("0.3750"));
    }
}
