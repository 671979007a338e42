//! Contrast: each channel stretched about its mean, clipped to its original range.
//!
//! nnU-Net: `RandomTransform(ContrastTransform(contrast_range=BGContrast((0.75, 1.25)),
//! preserve_range=True, synchronize_channels=False, p_per_channel=1), apply_probability=0.15)`.

use ndarray::{ArrayViewMut4, Axis};
use rand::Rng;

use super::gamma::slice_stats;
use super::{bg_contrast, channel_stats};

/// Draws [`Contrast`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomContrast {
    /// Probability of applying (0.15).
    pub p: f64,
    /// Factor range for [`bg_contrast`] (0.75, 1.25).
    pub range: (f64, f64),
}

impl RandomContrast {
    /// nnU-Net's settings.
    pub fn nnunet() -> RandomContrast {
        RandomContrast {
            p: 0.15,
            range: (0.75, 1.25),
        }
    }

    /// Draws one factor per channel, or `None` (not applied).
    pub fn sample<R: Rng>(&self, rng: &mut R, n_channels: usize) -> Option<Contrast> {
        if rng.gen::<f64>() >= self.p {
            return None;
        }
        let factors = (0..n_channels)
            .map(|_| bg_contrast(rng, self.range) as f32)
            .collect();
        Some(Contrast { factors })
    }
}

/// `x = (x - mean) · f + mean` per channel, clipped to the channel's original `[min, max]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Contrast {
    /// One factor per channel.
    pub factors: Vec<f32>,
}

impl Contrast {
    /// Changes the contrast of data `(c, z, y, x)` in place.
    pub fn apply(&self, mut data: ArrayViewMut4<'_, f32>) {
        for (mut channel, &f) in data.axis_iter_mut(Axis(0)).zip(&self.factors) {
            let stats = match channel.as_slice() {
                Some(values) => slice_stats(values),
                None => channel_stats(channel.view()),
            };
            let mean = stats.mean as f32;
            channel.map_inplace(|v| *v = ((*v - mean) * f + mean).clamp(stats.min, stats.max));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    #[test]
    fn contrast_keeps_the_mean_and_the_range() {
        // Values symmetric about their mean 5: no clipping is needed when f < 1, and the mean
        // stays 5 exactly.
        let mut data = Array4::from_shape_fn((1, 2, 2, 4), |(_, z, y, x)| {
            (z * 8 + y * 4 + x) as f32 * 2.0 / 3.0
        });
        let mean_before = data.mean().unwrap();
        Contrast { factors: vec![0.8] }.apply(data.view_mut());
        assert!((data.mean().unwrap() - mean_before).abs() < 1e-5);
        assert!((data[[0, 0, 0, 0]] - (mean_before - 0.8 * mean_before)).abs() < 1e-5);
        // f > 1: stretched values are clipped to the original [0, 10].
        let mut data = Array4::from_shape_fn((1, 1, 1, 3), |(_, _, _, x)| [0.0f32, 1.0, 10.0][x]);
        Contrast { factors: vec![1.2] }.apply(data.view_mut());
        let mean = 11.0f32 / 3.0;
        assert_eq!(data[[0, 0, 0, 0]], 0.0);
        assert!((data[[0, 0, 0, 1]] - ((1.0 - mean) * 1.2 + mean)).abs() < 1e-5);
        assert_eq!(data[[0, 0, 0, 2]], 10.0);
    }
}
