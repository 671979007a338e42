//! Additive brightness: chosen channels shifted by their own `N(mu, sigma)` offset.
//!
//! nnU-Net: `nnUNetTrainerDA5` → `RandomTransform(BrightnessAdditiveTransform(mu=0, sigma=0.5,
//! synchronize_channels=False, p_per_channel=0.5), apply_probability=0.1)`.

use ndarray::{ArrayViewMut4, Axis};
use rand::Rng;
use rand_distr::StandardNormal;

use super::chosen_channels;

/// Draws [`AdditiveBrightness`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomAdditiveBrightness {
    /// Probability of applying (0.1).
    pub p: f64,
    /// Probability of shifting each channel (0.5).
    pub p_per_channel: f64,
    /// Mean of the shift (0).
    pub mu: f64,
    /// Standard deviation of the shift (0.5).
    pub sigma: f64,
}

impl RandomAdditiveBrightness {
    /// DA5's settings.
    pub fn da5() -> RandomAdditiveBrightness {
        RandomAdditiveBrightness {
            p: 0.1,
            p_per_channel: 0.5,
            mu: 0.0,
            sigma: 0.5,
        }
    }

    /// Draws which channels to shift, then one shift per chosen channel, or `None` (not
    /// applied).
    pub fn sample<R: Rng>(&self, rng: &mut R, n_channels: usize) -> Option<AdditiveBrightness> {
        if rng.gen::<f64>() >= self.p {
            return None;
        }
        let chosen = chosen_channels(rng, n_channels, self.p_per_channel);
        let shifts = chosen
            .into_iter()
            .map(|c| {
                let n: f64 = rng.sample(StandardNormal);
                (c, (self.mu + self.sigma * n) as f32)
            })
            .collect();
        Some(AdditiveBrightness { shifts })
    }
}

/// Adds `shift` to every voxel of its channel.
#[derive(Clone, Debug, PartialEq)]
pub struct AdditiveBrightness {
    /// `(channel, shift)` pairs.
    pub shifts: Vec<(usize, f32)>,
}

impl AdditiveBrightness {
    /// Shifts data `(c, z, y, x)` in place.
    pub fn apply(&self, mut data: ArrayViewMut4<'_, f32>) {
        for &(c, shift) in &self.shifts {
            data.index_axis_mut(Axis(0), c).map_inplace(|v| *v += shift);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn only_chosen_channels_move() {
        let mut data = Array4::<f32>::from_elem((3, 2, 2, 2), 1.5);
        AdditiveBrightness {
            shifts: vec![(0, -0.25), (2, 0.75)],
        }
        .apply(data.view_mut());
        let firsts: Vec<f32> = (0..3).map(|c| data[[c, 1, 0, 1]]).collect();
        assert_eq!(firsts, vec![1.25, 1.5, 2.25]);
        assert!(data.index_axis(Axis(0), 2).iter().all(|&v| v == 2.25));
    }

    #[test]
    fn shifts_are_normal_with_da5s_sigma() {
        let random = RandomAdditiveBrightness::da5();
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let n = 40_000;
        let draws: Vec<AdditiveBrightness> =
            (0..n).filter_map(|_| random.sample(&mut rng, 2)).collect();
        assert!((draws.len() as f64 / n as f64 - 0.1).abs() < 0.006);
        let shifts: Vec<f64> = draws
            .iter()
            .flat_map(|d| d.shifts.iter().map(|&(_, s)| f64::from(s)))
            .collect();
        assert!((shifts.len() as f64 / (2 * draws.len()) as f64 - 0.5).abs() < 0.03);
        let mean = shifts.iter().sum::<f64>() / shifts.len() as f64;
        let sd =
            (shifts.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / shifts.len() as f64).sqrt();
        assert!(mean.abs() < 0.03 && (sd - 0.5).abs() < 0.03, "{mean} {sd}");
    }
}
