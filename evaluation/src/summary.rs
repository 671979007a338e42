//! The summary of an evaluation, shaped like nnU-Net's `summary.json`, [`evaluate_cases`] (every
//! case's metrics in parallel, then their summary), and a readable table.
//!
//! nnU-Net: `evaluation/evaluate_predictions.py::compute_metrics_on_folder`:
//! `mean[class][metric]` is the NaN-ignoring mean over cases, and `foreground_mean[metric]` the
//! plain mean over classes of those means (a NaN class mean makes it NaN), leaving out a class
//! keyed `"0"`. Both sum like numpy (pairwise, see `pairwise_sum`), so the means are
//! bit-identical to nnU-Net's. The JSON form is in `summary_json.rs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use autoseg_planner::LabelValue;
use rayon::prelude::*;

use crate::classes::LabelVoxel;
use crate::metrics::{
    evaluate_case, validate_settings, CaseInput, CaseMetrics, EvaluationSettings, Metric,
};
use crate::EvaluationError;

/// Evaluates every case (in parallel) and summarises them as nnU-Net's `summary.json` does.
///
/// # Errors
/// [`EvaluationError::NoCases`] for an empty list, else the first error of
/// [`evaluate_case`].
pub fn evaluate_cases<T: LabelVoxel>(
    cases: &[CaseInput<'_, T>],
    settings: &EvaluationSettings,
) -> Result<Summary, EvaluationError> {
    if cases.is_empty() {
        return Err(EvaluationError::NoCases { what: "evaluate" });
    }
    validate_settings(settings)?;
    let per_case = cases
        .par_iter()
        .map(|case| evaluate_case(case, settings))
        .collect::<Vec<_>>()
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Summary::from_cases(&settings.classes, per_case))
}

/// Values of several metrics (a mean per class, or the foreground mean).
pub type MetricValues = BTreeMap<Metric, f64>;

/// An evaluation of many cases: nnU-Net's `summary.json` plus autoseg's extra metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Mean over classes of the per-class means.
    pub foreground_mean: MetricValues,
    /// NaN-ignoring mean over cases, per class in evaluation order.
    pub mean: Vec<(LabelValue, MetricValues)>,
    /// Every case's metrics, in input order.
    pub metric_per_case: Vec<CaseMetrics>,
}

impl Summary {
    /// Aggregates per-case metrics. The metrics averaged are those of the first case's first
    /// class (nnU-Net's `metric_list`); without cases every mean is empty.
    pub fn from_cases(classes: &[LabelValue], metric_per_case: Vec<CaseMetrics>) -> Summary {
        let metric_list: Vec<Metric> = metric_per_case
            .first()
            .and_then(|case| case.metrics.first())
            .map(|(_, m)| m.present())
            .unwrap_or_default();
        let mean: Vec<(LabelValue, MetricValues)> = classes
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
    pub fn mean_of(&self, class: &LabelValue) -> Option<&MetricValues> {
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
    pub fn class_dice(&self, class: &LabelValue) -> f64 {
        self.mean_of(class)
            .and_then(|v| v.get(&Metric::Dice).copied())
            .unwrap_or(f64::NAN)
    }
}

/// One metric of one class over all cases (cases without the class or metric are skipped).
fn case_values(cases: &[CaseMetrics], class: &LabelValue, metric: Metric) -> Vec<f64> {
    cases
        .iter()
        .filter_map(|case| case.get(class).and_then(|m| m.get(metric)))
        .collect()
}

/// numpy's `nanmean`: the sum of the values with NaN replaced by 0, summed pairwise over the
/// whole array, divided by the number of non-NaN values; NaN if there are none.
/// numpy: `lib/_nanfunctions_impl.py::nanmean` (`_replace_nan`, `np.sum`, `_divide_by_count`).
pub(crate) fn nanmean(values: &[f64]) -> f64 {
    let (zeroed, count) = nan_to_zero(values);
    numpy_sum(&zeroed) / count as f64
}

/// numpy's `nanstd` (population, ddof = 0): the square root of the pairwise sum of squared
/// deviations from the [`nanmean`] (0 at NaN positions) over the non-NaN count; NaN if no
/// value is left. numpy: `lib/_nanfunctions_impl.py::nanvar`.
fn nanstd(values: &[f64]) -> f64 {
    let (zeroed, count) = nan_to_zero(values);
    let mean = numpy_sum(&zeroed) / count as f64;
    let squares: Vec<f64> = values
        .iter()
        .map(|&v| {
            if v.is_nan() {
                0.0
            } else {
                (v - mean) * (v - mean)
            }
        })
        .collect();
    (numpy_sum(&squares) / count as f64).sqrt()
}

/// numpy's `mean` of a 1-D float64 array: [`numpy_sum`] over the length; NaN when empty.
fn mean(values: &[f64]) -> f64 {
    numpy_sum(values) / values.len() as f64
}

/// The values with NaN replaced by 0 (numpy's `_replace_nan`), and how many were not NaN.
fn nan_to_zero(values: &[f64]) -> (Vec<f64>, usize) {
    let count = values.iter().filter(|v| !v.is_nan()).count();
    let zeroed = values
        .iter()
        .map(|&v| if v.is_nan() { 0.0 } else { v })
        .collect();
    (zeroed, count)
}

/// numpy's `np.sum` of a contiguous 1-D float64 array: the reduction starts from the identity
/// 0 and adds [`pairwise_sum`] of all the values.
fn numpy_sum(values: &[f64]) -> f64 {
    0.0 + pairwise_sum(values)
}

/// Values summed in one unrolled block by [`pairwise_sum`]; longer runs are halved.
const PAIRWISE_BLOCK: usize = 128;

/// numpy's `pairwise_sum` for float64 (`_core/src/umath/loops_utils.h.src`): fewer than 8
/// values are added left to right from 0; up to 128 go into 8 interleaved accumulators that
/// are combined as `((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))`, the remainder added
/// after; longer runs split at half the length rounded down to a multiple of 8.
pub(crate) fn pairwise_sum(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 8 {
        values.iter().fold(0.0, |sum, &v| sum + v)
    } else if n <= PAIRWISE_BLOCK {
        let mut r: [f64; 8] = values[..8].try_into().expect("n >= 8 values");
        let full = n - n % 8;
        for chunk in values[8..full].chunks_exact(8) {
            for (acc, &v) in r.iter_mut().zip(chunk) {
                *acc += v;
            }
        }
        let block = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        values[full..].iter().fold(block, |sum, &v| sum + v)
    } else {
        let half = n / 2;
        let split = half - half % 8;
        pairwise_sum(&values[..split]) + pairwise_sum(&values[split..])
    }
}

fn foreground_mean(
    mean_per_class: &[(LabelValue, MetricValues)],
    metric_list: &[Metric],
) -> MetricValues {
    let foreground: Vec<&MetricValues> = mean_per_class
        .iter()
        .filter(|(class, _)| *class != LabelValue::Single(0))
        .map(|(_, values)| values)
        .collect();
    metric_list
        .iter()
        .map(|&m| {
            let values: Vec<f64> = foreground.iter().map(|v| v[&m]).collect();
            (m, mean(&values))
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

/// A metric value as the tables print it: 4 decimals, or `nan` / `inf` / `-inf`.
pub(crate) fn number(v: f64) -> String {
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
                    let class = LabelValue::Single(i as u16 + 1);
                    let metrics = LabelMetrics {
                        counts,
                        surface: None,
                    };
                    (class, metrics)
                })
                .collect(),
        }
    }

    // Golden values from numpy 2.4.6 (peer venv), printed as IEEE bit patterns:
    //
    // import numpy as np, struct
    // bits = lambda x: hex(struct.unpack('<Q', struct.pack('<d', float(x)))[0])
    // vals = np.array([((i * 2654435761) % 4294967296) / 7.0 * (1.0 if i % 3 == 0 else 1e-2)
    //                  for i in range(1000)])
    // short = np.array([(k * 0.7) if k % 4 else np.nan for k in range(1, 17)])
    // print(bits(np.mean(vals)), bits(np.nanstd(vals)))       # 0x4198fbe91ad30643 0x41a50791d3211800
    // print(bits(np.nanmean(short)), bits(np.nanstd(short)))  # 0x4016666666666667 0x4009753b8054dbd6

    fn thousand_values() -> Vec<f64> {
        (0..1000u64)
            .map(|i| {
                let scale = if i % 3 == 0 { 1.0 } else { 1e-2 };
                ((i * 2654435761) % 4294967296) as f64 / 7.0 * scale
            })
            .collect()
    }

    fn short_with_nans() -> Vec<f64> {
        (1..=16)
            .map(|k| if k % 4 == 0 { f64::NAN } else { k as f64 * 0.7 })
            .collect()
    }

    fn running_mean(values: &[f64]) -> f64 {
        let kept: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        kept.iter().fold(0.0, |s, v| s + v) / kept.len() as f64
    }

    #[test]
    fn means_match_numpy_bit_for_bit() {
        let values = thousand_values();
        assert_eq!(mean(&values).to_bits(), 0x4198fbe91ad30643);
        assert_eq!(nanmean(&values).to_bits(), 0x4198fbe91ad30643);
        assert_eq!(nanstd(&values).to_bits(), 0x41a50791d3211800);
        // A running sum lands 4 ulp away, so the pairwise order is what is being checked.
        assert_eq!(running_mean(&values).to_bits(), 0x4198fbe91ad30647);
    }

    #[test]
    fn nanmean_sums_the_zero_filled_array_like_numpy() {
        let values = short_with_nans();
        assert_eq!(nanmean(&values).to_bits(), 0x4016666666666667);
        assert_eq!(nanstd(&values).to_bits(), 0x4009753b8054dbd6);
        assert_ne!(running_mean(&values).to_bits(), 0x4016666666666667);
    }

    #[test]
    fn empty_or_all_nan_means_are_nan() {
        assert!(mean(&[]).is_nan());
        assert!(nanmean(&[f64::NAN, f64::NAN]).is_nan());
        assert!(nanstd(&[]).is_nan());
        assert_eq!(pairwise_sum(&[]), 0.0);
    }

    #[test]
    fn pairwise_sum_splits_long_runs_at_multiples_of_eight() {
        // numpy: v = np.zeros(130); v[0] = 2.0**53; v[64] = v[72] = 1; np.sum(v) -> 2**53 + 2.
        // 130 values split 64 + 66, so both ones meet in the right half before the 2^53; a
        // running sum (or a split at 65) rounds each one away.
        let mut values = vec![0.0; 130];
        values[0] = 9007199254740992.0;
        values[64] = 1.0;
        values[72] = 1.0;
        assert_eq!(numpy_sum(&values), 9007199254740994.0);
        assert_eq!(values.iter().sum::<f64>(), 9007199254740992.0);
    }

    #[test]
    fn means_are_nanmean_over_cases_and_plain_mean_over_classes() {
        let classes = [LabelValue::Single(1), LabelValue::Single(2)];
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
        let classes = [LabelValue::Single(1), LabelValue::Single(2)];
        let summary = Summary::from_cases(&classes, vec![case(&[(4, 0, 0), (0, 0, 0)])]);
        assert!(summary.class_dice(&classes[1]).is_nan());
        assert!(summary.foreground_dice().is_nan());
    }

    #[test]
    fn table_shows_mean_and_std_per_class() {
        let classes = [LabelValue::Single(1), LabelValue::Single(2)];
        let cases = vec![case(&[(4, 0, 0), (0, 2, 2)]), case(&[(1, 1, 1), (0, 0, 0)])];
        let table = format_table(&Summary::from_cases(&classes, cases));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[1].starts_with("1 ") && lines[1].contains("0.7500 ± 0.2500"));
        assert!(lines[2].contains("0.0000 ± 0.0000"));
        assert!(lines[3].starts_with("foreground") && lines[3].contains("0.3750"));
    }
}
