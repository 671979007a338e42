//! Contrast: chosen channels stretched about their mean, clipped to their original range when
//! the range is preserved.
//!
//! nnU-Net: `RandomTransform(ContrastTransform(contrast_range=BGContrast((0.75, 1.25)),
//! preserve_range=True, synchronize_channels=False, p_per_channel=1), apply_probability=0.15)`;
//! DA5: `OneOfTransform` of two `RandomTransform(ContrastTransform(BGContrast((0.5, 2)),
//! preserve_range=True / False, synchronize_channels=False, p_per_channel=0.5),
//! apply_probability=0.2)`.

use ndarray::{ArrayViewMut4, Axis};
use rand::Rng;

use super::gamma::slice_stats;
use super::{bg_contrast, channel_stats, chosen_channels};

/// Draws [`Contrast`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomContrast {
    /// Probability of applying (0.15; DA5 0.2).
    pub p: f64,
    /// Factor range for [`bg_contrast`] (0.75, 1.25; DA5 (0.5, 2)).
    pub range: (f64, f64),
    /// Probability of changing each channel (1: every channel, no coin is tossed; DA5 0.5).
    pub p_per_channel: f64,
    /// Whether results are clipped to the channel's original range.
    pub preserve_range: bool,
}

impl RandomContrast {
    /// nnU-Net's settings.
    pub fn nnunet() -> RandomContrast {
        RandomContrast {
            p: 0.15,
            range: (0.75, 1.25),
            p_per_channel: 1.0,
            preserve_range: true,
        }
    }

    /// DA5's settings, with or without preserving the range (DA5 picks one of the two).
    pub fn da5(preserve_range: bool) -> RandomContrast {
        RandomContrast {
            p: 0.2,
            range: (0.5, 2.0),
            p_per_channel: 0.5,
            preserve_range,
        }
    }

    /// Draws which channels change (all when `p_per_channel >= 1`), then one factor per chosen
    /// channel, or `None` (not applied).
    pub fn sample<R: Rng>(&self, rng: &mut R, n_channels: usize) -> Option<Contrast> {
        if rng.gen::<f64>() >= self.p {
            return None;
        }
        let chosen: Vec<usize> = if self.p_per_channel >= 1.0 {
            (0..n_channels).collect()
        } else {
            chosen_channels(rng, n_channels, self.p_per_channel)
        };
        let channels = chosen
            .into_iter()
            .map(|c| (c, bg_contrast(rng, self.range) as f32))
            .collect();
        Some(Contrast {
            channels,
            preserve_range: self.preserve_range,
        })
    }
}

/// `x = (x - mean) · f + mean` per chosen channel, clipped to the channel's original
/// `[min, max]` when `preserve_range`.
#[derive(Clone, Debug, PartialEq)]
pub struct Contrast {
    /// `(channel, factor)` pairs.
    pub channels: Vec<(usize, f32)>,
    /// Whether to clip to the original range.
    pub preserve_range: bool,
}

impl Contrast {
    /// Changes the contrast of data `(c, z, y, x)` in place.
    pub fn apply(&self, mut data: ArrayViewMut4<'_, f32>) {
        for &(c, f) in &self.channels {
            let mut channel = data.index_axis_mut(Axis(0), c);
            let stats = match channel.as_slice() {
                Some(values) => slice_stats(values),
                None => channel_stats(channel.view()),
            };
            let mean = stats.mean as f32;
            if self.preserve_range {
                channel.map_inplace(|v| *v = ((*v - mean) * f + mean).clamp(stats.min, stats.max));
            } else {
                channel.map_inplace(|v| *v = (*v - mean) * f + mean);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    fn clipped(channels: Vec<(usize, f32)>) -> Contrast {
        Contrast {
            channels,
            preserve_range: true,
        }
    }

    #[test]
    fn contrast_keeps_the_mean_and_the_range() {
        // Values symmetric about their mean 5: no clipping is needed when f < 1, and the mean
        // stays 5 exactly.
        let mut data = Array4::from_shape_fn((1, 2, 2, 4), |(_, z, y, x)| {
            (z * 8 + y * 4 + x) as f32 * 2.0 / 3.0
        });
        let mean_before = data.mean().unwrap();
        clipped(vec![(0, 0.8)]).apply(data.view_mut());
        assert!((data.mean().unwrap() - mean_before).abs() < 1e-5);
        assert!((data[[0, 0, 0, 0]] - (mean_before - 0.8 * mean_before)).abs() < 1e-5);
        // f > 1: stretched values are clipped to the original [0, 10].
        let mut data = Array4::from_shape_fn((1, 1, 1, 3), |(_, _, _, x)| [0.0f32, 1.0, 10.0][x]);
        clipped(vec![(0, 1.2)]).apply(data.view_mut());
        let mean = 11.0f32 / 3.0;
        assert_eq!(data[[0, 0, 0, 0]], 0.0);
        assert!((data[[0, 0, 0, 1]] - ((1.0 - mean) * 1.2 + mean)).abs() < 1e-5);
        assert_eq!(data[[0, 0, 0, 2]], 10.0);
    }

    // Golden values: scripts/golden_da5.py (bg2 `ContrastTransform(preserve_range=False)`,
    // factor 1.7 on channel 1 of the golden input (2, 2, 3, 4)).
    #[test]
    fn unclipped_contrast_matches_bg2() {
        let mut data = Array4::from_shape_fn((2, 2, 3, 4), |(c, z, y, x)| {
            ((c * 11 + z * 7 + y * 3 + x * 5) % 17) as f32 * 0.25 - 1.0
        });
        let before = data.clone();
        Contrast {
            channels: vec![(1, 1.7)],
            preserve_range: false,
        }
        .apply(data.view_mut());
        assert_eq!(data.index_axis(Axis(0), 0), before.index_axis(Axis(0), 0));
        for (g, w) in data
            .index_axis(Axis(0), 1)
            .iter()
            .zip(GOLDEN_CONTRAST_FREE_C1)
        {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
        // Beyond the original range [-1, 3]: nothing is clipped.
        assert!(data.iter().any(|&v| v > 3.0) && data.iter().any(|&v| v < -1.0));
    }

    const GOLDEN_CONTRAST_FREE_C1: [f32; 24] = [
        2.275,
        4.4,
        -0.70000005,
        1.425,
        3.5500002,
        -1.5500002,
        0.575,
        2.7,
        -2.4,
        -0.2750001,
        1.85,
        3.9750001,
        -1.9750001,
        0.14999998,
        2.275,
        4.4,
        -0.70000005,
        1.425,
        3.5500002,
        -1.5500002,
        0.575,
        2.7,
        -2.4,
        -0.2750001,
    ];

    #[test]
    fn da5_draws_chosen_channels_and_both_halves_of_the_range() {
        use rand::SeedableRng;
        let random = RandomContrast::da5(false);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
        let n = 20_000;
        let draws: Vec<Contrast> = (0..n).filter_map(|_| random.sample(&mut rng, 2)).collect();
        assert!((draws.len() as f64 / n as f64 - 0.2).abs() < 0.01);
        assert!(draws.iter().all(|d| !d.preserve_range));
        let factors: Vec<f32> = draws
            .iter()
            .flat_map(|d| d.channels.iter().map(|&(_, f)| f))
            .collect();
        assert!((factors.len() as f64 / (2 * draws.len()) as f64 - 0.5).abs() < 0.02);
        assert!(factors.iter().all(|f| (0.5..2.0).contains(f)));
        let below = factors.iter().filter(|&&f| f < 1.0).count() as f64;
        assert!((below / factors.len() as f64 - 0.5).abs() < 0.02);
        // The default draws every channel, as before.
        let all = RandomContrast::nnunet();
        let d = (0..100).find_map(|_| all.sample(&mut rng, 3)).unwrap();
        assert_eq!(
            d.channels.iter().map(|&(c, _)| c).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
    }
}
