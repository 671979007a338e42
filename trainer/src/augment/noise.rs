//! Additive Gaussian noise: one standard deviation for all channels, fresh `N(0, 1)` per voxel.
//!
//! nnU-Net: `RandomTransform(GaussianNoiseTransform(noise_variance=(0, 0.1), p_per_channel=1,
//! synchronize_channels=True), apply_probability=0.1)`; the "variance" is used as the std.

use ndarray::ArrayViewMut4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::uniform;

/// Draws [`GaussianNoise`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomGaussianNoise {
    /// Probability of adding noise (0.1).
    pub p: f64,
    /// Range of the noise standard deviation (0, 0.1).
    pub std_range: (f64, f64),
}

impl RandomGaussianNoise {
    /// nnU-Net's settings.
    pub fn nnunet() -> RandomGaussianNoise {
        RandomGaussianNoise {
            p: 0.1,
            std_range: (0.0, 0.1),
        }
    }

    /// Draws the noise level and the seed of the noise field, or `None` (not applied).
    pub fn sample<R: Rng>(&self, rng: &mut R) -> Option<GaussianNoise> {
        if rng.gen::<f64>() >= self.p {
            return None;
        }
        Some(GaussianNoise {
            std: uniform(rng, self.std_range.0, self.std_range.1) as f32,
            seed: rng.gen(),
        })
    }
}

/// Adds `std · N(0, 1)` to every voxel of every channel; the field is drawn from `seed`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaussianNoise {
    /// Noise standard deviation.
    pub std: f32,
    /// Seed of the per-voxel noise.
    pub seed: u64,
}

impl GaussianNoise {
    /// Adds the noise in place to data `(c, z, y, x)`.
    pub fn apply(&self, mut data: ArrayViewMut4<'_, f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut chunk = vec![0.0f32; CHUNK];
        let std = self.std;
        // Voxels draw their noise in memory order either way; slices avoid ndarray's iterator.
        match data.as_slice_memory_order_mut() {
            Some(values) => {
                for part in values.chunks_mut(CHUNK) {
                    let noise = &mut chunk[..part.len()];
                    fill_standard_normal(&mut rng, noise);
                    part.iter_mut()
                        .zip(noise.iter())
                        .for_each(|(v, n)| *v += std * n);
                }
            }
            None => data.map_inplace(|v| *v += std * rng.sample::<f32, _>(StandardNormal)),
        }
    }
}

/// Values drawn per batch of [`fill_standard_normal`].
const CHUNK: usize = 4096;

/// Fills `out` with independent `N(0, 1)` draws (rand_distr's ziggurat `StandardNormal`).
pub(crate) fn fill_standard_normal<R: Rng>(rng: &mut R, out: &mut [f32]) {
    out.iter_mut()
        .for_each(|v| *v = rng.sample::<f32, _>(StandardNormal));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    #[test]
    fn noise_has_the_drawn_standard_deviation() {
        let mut data = Array4::<f32>::from_elem((2, 40, 50, 50), 3.0);
        GaussianNoise {
            std: 0.07,
            seed: 11,
        }
        .apply(data.view_mut());
        let n = data.len() as f64;
        let mean = data.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = data.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        // 200,000 samples: the std of the mean is 1.6e-4, of the std about 1.1e-4.
        assert!((mean - 3.0).abs() < 1e-3, "mean {mean}");
        assert!((var.sqrt() - 0.07).abs() < 7e-4, "std {}", var.sqrt());
    }

    #[test]
    fn same_seed_same_noise() {
        let mut a = Array4::<f32>::zeros((1, 4, 4, 4));
        let mut b = a.clone();
        let noise = GaussianNoise { std: 0.1, seed: 5 };
        noise.apply(a.view_mut());
        noise.apply(b.view_mut());
        assert_eq!(a, b);
        assert!(a.iter().any(|&v| v != 0.0));
    }
}
