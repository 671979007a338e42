//! Gamma: `x = ((x - min) / max(range, 1e-7))^γ · range + min` per channel, keeping the
//! channel's mean and (unbiased, torch `std`) standard deviation; optionally on the inverted
//! image `-x`.
//!
//! nnU-Net: `RandomTransform(GammaTransform(gamma=BGContrast((0.7, 1.5)), p_invert_image=1,
//! synchronize_channels=False, p_per_channel=1, p_retain_stats=1), apply_probability=0.1)`, then
//! the same with `p_invert_image=0` and `apply_probability=0.3`.

use ndarray::{ArrayViewMut3, ArrayViewMut4, Axis};
use rand::Rng;

use super::fastpow::powf_in_place;
use super::{bg_contrast, channel_stats, ChannelStats};

const EPS: f64 = 1e-7;

/// Draws [`Gamma`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomGamma {
    /// Probability of applying (0.1 with inversion, 0.3 without).
    pub p: f64,
    /// Whether the image is inverted around the gamma curve.
    pub invert: bool,
    /// Gamma range for [`bg_contrast`] (0.7, 1.5).
    pub range: (f64, f64),
}

impl RandomGamma {
    /// nnU-Net's settings: `invert` true gives the p = 0.1 variant, false the p = 0.3 one.
    pub fn nnunet(invert: bool) -> RandomGamma {
        RandomGamma {
            p: if invert { 0.1 } else { 0.3 },
            invert,
            range: (0.7, 1.5),
        }
    }

    /// Draws one gamma per channel, or `None` (not applied).
    pub fn sample<R: Rng>(&self, rng: &mut R, n_channels: usize) -> Option<Gamma> {
        if rng.gen::<f64>() >= self.p {
            return None;
        }
        let gammas = (0..n_channels)
            .map(|_| bg_contrast(rng, self.range) as f32)
            .collect();
        Some(Gamma {
            gammas,
            invert: self.invert,
        })
    }
}

/// Applies `gammas[c]` to channel `c`, keeping its mean and std.
#[derive(Clone, Debug, PartialEq)]
pub struct Gamma {
    /// One gamma per channel.
    pub gammas: Vec<f32>,
    /// Whether to work on the inverted image.
    pub invert: bool,
}

impl Gamma {
    /// Applies the gamma curve to data `(c, z, y, x)` in place.
    pub fn apply(&self, mut data: ArrayViewMut4<'_, f32>) {
        for (mut channel, &g) in data.axis_iter_mut(Axis(0)).zip(&self.gammas) {
            match channel.as_slice_mut() {
                Some(values) => gamma_keep_stats_fused(values, g, self.invert),
                None => {
                    if self.invert {
                        channel.map_inplace(|v| *v = -*v);
                    }
                    gamma_keep_stats(channel.view_mut(), g);
                    if self.invert {
                        channel.map_inplace(|v| *v = -*v);
                    }
                }
            }
        }
    }
}

/// The gamma curve in f32 (as torch applies it), then the original mean and std restored.
fn gamma_keep_stats(mut channel: ArrayViewMut3<'_, f32>, gamma: f32) {
    let before = channel_stats(channel.view());
    let min = before.min;
    let range = before.max - min;
    let denom = range.max(EPS as f32);
    let mut lane_buf = Vec::with_capacity(channel.len_of(Axis(2)));
    for mut lane in channel.lanes_mut(Axis(2)) {
        lane_buf.clear();
        lane_buf.extend(lane.iter().map(|v| (*v - min) / denom));
        powf_in_place(&mut lane_buf, gamma);
        for (v, p) in lane.iter_mut().zip(&lane_buf) {
            *v = p * range + min;
        }
    }
    let after = channel_stats(channel.view());
    let factor = (before.std / after.std.max(EPS)) as f32;
    let (mean_after, mean_before) = (after.mean as f32, before.mean as f32);
    channel.map_inplace(|v| *v = (*v - mean_after) * factor + mean_before);
}

/// [`gamma_keep_stats`] on a contiguous channel in three passes (statistics, curve with the new
/// statistics, rescaling), the inversion folded in: negation is exact, so the result equals
/// negating, applying the curve and negating back (statistics up to summation order).
fn gamma_keep_stats_fused(values: &mut [f32], gamma: f32, invert: bool) {
    let sign = if invert { -1.0f32 } else { 1.0 };
    let raw = slice_stats(values);
    let before = if invert {
        ChannelStats {
            mean: -raw.mean,
            std: raw.std,
            min: -raw.max,
            max: -raw.min,
        }
    } else {
        raw
    };
    let min = before.min;
    let range = before.max - min;
    let denom = range.max(EPS as f32);
    let mut acc = Moments::new(min);
    for block in values.chunks_mut(4096) {
        for v in block.iter_mut() {
            *v = (sign * *v - min) / denom;
        }
        powf_in_place(block, gamma);
        for v in block.iter_mut() {
            *v = *v * range + min;
        }
        acc.add(block);
    }
    let after = acc.stats(values.len());
    let factor = (before.std / after.std.max(EPS)) as f32;
    let (mean_after, mean_before) = (after.mean as f32, before.mean as f32);
    for v in values.iter_mut() {
        *v = sign * ((*v - mean_after) * factor + mean_before);
    }
}

/// Lanes of [`Moments`]: two AVX2 vectors of f64 per accumulator.
const LANES: usize = 8;

/// Running sum and sum of squares (about a reference value, against cancellation), min and
/// max, in 8 interleaved lanes so that the loop vectorises and the additions pipeline.
pub(super) struct Moments {
    reference: f64,
    sum: [f64; LANES],
    sum_sq: [f64; LANES],
    min: [f32; LANES],
    max: [f32; LANES],
}

impl Moments {
    /// Empty moments measured about `reference` (any value near the data).
    pub(super) fn new(reference: f32) -> Moments {
        Moments {
            reference: f64::from(reference),
            sum: [0.0; LANES],
            sum_sq: [0.0; LANES],
            min: [f32::INFINITY; LANES],
            max: [f32::NEG_INFINITY; LANES],
        }
    }

    /// Adds every value of `values` (NaNs count in the sums but not in min and max), with AVX2
    /// where the CPU has it: the same operations, so the same result.
    pub(super) fn add(&mut self, values: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 was detected just above.
            unsafe { self.add_avx2(values) };
            return;
        }
        self.add_lanes(values);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn add_avx2(&mut self, values: &[f32]) {
        self.add_lanes(values);
    }

    #[inline(always)]
    fn add_lanes(&mut self, values: &[f32]) {
        let (mut sum, mut sum_sq, mut min, mut max) = (self.sum, self.sum_sq, self.min, self.max);
        let mut chunks = values.chunks_exact(LANES);
        for chunk in &mut chunks {
            for lane in 0..LANES {
                let v = chunk[lane];
                let d = f64::from(v) - self.reference;
                sum[lane] += d;
                sum_sq[lane] += d * d;
                min[lane] = if v < min[lane] { v } else { min[lane] };
                max[lane] = if v > max[lane] { v } else { max[lane] };
            }
        }
        for &v in chunks.remainder() {
            let d = f64::from(v) - self.reference;
            sum[0] += d;
            sum_sq[0] += d * d;
            min[0] = if v < min[0] { v } else { min[0] };
            max[0] = if v > max[0] { v } else { max[0] };
        }
        (self.sum, self.sum_sq, self.min, self.max) = (sum, sum_sq, min, max);
    }

    /// Mean, unbiased std, min and max of the `n` values added.
    pub(super) fn stats(&self, n: usize) -> ChannelStats {
        let n_f = n as f64;
        let sum: f64 = self.sum.iter().sum();
        let sum_sq: f64 = self.sum_sq.iter().sum();
        let var = ((sum_sq - sum * sum / n_f) / (n_f - 1.0).max(1.0)).max(0.0);
        ChannelStats {
            mean: self.reference + sum / n_f,
            std: var.sqrt(),
            min: self.min.iter().copied().fold(f32::INFINITY, f32::min),
            max: self.max.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        }
    }
}

/// [`channel_stats`] of a contiguous channel in one pass.
pub(super) fn slice_stats(values: &[f32]) -> ChannelStats {
    let mut acc = Moments::new(values.first().copied().unwrap_or(0.0));
    acc.add(values);
    acc.stats(values.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    fn stats(data: &Array4<f32>) -> (f64, f64) {
        let s = channel_stats(data.index_axis(Axis(0), 0));
        (s.mean, s.std)
    }

    #[test]
    fn gamma_on_known_values() {
        // [0, 1, 2, 4] -> normalised [0, .25, .5, 1] -> squared [0, .0625, .25, 1] × 4
        // = [0, .25, 1, 4], then rescaled to the original mean 1.75 and std.
        let mut data = Array4::from_shape_vec((1, 1, 1, 4), vec![0.0f32, 1.0, 2.0, 4.0]).unwrap();
        let before = stats(&data);
        Gamma {
            gammas: vec![2.0],
            invert: false,
        }
        .apply(data.view_mut());
        let raw = [0.0f64, 0.25, 1.0, 4.0];
        let m = raw.iter().sum::<f64>() / 4.0;
        let sd = (raw.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 3.0).sqrt();
        for (got, r) in data.iter().zip(raw) {
            let want = (r - m) / sd * before.1 + before.0;
            assert!((*got as f64 - want).abs() < 1e-5, "{got} vs {want}");
        }
        let after = stats(&data);
        assert!((after.0 - before.0).abs() < 1e-5 && (after.1 - before.1).abs() < 1e-5);
    }

    #[test]
    fn inverted_gamma_mirrors_the_curve() {
        // Inversion: gamma acts on -x, so values near the top move like values near the bottom
        // without inversion. With stats kept, inverted(x) = -plain(-x).
        let values = vec![0.0f32, 1.0, 3.0, 4.0, 10.0];
        let mut inv = Array4::from_shape_vec((1, 1, 1, 5), values.clone()).unwrap();
        Gamma {
            gammas: vec![1.5],
            invert: true,
        }
        .apply(inv.view_mut());
        let mut plain =
            Array4::from_shape_vec((1, 1, 1, 5), values.iter().map(|v| -v).collect()).unwrap();
        Gamma {
            gammas: vec![1.5],
            invert: false,
        }
        .apply(plain.view_mut());
        for (a, b) in inv.iter().zip(plain.iter()) {
            assert!((a + b).abs() < 1e-5);
        }
    }
}
