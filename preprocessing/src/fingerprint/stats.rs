//! numpy's statistics of the pooled foreground samples, reproduced operation for operation.
//!
//! nnU-Net aggregates with `np.mean`, `np.std`, `np.min`, `np.max` and `np.percentile((0.5, 50,
//! 99.5))` on a float32 array (`fingerprint_extractor.py::run`). numpy sums float32 in float32 by
//! pairwise summation (`loops_utils.h.src::pairwise_sum`: below 8 elements a plain loop, up to
//! 128 eight interleaved accumulators, beyond that halves split at a multiple of 8), divides the
//! float32 sum by the int64 count in float64 and rounds back to float32 (`_methods.py::_mean`,
//! `_var`), and interpolates percentiles in float64 from a float32 difference
//! (`function_base.py::_lerp`). Doing the same here gives bit-identical results; a float64
//! accumulation would differ in the 7th significant digit.
//!
//! When some case contributed no samples, nnU-Net concatenates an empty Python list, which numpy
//! makes float64, so the whole channel is then computed in float64; [`Precision`] selects that.

use std::ops::{Add, Mul, Sub};

use autoseg_planner::ForegroundIntensityProperties;

/// The dtype numpy computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precision {
    /// float32: every case contributed samples.
    F32,
    /// float64: at least one case contributed none (numpy promoted the concatenation).
    F64,
}

/// A float type numpy reduces in.
trait Real: Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> {
    /// numpy starts short sums at -0.0 (to keep a sum of -0.0 values negative).
    const NEG_ZERO: Self;
    /// The reduction's identity for `add`.
    const ZERO: Self;
    fn from_f32(v: f32) -> Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn sqrt(self) -> Self;
}

impl Real for f32 {
    const NEG_ZERO: f32 = -0.0;
    const ZERO: f32 = 0.0;
    fn from_f32(v: f32) -> f32 {
        v
    }
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn sqrt(self) -> f32 {
        f32::sqrt(self)
    }
}

impl Real for f64 {
    const NEG_ZERO: f64 = -0.0;
    const ZERO: f64 = 0.0;
    fn from_f32(v: f32) -> f64 {
        f64::from(v)
    }
    fn from_f64(v: f64) -> f64 {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
}

/// numpy's block size below which `pairwise_sum` stops splitting.
const PW_BLOCKSIZE: usize = 128;

/// numpy `pairwise_sum` of `term(v)` over `values`, in `T`.
fn pairwise_sum<T: Real>(values: &[f32], term: &impl Fn(f32) -> T) -> T {
    let n = values.len();
    if n < 8 {
        return values.iter().fold(T::NEG_ZERO, |acc, &v| acc + term(v));
    }
    if n <= PW_BLOCKSIZE {
        let mut r: [T; 8] = std::array::from_fn(|j| term(values[j]));
        let full = n - n % 8;
        for block in values[8..full].chunks_exact(8) {
            for (acc, &v) in r.iter_mut().zip(block) {
                *acc = *acc + term(v);
            }
        }
        let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        return values[full..].iter().fold(res, |acc, &v| acc + term(v));
    }
    let half = n / 2;
    let split = half - half % 8;
    pairwise_sum(&values[..split], term) + pairwise_sum(&values[split..], term)
}

/// `np.sum(values) / n` as `_mean` computes it: the `T` sum divided in float64 by the int64
/// count, rounded back to `T`.
fn mean<T: Real>(values: &[f32]) -> T {
    let sum = T::ZERO + pairwise_sum(values, &T::from_f32);
    T::from_f64(sum.to_f64() / values.len() as f64)
}

/// `(np.mean(values), np.std(values))` (population std) in `T`, as float64.
fn mean_std<T: Real>(values: &[f32]) -> (f64, f64) {
    let m: T = mean(values);
    let squares = T::ZERO
        + pairwise_sum(values, &|v| {
            let d = T::from_f32(v) - m;
            d * d
        });
    let var = T::from_f64(squares.to_f64() / values.len() as f64);
    (m.to_f64(), var.sqrt().to_f64())
}

/// The order statistics at `ranks` (strictly ascending, each `< values.len()`), partially
/// sorting `values` in place (numpy's `partition`; no NaN may be present): after selecting rank
/// `k`, everything from `k + 1` on is at least as large, so the next rank is found there.
fn order_statistics(values: &mut [f32], ranks: &[usize]) -> Vec<f32> {
    let mut lo = 0;
    let mut out = Vec::with_capacity(ranks.len());
    for &rank in ranks {
        let (_, nth, _) = values[lo..].select_nth_unstable_by(rank - lo, f32::total_cmp);
        out.push(*nth);
        lo = rank + 1;
    }
    out
}

/// `np.percentile(values, qs)` with the default linear method: virtual index `(n - 1) * q/100`
/// in float64, and `_lerp` from the neighbours with their difference taken in the array's dtype.
fn percentiles(values: &mut [f32], qs: &[f64], precision: Precision) -> Vec<f64> {
    let n = values.len();
    let last = n - 1;
    let positions: Vec<(usize, usize, f64)> = qs
        .iter()
        .map(|&q| {
            let virtual_index = last as f64 * (q / 100.0);
            if virtual_index >= last as f64 {
                return (last, last, 0.0);
            }
            let previous = virtual_index.floor();
            let prev_idx = previous as usize;
            (prev_idx, prev_idx + 1, virtual_index - previous)
        })
        .collect();
    let mut ranks: Vec<usize> = positions.iter().flat_map(|&(a, b, _)| [a, b]).collect();
    ranks.sort_unstable();
    ranks.dedup();
    let stats = order_statistics(values, &ranks);
    let at = |rank: usize| stats[ranks.binary_search(&rank).expect("rank was requested")];
    positions
        .iter()
        .map(|&(a, b, t)| lerp(at(a), at(b), t, precision))
        .collect()
}

/// numpy `_lerp(a, b, t)`: `a + (b - a) * t`, or `b - (b - a) * (1 - t)` for `t >= 0.5`.
fn lerp(a: f32, b: f32, t: f64, precision: Precision) -> f64 {
    let diff = match precision {
        Precision::F32 => f64::from(b - a),
        Precision::F64 => f64::from(b) - f64::from(a),
    };
    if t >= 0.5 {
        f64::from(b) - diff * (1.0 - t)
    } else {
        f64::from(a) + diff * t
    }
}

/// nnU-Net's per-channel foreground statistics of the pooled samples (reordered in place).
/// All NaN when there are no samples (nnU-Net itself fails on that dataset).
pub(crate) fn channel_statistics(
    values: &mut [f32],
    precision: Precision,
) -> ForegroundIntensityProperties {
    if values.is_empty() {
        let nan = f64::NAN;
        return ForegroundIntensityProperties {
            mean: nan,
            median: nan,
            std: nan,
            min: nan,
            max: nan,
            percentile_00_5: nan,
            percentile_99_5: nan,
        };
    }
    let (mean, std) = match precision {
        Precision::F32 => mean_std::<f32>(values),
        Precision::F64 => mean_std::<f64>(values),
    };
    let min = values.iter().copied().fold(f32::INFINITY, f32::min);
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let p = percentiles(values, &[0.5, 50.0, 99.5], precision);
    ForegroundIntensityProperties {
        mean,
        median: p[1],
        std,
        min: f64::from(min),
        max: f64::from(max),
        percentile_00_5: p[0],
        percentile_99_5: p[2],
    }
}

/// `np.median` of float64 values: the middle value, or the mean of the two middle values.
pub(crate) fn median_f64(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `((i * 7919) % 10007) * 0.37 + 12345.678` in float32, i < n: a large offset with a
    /// small spread, so the float32 rounding of the sums is visible.
    fn ramp(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919) % 10007) as f32 * 0.37f32 + 12345.678f32)
            .collect()
    }

    // numpy 2.4.6:
    //   i = np.arange(300_001); b = ((i*7919) % 10007).astype(np.float32)
    //   b = b * np.float32(0.37) + np.float32(12345.678)
    //   np.sum(b) -> 4259052544.0 (summing in blocks of 8192 would give 4259052800.0)
    //   np.mean(b) -> 14196.794921875, np.std(b) -> 1068.8489990234375 (float64: 1068.848988...)
    //   np.percentile(b, (0.5, 50, 99.5)) -> 12364.177734375, 14196.7880859375, 16029.3974609375
    //   b.min(), b.max() -> 12345.677734375, 16047.8974609375
    #[test]
    fn float32_statistics_match_numpy_bit_for_bit() {
        let mut values = ramp(300_001);
        let sum = 0.0f32 + pairwise_sum(&values, &|v| v);
        assert_eq!(sum, 4_259_052_544.0);
        let stats = channel_statistics(&mut values, Precision::F32);
        assert_eq!(stats.mean, 14196.794921875);
        assert_eq!(stats.std, 1068.8489990234375);
        assert_eq!(stats.percentile_00_5, 12364.177734375);
        assert_eq!(stats.median, 14196.7880859375);
        assert_eq!(stats.percentile_99_5, 16029.3974609375);
        assert_eq!(stats.min, 12345.677734375);
        assert_eq!(stats.max, 16047.8974609375);
    }

    #[test]
    fn percentiles_interpolate_linearly() {
        // np.percentile([1, 2, 3, 4], (0.5, 50, 99.5)) -> 1.015, 2.5, 3.985
        let mut values = vec![4.0, 1.0, 3.0, 2.0];
        let p = percentiles(&mut values, &[0.5, 50.0, 99.5], Precision::F32);
        assert!((p[0] - 1.015).abs() < 1e-12, "{p:?}");
        assert_eq!(p[1], 2.5);
        assert!((p[2] - 3.985).abs() < 1e-12, "{p:?}");
        let mut one = vec![7.0];
        assert_eq!(
            percentiles(&mut one, &[0.5, 99.5], Precision::F64),
            [7.0, 7.0]
        );
    }

    #[test]
    fn short_sums_and_the_float64_path() {
        let values = [1.0f32, 2.0, 3.0, 4.0];
        let (mean, std) = mean_std::<f64>(&values);
        assert_eq!(mean, 2.5);
        assert_eq!(std, 1.25f64.sqrt());
        let (mean, std) = mean_std::<f32>(&values);
        assert_eq!((mean, std), (2.5, f64::from(1.25f32.sqrt())));
    }

    #[test]
    fn no_samples_give_nan_and_median_averages_the_middle_pair() {
        let stats = channel_statistics(&mut [], Precision::F32);
        assert!(stats.mean.is_nan() && stats.percentile_99_5.is_nan());
        assert_eq!(median_f64(&[0.5, 1.0, 0.25, 1.0]), 0.75);
        assert_eq!(median_f64(&[0.3, 0.1, 0.2]), 0.2);
    }
}
