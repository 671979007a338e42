//! Local gamma: a chosen channel, scaled to [0, 1], is blended with its gamma-corrected self by
//! a [`LocalKernel`] `w`: `x' = (x̂^γ · w + x̂ · (1 - w)) · range + min` with
//! `x̂ = (x - min) / max(range, 1e-8)`, every step in f32 as bg2 does it.
//!
//! nnU-Net: `nnUNetTrainerDA5` → `RandomTransform(LocalGammaTransform(scale=.., loc=(-0.5, 1.5),
//! gamma=_local_gamma_gamma, same_for_all_channels=False, p_per_channel=0.5),
//! apply_probability=0.3)`; γ is `U(0.01, 0.8)` or `U(1.5, 4)` with p 0.5 each.

use ndarray::{ArrayViewMut4, Axis};
use rand::Rng;

use super::super::fastpow::powf_in_place;
use super::super::gamma::slice_stats;
use super::super::setup::SpatialMode;
use super::super::{channel_stats, chosen_channels, uniform};
use super::{LocalKernel, RandomLocalKernel};

/// Draws [`LocalGamma`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomLocalGamma {
    /// Probability of applying (0.3).
    pub p: f64,
    /// Probability of changing each channel (0.5).
    pub p_per_channel: f64,
    /// The kernels.
    pub kernel: RandomLocalKernel,
    /// Gamma range below 1 (0.01, 0.8), drawn with p 0.5.
    pub gamma_below: (f64, f64),
    /// Gamma range above 1 (1.5, 4), drawn otherwise.
    pub gamma_above: (f64, f64),
}

impl RandomLocalGamma {
    /// DA5's settings for a network `patch` `(z, y, x)`.
    pub fn da5(patch: [usize; 3], mode: SpatialMode) -> RandomLocalGamma {
        RandomLocalGamma {
            p: 0.3,
            p_per_channel: 0.5,
            kernel: RandomLocalKernel::da5(patch, mode),
            gamma_below: (0.01, 0.8),
            gamma_above: (1.5, 4.0),
        }
    }

    /// Draws the chosen channels, then per chosen channel its kernel and gamma, or `None` (not
    /// applied).
    pub fn sample<R: Rng>(&self, rng: &mut R, n_channels: usize) -> Option<LocalGamma> {
        if rng.gen::<f64>() >= self.p {
            return None;
        }
        let chosen = chosen_channels(rng, n_channels, self.p_per_channel);
        let channels = chosen
            .into_iter()
            .map(|channel| {
                let kernel = self.kernel.sample(rng);
                let (lo, hi) = if rng.gen::<f64>() < 0.5 {
                    self.gamma_below
                } else {
                    self.gamma_above
                };
                ChannelLocalGamma {
                    channel,
                    kernel,
                    gamma: uniform(rng, lo, hi) as f32,
                }
            })
            .collect();
        Some(LocalGamma { channels })
    }
}

/// The local gamma of one channel.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelLocalGamma {
    /// Channel index.
    pub channel: usize,
    /// The blending weights.
    pub kernel: LocalKernel,
    /// The exponent.
    pub gamma: f32,
}

/// Applies local gamma corrections to the listed channels.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalGamma {
    /// Channels and their corrections.
    pub channels: Vec<ChannelLocalGamma>,
}

/// bg2's floor on the channel's range.
const MIN_RANGE: f64 = 1e-8;

impl LocalGamma {
    /// Corrects data `(c, z, y, x)` in place, one x row at a time.
    pub fn apply(&self, mut data: ArrayViewMut4<'_, f32>) {
        let shape: [usize; 3] = std::array::from_fn(|a| data.shape()[a + 1]);
        let mut weights = vec![0.0f32; shape[2]];
        let mut norm = vec![0.0f32; shape[2]];
        let mut powered = vec![0.0f32; shape[2]];
        for g in &self.channels {
            let kernel = g.kernel.weights(shape);
            let mut channel = data.index_axis_mut(Axis(0), g.channel);
            if channel.is_empty() {
                continue;
            }
            let stats = match channel.as_slice() {
                Some(values) => slice_stats(values),
                None => channel_stats(channel.view()),
            };
            let (min, range) = (stats.min, stats.max - stats.min);
            // Python's `max(range, 1e-8)`: the f32 range unless it is below 1e-8.
            let denom = if f64::from(range) < MIN_RANGE {
                MIN_RANGE as f32
            } else {
                range
            };
            for (z, mut plane) in channel.axis_iter_mut(Axis(0)).enumerate() {
                for (y, mut row) in plane.axis_iter_mut(Axis(0)).enumerate() {
                    kernel.row(z, y, &mut weights);
                    for (n, &v) in norm.iter_mut().zip(row.iter()) {
                        *n = (v - min) / denom;
                    }
                    powered.copy_from_slice(&norm);
                    powf_in_place(&mut powered, g.gamma);
                    for (((v, &n), &p), &w) in row.iter_mut().zip(&norm).zip(&powered).zip(&weights)
                    {
                        let blended = p * w + (1.0 - w) * n;
                        *v = blended * denom + min;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    // Golden values: scripts/golden_da5.py (bg2 `LocalGammaTransform` with loc (0.3, -0.2,
    // 0.9), scale (1.7, 2.5, 0.8) and gamma 2.7 on the golden input (1, 5, 6, 7)).
    #[test]
    fn local_gamma_matches_bg2() {
        let (mut data, kernel) = super::super::golden_input_and_kernel();
        LocalGamma {
            channels: vec![ChannelLocalGamma {
                channel: 0,
                kernel,
                gamma: 2.7,
            }],
        }
        .apply(data.view_mut());
        let flat: Vec<f32> = data.iter().copied().collect();
        for &(i, want) in &GOLDEN_LOCAL_GAMMA_PICKS {
            assert!(
                (flat[i] - want).abs() < 2e-6,
                "voxel {i}: {} vs {want}",
                flat[i]
            );
        }
        assert!((flat.iter().sum::<f32>() - GOLDEN_LOCAL_GAMMA_SUM).abs() < 1e-3);
    }

    const GOLDEN_LOCAL_GAMMA_PICKS: [(usize, f32); 13] = [
        (0, -1.0),
        (17, -0.00016999245),
        (34, 0.8689132),
        (51, -0.25000125),
        (68, 0.6276674),
        (85, -0.5),
        (102, 0.4834447),
        (119, 2.0),
        (136, 0.2496903),
        (153, 0.9707829),
        (170, -7.748604e-07),
        (187, 0.91612244),
        (204, 2.5),
    ];
    const GOLDEN_LOCAL_GAMMA_SUM: f32 = 193.96437;

    #[test]
    fn zero_weight_keeps_the_channel_and_constant_channels_stay() {
        // A flat kernel (weight 0 everywhere) only rescales: x̂ · range + min = x up to rounding.
        let mut data = Array4::from_shape_fn((1, 1, 2, 5), |(_, _, y, x)| (y * 5 + x) as f32);
        let before = data.clone();
        let flat = LocalKernel {
            centre: [0.0, -1e4, 0.0],
            sigma: [1.0, 1.0, 1.0],
            axes: vec![1, 2],
        };
        LocalGamma {
            channels: vec![ChannelLocalGamma {
                channel: 0,
                kernel: flat.clone(),
                gamma: 3.0,
            }],
        }
        .apply(data.view_mut());
        assert!(data.iter().zip(&before).all(|(a, b)| (a - b).abs() < 1e-5));
        let mut constant = Array4::<f32>::from_elem((1, 1, 2, 3), 4.0);
        LocalGamma {
            channels: vec![ChannelLocalGamma {
                channel: 0,
                kernel: LocalKernel {
                    axes: vec![1, 2],
                    ..flat
                },
                gamma: 0.5,
            }],
        }
        .apply(constant.view_mut());
        assert!(constant.iter().all(|&v| v == 4.0));
    }

    #[test]
    fn gammas_come_from_both_ranges() {
        let random = RandomLocalGamma::da5([16, 16, 16], SpatialMode::Volumetric);
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let n = 20_000;
        let draws: Vec<LocalGamma> = (0..n).filter_map(|_| random.sample(&mut rng, 2)).collect();
        assert!((draws.len() as f64 / n as f64 - 0.3).abs() < 0.012);
        let gammas: Vec<f32> = draws
            .iter()
            .flat_map(|d| d.channels.iter().map(|g| g.gamma))
            .collect();
        assert!(gammas
            .iter()
            .all(|&g| (0.01..0.8).contains(&g) || (1.5..4.0).contains(&g)));
        let below = gammas.iter().filter(|&&g| g < 1.0).count() as f64;
        assert!((below / gammas.len() as f64 - 0.5).abs() < 0.02);
    }
}
