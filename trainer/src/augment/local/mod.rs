//! batchgeneratorsv2's local transforms: a smooth Gaussian bump, min-max normalised to [0, 1],
//! that weights an intensity change voxel by voxel. [`BrightnessGradient`] adds a multiple of
//! it; [`LocalGamma`] blends a gamma-corrected channel into the original with it.
//!
//! The bump of axis `a` is the normal distribution's mass over each voxel's extent,
//! `Φ((i + 0.5 - μ) / σ) - Φ((i - 0.5 - μ) / σ)` for voxel `i` (in f64, then f32), with the
//! centre `μ = loc · S` (`loc` relative to the axis length `S`) and width `σ`; the kernel is the
//! product of the axes' bumps `(k_z · k_y) · k_x` in f32, shifted and scaled to [0, 1]. The
//! product is never stored: rows of weights are computed as they are used (O(n), no
//! per-voxel allocation). 2D configurations (`Planar`) use a `(y, x)` kernel.
//!
//! nnU-Net: `nnUNetTrainerDA5` → `BrightnessGradientAdditiveTransform` and
//! `LocalGammaTransform` with `scale=_brightnessadditive_localgamma_transform_scale`
//! (`σ = exp(U(ln(S // 6), ln(S)))` per axis) and `loc=(-0.5, 1.5)`; bg2
//! `LocalTransform._generate_kernel`.

mod gamma;
mod gradient;
mod normal;

use rand::Rng;

use super::setup::SpatialMode;
use super::uniform;

pub use gamma::{ChannelLocalGamma, LocalGamma, RandomLocalGamma};
pub use gradient::{BrightnessGradient, ChannelGradient, RandomBrightnessGradient};

/// Draws [`LocalKernel`]s.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomLocalKernel {
    /// Sample shape `(z, y, x)` (the network patch).
    pub shape: [usize; 3],
    /// Axes `(z = 0, y = 1, x = 2)` the kernel varies along (2D configurations: `y`, `x`).
    pub axes: Vec<usize>,
    /// Range of the centre relative to the axis length ((-0.5, 1.5): it may lie outside).
    pub loc: (f64, f64),
}

impl RandomLocalKernel {
    /// DA5's settings for a network `patch` `(z, y, x)`.
    pub fn da5(patch: [usize; 3], mode: SpatialMode) -> RandomLocalKernel {
        RandomLocalKernel {
            shape: patch,
            axes: mode.blur_axes().to_vec(),
            loc: (-0.5, 1.5),
        }
    }

    /// Draws per axis the centre `U(loc) · S`, then the width `exp(U(ln(S / 6), ln(S)))`
    /// (DA5's `_brightnessadditive_localgamma_transform_scale`; `S / 6` is taken as at least 1,
    /// where nnU-Net's `log(0)` would make the kernel NaN).
    pub fn sample<R: Rng>(&self, rng: &mut R) -> LocalKernel {
        let mut centre = [0.0; 3];
        let mut sigma = [1.0; 3];
        for &a in &self.axes {
            let s = self.shape[a];
            centre[a] = uniform(rng, self.loc.0, self.loc.1) * s as f64;
            let lo = ((s / 6).max(1) as f64).ln();
            sigma[a] = uniform(rng, lo, (s.max(1) as f64).ln()).exp();
        }
        LocalKernel {
            centre,
            sigma,
            axes: self.axes.clone(),
        }
    }
}

/// A Gaussian bump: centre and width per axis `(z, y, x)`, in voxels.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalKernel {
    /// Centre per axis (voxel `i` spans `[i - 0.5, i + 0.5]`); may lie outside the sample.
    pub centre: [f64; 3],
    /// Width (standard deviation) per axis.
    pub sigma: [f64; 3],
    /// Axes the kernel varies along; it is constant along the others.
    pub axes: Vec<usize>,
}

impl LocalKernel {
    /// The kernel's factors for a sample of `shape` `(z, y, x)`.
    pub(crate) fn weights(&self, shape: [usize; 3]) -> KernelWeights {
        let factors: [Vec<f32>; 3] = std::array::from_fn(|a| {
            if self.axes.contains(&a) {
                bump(shape[a], self.centre[a], self.sigma[a])
            } else {
                vec![1.0; shape[a]]
            }
        });
        // Every factor is >= 0 and f32 rounding is monotonic, so the extremes of the product
        // are the products of the extremes (the same roundings as over the whole kernel).
        let fold = |pick: fn(f32, f32) -> f32, start: f32| -> f32 {
            let [z, y, x] = factors
                .each_ref()
                .map(|f| f.iter().copied().fold(start, pick));
            (z * y) * x
        };
        let min = fold(f32::min, f32::INFINITY);
        let max = fold(f32::max, 0.0);
        KernelWeights {
            range: max - min,
            factors,
            min,
        }
    }
}

/// The normal mass over each voxel of an axis of length `n`: `Φ` at the voxel edges
/// `-0.5, 0.5, .., n - 0.5` (f32, as bg2's grid), differenced in f64, then rounded to f32 (and
/// clamped at 0 against rounding).
fn bump(n: usize, centre: f64, sigma: f64) -> Vec<f32> {
    let cdf = |edge: usize| normal::normal_cdf((edge as f64 - 0.5 - centre) / sigma);
    let mut below = cdf(0);
    (1..=n)
        .map(|edge| {
            let above = cdf(edge);
            let mass = (above - below) as f32;
            below = above;
            mass.max(0.0)
        })
        .collect()
}

/// The factors of a [`LocalKernel`] on one sample and its normalisation.
pub(crate) struct KernelWeights {
    factors: [Vec<f32>; 3],
    min: f32,
    range: f32,
}

impl KernelWeights {
    /// Whether the kernel is constant (bg2 then leaves it all zero).
    pub(crate) fn is_flat(&self) -> bool {
        self.range <= 0.0
    }

    /// The normalised weights `((k_z · k_y) · k_x - min) / (max - min)` of row `(z, y)`
    /// (zeros for a flat kernel), into `out` (one per x).
    pub(crate) fn row(&self, z: usize, y: usize, out: &mut [f32]) {
        let zy = self.factors[0][z] * self.factors[1][y];
        if self.is_flat() {
            out.fill(0.0);
            return;
        }
        for (w, &kx) in out.iter_mut().zip(&self.factors[2]) {
            *w = (zy * kx - self.min) / self.range;
        }
    }
}

/// The input and kernel of scripts/golden_da5.py's local-transform goldens: a `(1, 5, 6, 7)`
/// pattern and the kernel at loc `(0.3, -0.2, 0.9)` with scale `(1.7, 2.5, 0.8)`.
#[cfg(test)]
pub(super) fn golden_input_and_kernel() -> (ndarray::Array4<f32>, LocalKernel) {
    let shape = [5, 6, 7];
    let data = ndarray::Array4::from_shape_fn((1, 5, 6, 7), |(c, z, y, x)| {
        ((c * 11 + z * 7 + y * 3 + x * 5) % 17) as f32 * 0.25 - 1.0
    });
    let loc = [0.3, -0.2, 0.9];
    let kernel = LocalKernel {
        centre: std::array::from_fn(|a| loc[a] * shape[a] as f64),
        sigma: [1.7, 2.5, 0.8],
        axes: vec![0, 1, 2],
    };
    (data, kernel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn full(kernel: &LocalKernel, shape: [usize; 3]) -> Vec<f32> {
        let w = kernel.weights(shape);
        let mut out = Vec::new();
        let mut row = vec![0.0; shape[2]];
        for z in 0..shape[0] {
            for y in 0..shape[1] {
                w.row(z, y, &mut row);
                out.extend_from_slice(&row);
            }
        }
        out
    }

    #[test]
    fn kernel_is_normalised_and_peaks_at_the_centre() {
        let kernel = LocalKernel {
            centre: [3.0, 4.0, 2.0],
            sigma: [2.0, 3.0, 1.5],
            axes: vec![0, 1, 2],
        };
        let shape = [7, 9, 6];
        let w = full(&kernel, shape);
        let max = w.iter().copied().fold(0.0f32, f32::max);
        let min = w.iter().copied().fold(1.0f32, f32::min);
        assert_eq!((min, max), (0.0, 1.0));
        assert_eq!(w[(3 * 9 + 4) * 6 + 2], 1.0);
        // Symmetric about the centre voxel along x (as far as the axis reaches).
        let at = |x: usize| w[(3 * 9 + 4) * 6 + x];
        assert!((at(1) - at(3)).abs() < 1e-6 && (at(0) - at(4)).abs() < 1e-6);
    }

    #[test]
    fn planar_kernels_ignore_z_and_flat_ones_are_zero() {
        let kernel = LocalKernel {
            centre: [0.0, 1.0, 2.0],
            sigma: [1.0, 2.0, 2.0],
            axes: vec![1, 2],
        };
        let w = kernel.weights([1, 3, 4]);
        assert!(!w.is_flat());
        // Far outside: every voxel underflows to the same mass 0.
        let flat = LocalKernel {
            centre: [0.0, -1e4, 1.0],
            sigma: [1.0, 1.0, 1.0],
            axes: vec![1, 2],
        };
        let w = flat.weights([1, 3, 4]);
        assert!(w.is_flat());
        let mut row = vec![1.0; 4];
        w.row(0, 1, &mut row);
        assert_eq!(row, vec![0.0; 4]);
    }

    // Golden values: scripts/golden_da5.py (bg2 `LocalTransform._generate_kernel` with loc
    // (0.3, -0.2, 0.9) and scale (1.7, 2.5, 0.8) per axis on a (5, 6, 7) sample).
    #[test]
    fn kernel_matches_bg2() {
        let shape = [5, 6, 7];
        let loc = [0.3, -0.2, 0.9];
        let kernel = LocalKernel {
            centre: std::array::from_fn(|a| loc[a] * shape[a] as f64),
            sigma: [1.7, 2.5, 0.8],
            axes: vec![0, 1, 2],
        };
        let w = full(&kernel, shape);
        for &(i, want) in GOLDEN_KERNEL_PICKS.iter() {
            assert!((w[i] - want).abs() < 2e-7, "voxel {i}: {} vs {want}", w[i]);
        }
        let sum: f32 = w.iter().sum();
        assert!((sum - GOLDEN_KERNEL_SUM).abs() < 1e-4);
    }

    const GOLDEN_KERNEL_PICKS: [(usize, f32); 13] = [
        (0, 3.2902793e-13),
        (17, 0.00018774036),
        (34, 0.09468665),
        (51, 1.7655028e-06),
        (68, 0.0926229),
        (85, 2.2415017e-09),
        (102, 0.013604559),
        (119, 1.6207452e-14),
        (136, 0.00028753618),
        (153, 0.19887821),
        (170, 8.4212553e-07),
        (187, 0.060586482),
        (204, 4.403417e-11),
    ];
    const GOLDEN_KERNEL_SUM: f32 = 14.083485;

    #[test]
    fn draws_follow_da5s_ranges() {
        let random = RandomLocalKernel::da5([24, 60, 36], SpatialMode::Volumetric);
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        for _ in 0..2000 {
            let k = random.sample(&mut rng);
            for (a, s) in [24.0, 60.0, 36.0].into_iter().enumerate() {
                assert!((-0.5 * s..1.5 * s).contains(&k.centre[a]));
                let lo = (s / 6.0).floor();
                assert!(
                    k.sigma[a] >= lo * (1.0 - 1e-12) && k.sigma[a] <= s,
                    "{:?}",
                    k.sigma
                );
            }
        }
        let planar = RandomLocalKernel::da5([1, 64, 64], SpatialMode::Planar);
        let k = planar.sample(&mut rng);
        assert_eq!(
            (k.axes.clone(), k.centre[0], k.sigma[0]),
            (vec![1, 2], 0.0, 1.0)
        );
        // An axis shorter than 6 voxels draws σ from [1, S] instead of nnU-Net's NaN.
        let short = RandomLocalKernel::da5([4, 64, 64], SpatialMode::Dummy2d);
        for _ in 0..100 {
            let s = short.sample(&mut rng).sigma[0];
            assert!((1.0..=4.0).contains(&s));
        }
    }
}
