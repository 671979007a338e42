//! Multiplicative brightness: each channel scaled by its own factor.
//!
//! nnU-Net: `RandomTransform(MultiplicativeBrightnessTransform(multiplier_range=
//! BGContrast((0.75, 1.25)), synchronize_channels=False, p_per_channel=1), apply_probability=0.15)`.

use ndarray::{ArrayViewMut4, Axis};
use rand::Rng;

use super::bg_contrast;

/// Draws [`MultiplicativeBrightness`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomBrightness {
    /// Probability of applying (0.15).
    pub p: f64,
    /// Factor range for [`bg_contrast`] (0.75, 1.25).
    pub range: (f64, f64),
}

impl RandomBrightness {
    /// nnU-Net's settings.
    pub fn nnunet() -> RandomBrightness {
        RandomBrightness {
            p: 0.15,
            range: (0.75, 1.25),
        }
    }

    /// Draws one factor per channel, or `None` (not applied).
    pub fn sample<R: Rng>(
        &self,
        rng: &mut R,
        n_channels: usize,
    ) -> Option<MultiplicativeBrightness> {
        if rng.gen::<f64>() >= self.p {
            return None;
        }
        let factors = (0..n_channels)
            .map(|_| bg_contrast(rng, self.range) as f32)
            .collect();
        Some(MultiplicativeBrightness { factors })
    }
}

/// Multiplies channel `c` by `factors[c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiplicativeBrightness {
    /// One factor per channel.
    pub factors: Vec<f32>,
}

impl MultiplicativeBrightness {
    /// Scales data `(c, z, y, x)` in place.
    pub fn apply(&self, mut data: ArrayViewMut4<'_, f32>) {
        for (mut channel, &f) in data.axis_iter_mut(Axis(0)).zip(&self.factors) {
            channel.map_inplace(|v| *v *= f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    #[test]
    fn each_channel_gets_its_factor() {
        let mut data = Array4::<f32>::from_elem((2, 2, 2, 2), 2.0);
        MultiplicativeBrightness {
            factors: vec![0.5, 1.25],
        }
        .apply(data.view_mut());
        assert!(data.index_axis(Axis(0), 0).iter().all(|&v| v == 1.0));
        assert!(data.index_axis(Axis(0), 1).iter().all(|&v| v == 2.5));
    }
}
