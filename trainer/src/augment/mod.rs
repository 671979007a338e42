//! Data augmentation for training, nnU-Net's set with its probabilities and ranges.
//!
//! Every transform comes in two parts: a `Random…` value whose `sample(rng, ..)` draws the
//! parameters, and a deterministic transform whose `apply` uses them. Intensity transforms work
//! in place on `ArrayViewMut4` views of a sample `(c, z, y, x)`; only the spatial transform,
//! DA5's quarter turns and transpositions and the deep-supervision targets allocate new
//! samples (the median filter and sharpening reuse scratch buffers per call). (Test-time augmentation does not use [`Mirror`]: the
//! inference crate flips batches of tiles with its own code.)
//! [`Pipeline`] runs them in nnU-Net's order: its default set ([`Pipeline::nnunet_training`])
//! or the DA5 set ([`Pipeline::da5_training`], with [`DaSetup::da5`]), either with nearest-
//! neighbour resampling of label maps or images as the `…ord0` trainers do
//! ([`Pipeline::with_interpolation`]).
//!
//! nnU-Net: `nnUNetTrainer.get_training_transforms` / `get_validation_transforms`,
//! `nnUNetTrainerDA5` (`nnUNetTrainerDA5ord0`, `nnUNetTrainerDA5Segord0`),
//! `nnUNetTrainer_DASegOrd0`; classes from batchgeneratorsv2.

mod additive;
mod blur;
mod brightness;
mod cascade;
mod contrast;
mod da5;
mod elastic;
mod fastpow;
mod gamma;
mod labels;
mod local;
mod lowres;
mod median;
mod mirror;
mod noise;
mod pipeline;
mod rectangles;
mod regions;
mod resize;
mod rot90;
mod setup;
mod sharpen;
mod spatial;

use ndarray::ArrayView3;
use rand::Rng;

pub use additive::{AdditiveBrightness, RandomAdditiveBrightness};
pub use blur::{gaussian_kernel, ChannelBlur, GaussianBlur, RandomGaussianBlur};
pub use brightness::{MultiplicativeBrightness, RandomBrightness};
pub use cascade::{
    BinaryOperator, BinaryOperators, ComponentPick, ComponentRemoval, Morphology,
    RandomBinaryOperator, RandomComponentRemoval,
};
pub use contrast::{Contrast, RandomContrast};
pub use elastic::ElasticDeformation;
pub use gamma::{Gamma, RandomGamma};
pub use labels::{downsample_seg, ds_shape, mask_outside, outside_to_background};
pub use local::{
    BrightnessGradient, ChannelGradient, ChannelLocalGamma, LocalGamma, LocalKernel,
    RandomBrightnessGradient, RandomLocalGamma, RandomLocalKernel,
};
pub use lowres::{RandomLowResolution, SimulateLowResolution};
pub use median::{MedianFilter, RandomMedianFilter};
pub use mirror::{Mirror, RandomMirror};
pub use noise::{GaussianNoise, RandomGaussianNoise};
pub use pipeline::{AugmentParams, Augmented, Pipeline, TargetOptions};
pub use rectangles::{BlankRectangles, RandomBlankRectangles, Rectangle};
pub use regions::region_targets;
pub use rot90::{equal_length_axes, RandomRot90, RandomTranspose, Rot90, Transpose};
pub use setup::{DaSetup, SpatialMode};
pub use sharpen::{RandomSharpening, Sharpening};
pub use spatial::{Matrix3, RandomSpatial, Spatial, SpatialInterpolation};

/// bg2's `p_per_channel`: the channels of `0..n_channels` chosen, each with probability
/// `p_per_channel` (one draw per channel, in order).
pub fn chosen_channels<R: Rng>(rng: &mut R, n_channels: usize, p_per_channel: f64) -> Vec<usize> {
    (0..n_channels)
        .filter(|_| rng.gen::<f64>() < p_per_channel)
        .collect()
}

/// batchgeneratorsv2's `BGContrast(range)`: with probability 0.5 (when `range.0 < 1`) a factor
/// in `U(range.0, 1)`, otherwise in `U(max(range.0, 1), range.1)`, so that shrinking and
/// growing are equally likely.
pub fn bg_contrast<R: Rng>(rng: &mut R, range: (f64, f64)) -> f64 {
    if rng.gen::<f64>() < 0.5 && range.0 < 1.0 {
        uniform(rng, range.0, 1.0)
    } else {
        uniform(rng, range.0.max(1.0), range.1)
    }
}

/// numpy's `uniform(lo, hi)`: `lo + (hi - lo) · U[0, 1)`; `lo` when the range is empty.
pub(crate) fn uniform<R: Rng>(rng: &mut R, lo: f64, hi: f64) -> f64 {
    if hi <= lo {
        return lo;
    }
    lo + (hi - lo) * rng.gen::<f64>()
}

/// Mean, unbiased standard deviation (torch's `std`), min and max of one channel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ChannelStats {
    pub mean: f64,
    pub std: f64,
    pub min: f32,
    pub max: f32,
}

pub(crate) fn channel_stats(channel: ArrayView3<'_, f32>) -> ChannelStats {
    let n = channel.len() as f64;
    let (mut sum, mut min, mut max) = (0.0f64, f32::INFINITY, f32::NEG_INFINITY);
    for &v in channel.iter() {
        sum += v as f64;
        min = min.min(v);
        max = max.max(v);
    }
    let mean = sum / n;
    let ss: f64 = channel.iter().map(|&v| (v as f64 - mean).powi(2)).sum();
    ChannelStats {
        mean,
        std: (ss / (n - 1.0).max(1.0)).sqrt(),
        min,
        max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn bg_contrast_halves_below_and_above_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let draws: Vec<f64> = (0..20_000)
            .map(|_| bg_contrast(&mut rng, (0.75, 1.25)))
            .collect();
        assert!(draws.iter().all(|&f| (0.75..1.25).contains(&f)));
        let below = draws.iter().filter(|&&f| f < 1.0).count() as f64 / draws.len() as f64;
        assert!((below - 0.5).abs() < 0.015, "{below}");
    }

    #[test]
    fn stats_use_the_unbiased_std() {
        let a = ndarray::Array3::from_shape_vec((1, 1, 4), vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
        let s = channel_stats(a.view());
        assert_eq!((s.mean, s.min, s.max), (2.5, 1.0, 4.0));
        assert!((s.std - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }
}
