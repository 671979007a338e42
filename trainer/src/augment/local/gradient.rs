//! Brightness gradient: chosen channels get `strength · w` added, `w` a [`LocalKernel`] in
//! [0, 1], so the shift peaks at `strength` where the bump does.
//!
//! nnU-Net: `nnUNetTrainerDA5` → `RandomTransform(BrightnessGradientAdditiveTransform(scale=..,
//! loc=(-0.5, 1.5), max_strength=_brightness_gradient_additive_max_strength, mean_centered=False,
//! same_for_all_channels=False, p_per_channel=0.5), apply_probability=0.3)`; the strength is
//! `U(-5, -1)` or `U(1, 5)` with p 0.5 each.

use ndarray::{ArrayViewMut4, Axis};
use rand::Rng;

use super::super::setup::SpatialMode;
use super::super::{chosen_channels, uniform};
use super::{LocalKernel, RandomLocalKernel};

/// Draws [`BrightnessGradient`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomBrightnessGradient {
    /// Probability of applying (0.3).
    pub p: f64,
    /// Probability of changing each channel (0.5).
    pub p_per_channel: f64,
    /// The kernels.
    pub kernel: RandomLocalKernel,
    /// Range of the strength's magnitude (1, 5); its sign is negative with p 0.5.
    pub strength: (f64, f64),
}

impl RandomBrightnessGradient {
    /// DA5's settings for a network `patch` `(z, y, x)`.
    pub fn da5(patch: [usize; 3], mode: SpatialMode) -> RandomBrightnessGradient {
        RandomBrightnessGradient {
            p: 0.3,
            p_per_channel: 0.5,
            kernel: RandomLocalKernel::da5(patch, mode),
            strength: (1.0, 5.0),
        }
    }

    /// Draws the chosen channels, then per chosen channel its kernel and strength, or `None`
    /// (not applied).
    pub fn sample<R: Rng>(&self, rng: &mut R, n_channels: usize) -> Option<BrightnessGradient> {
        if rng.gen::<f64>() >= self.p {
            return None;
        }
        let chosen = chosen_channels(rng, n_channels, self.p_per_channel);
        let channels = chosen
            .into_iter()
            .map(|channel| {
                let kernel = self.kernel.sample(rng);
                let (lo, hi) = self.strength;
                let strength = if rng.gen::<f64>() < 0.5 {
                    uniform(rng, -hi, -lo)
                } else {
                    uniform(rng, lo, hi)
                };
                ChannelGradient {
                    channel,
                    kernel,
                    strength: strength as f32,
                }
            })
            .collect();
        Some(BrightnessGradient { channels })
    }
}

/// The gradient of one channel.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelGradient {
    /// Channel index.
    pub channel: usize,
    /// The bump.
    pub kernel: LocalKernel,
    /// The shift where the kernel is 1.
    pub strength: f32,
}

/// Adds `strength · w` to the listed channels.
#[derive(Clone, Debug, PartialEq)]
pub struct BrightnessGradient {
    /// Channels and their gradients.
    pub channels: Vec<ChannelGradient>,
}

impl BrightnessGradient {
    /// Adds the gradients to data `(c, z, y, x)` in place; a flat kernel (all voxels equal)
    /// changes nothing, as in bg2.
    pub fn apply(&self, mut data: ArrayViewMut4<'_, f32>) {
        let shape: [usize; 3] = std::array::from_fn(|a| data.shape()[a + 1]);
        let mut weights = vec![0.0f32; shape[2]];
        for g in &self.channels {
            let kernel = g.kernel.weights(shape);
            if kernel.is_flat() {
                continue;
            }
            let mut channel = data.index_axis_mut(Axis(0), g.channel);
            for (z, mut plane) in channel.axis_iter_mut(Axis(0)).enumerate() {
                for (y, mut row) in plane.axis_iter_mut(Axis(0)).enumerate() {
                    kernel.row(z, y, &mut weights);
                    for (v, &w) in row.iter_mut().zip(&weights) {
                        *v += g.strength * w;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    // Golden values: scripts/golden_da5.py (bg2 `BrightnessGradientAdditiveTransform` with loc
    // (0.3, -0.2, 0.9), scale (1.7, 2.5, 0.8) and max_strength -2.5 on the golden input
    // (1, 5, 6, 7)).
    #[test]
    fn gradient_matches_bg2() {
        let (mut data, kernel) = super::super::golden_input_and_kernel();
        BrightnessGradient {
            channels: vec![ChannelGradient {
                channel: 0,
                kernel,
                strength: -2.5,
            }],
        }
        .apply(data.view_mut());
        let flat: Vec<f32> = data.iter().copied().collect();
        for &(i, want) in &GOLDEN_GRADIENT_PICKS {
            assert!(
                (flat[i] - want).abs() < 1e-6,
                "voxel {i}: {} vs {want}",
                flat[i]
            );
        }
        assert!((flat.iter().sum::<f32>() - GOLDEN_GRADIENT_SUM).abs() < 1e-3);
    }

    const GOLDEN_GRADIENT_PICKS: [(usize, f32); 13] = [
        (0, -1.0),
        (17, -0.0004693509),
        (34, 0.7632834),
        (51, -0.2500044),
        (68, 0.51844275),
        (85, -0.5),
        (102, 0.4659886),
        (119, 2.0),
        (136, 0.24928115),
        (153, 0.75280446),
        (170, -2.1053138e-06),
        (187, 0.8485338),
        (204, 2.5),
    ];
    const GOLDEN_GRADIENT_SUM: f32 = 170.79129;

    #[test]
    fn strengths_have_either_sign_and_da5s_magnitude() {
        let random = RandomBrightnessGradient::da5([16, 16, 16], SpatialMode::Volumetric);
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let n = 20_000;
        let draws: Vec<BrightnessGradient> =
            (0..n).filter_map(|_| random.sample(&mut rng, 2)).collect();
        assert!((draws.len() as f64 / n as f64 - 0.3).abs() < 0.012);
        let strengths: Vec<f32> = draws
            .iter()
            .flat_map(|d| d.channels.iter().map(|g| g.strength))
            .collect();
        assert!((strengths.len() as f64 / (2 * draws.len()) as f64 - 0.5).abs() < 0.02);
        assert!(strengths.iter().all(|s| (1.0..=5.0).contains(&s.abs())));
        let negative = strengths.iter().filter(|&&s| s < 0.0).count() as f64;
        assert!((negative / strengths.len() as f64 - 0.5).abs() < 0.02);
    }
}
