//! nnU-Net's DA5 set: its random transforms and the order they draw and apply in, from the
//! spatial transform to sharpening (the pipeline does the label steps that follow as for the
//! default set: mask for normalisation, `-1 → 0`, cascade inputs, regions, deep supervision).
//!
//! Order: spatial (rotation p 0.4 with p 0.5 per axis, per-axis scaling p 0.2 by
//! (0.7, 1.43)); quarter turns and transposition (p 0.5 each, only for patches with axes of
//! equal length); one of {median filter, blur} (each p 0.2 once chosen); noise (p 0.1);
//! additive brightness (p 0.1); one of {contrast preserving the range, contrast not preserving
//! it} (p 0.2 once chosen); low resolution (p 0.15, scale (0.25, 1)); inverted gamma twice
//! (p 0.1 each); mirroring; blank rectangles (p 0.4); brightness gradient (p 0.3); local gamma
//! (p 0.3); sharpening (p 0.2).
//!
//! nnU-Net: `nnUNetTrainerDA5.get_training_transforms`; `OneOfTransform` picks one of its
//! transforms with equal probability (`np.random.choice`).

use ndarray::Array4;
use rand::Rng;

use super::additive::RandomAdditiveBrightness;
use super::blur::RandomGaussianBlur;
use super::contrast::RandomContrast;
use super::gamma::{Gamma, RandomGamma};
use super::local::{RandomBrightnessGradient, RandomLocalGamma};
use super::lowres::RandomLowResolution;
use super::median::RandomMedianFilter;
use super::mirror::RandomMirror;
use super::noise::RandomGaussianNoise;
use super::pipeline::AugmentParams;
use super::rectangles::RandomBlankRectangles;
use super::rot90::{equal_length_axes, RandomRot90, RandomTranspose};
use super::setup::DaSetup;
use super::sharpen::RandomSharpening;
use super::spatial::RandomSpatial;

/// The random transforms of the DA5 set.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Da5Transforms {
    pub(super) spatial: RandomSpatial,
    rot90: Option<RandomRot90>,
    transpose: Option<RandomTranspose>,
    median: RandomMedianFilter,
    blur: RandomGaussianBlur,
    noise: RandomGaussianNoise,
    additive_brightness: RandomAdditiveBrightness,
    contrast: [RandomContrast; 2],
    low_resolution: RandomLowResolution,
    gamma: RandomGamma,
    mirror: RandomMirror,
    blank_rectangles: RandomBlankRectangles,
    brightness_gradient: RandomBrightnessGradient,
    local_gamma: RandomLocalGamma,
    sharpening: RandomSharpening,
}

impl Da5Transforms {
    /// DA5's transforms for `setup` (from [`DaSetup::da5`]).
    pub(super) fn new(setup: &DaSetup) -> Da5Transforms {
        let (patch, mode) = (setup.patch, setup.mode);
        let valid_axes = equal_length_axes(patch, mode);
        Da5Transforms {
            spatial: RandomSpatial::da5(setup),
            rot90: RandomRot90::da5(&valid_axes),
            transpose: RandomTranspose::da5(&valid_axes),
            median: RandomMedianFilter::da5(mode),
            blur: RandomGaussianBlur::da5(mode),
            noise: RandomGaussianNoise::nnunet(),
            additive_brightness: RandomAdditiveBrightness::da5(),
            contrast: [RandomContrast::da5(true), RandomContrast::da5(false)],
            low_resolution: RandomLowResolution {
                p: 0.15,
                scale: (0.25, 1.0),
                ..RandomLowResolution::nnunet(mode)
            },
            gamma: RandomGamma {
                p: 0.1,
                invert: true,
                range: (0.7, 1.5),
            },
            mirror: RandomMirror {
                axes: setup.mirror_axes.clone(),
            },
            blank_rectangles: RandomBlankRectangles::da5(patch, mode),
            brightness_gradient: RandomBrightnessGradient::da5(patch, mode),
            local_gamma: RandomLocalGamma::da5(patch, mode),
            sharpening: RandomSharpening::da5(mode),
        }
    }

    /// Draws every DA5 step in order for a sample with `n_channels` image channels (the
    /// cascade steps are left to the pipeline). `contrast` holds whichever contrast variant
    /// was chosen; `gamma_inverted` and `gamma` the two inverted gammas.
    pub(super) fn sample<R: Rng>(&self, rng: &mut R, n_channels: usize) -> AugmentParams {
        let mut params = AugmentParams {
            spatial: Some(self.spatial.sample(rng)),
            ..AugmentParams::default()
        };
        params.rot90 = self.rot90.as_ref().and_then(|t| t.sample(rng));
        params.transpose = self.transpose.as_ref().and_then(|t| t.sample(rng));
        if rng.gen::<f64>() < 0.5 {
            params.median = self.median.sample(rng, n_channels);
        } else {
            params.blur = self.blur.sample(rng, n_channels);
        }
        params.noise = self.noise.sample(rng);
        params.additive_brightness = self.additive_brightness.sample(rng, n_channels);
        let contrast = &self.contrast[usize::from(rng.gen::<f64>() >= 0.5)];
        params.contrast = contrast.sample(rng, n_channels);
        params.low_resolution = self.low_resolution.sample(rng, n_channels);
        params.gamma_inverted = self.gamma.sample(rng, n_channels);
        params.gamma = self.gamma.sample(rng, n_channels);
        params.mirror = Some(self.mirror.sample(rng));
        params.blank_rectangles = self.blank_rectangles.sample(rng, n_channels);
        params.brightness_gradient = self.brightness_gradient.sample(rng, n_channels);
        params.local_gamma = self.local_gamma.sample(rng, n_channels);
        params.sharpening = self.sharpening.sample(rng, n_channels);
        params
    }
}

/// Applies the drawn DA5 steps after the spatial transform, in DA5's order: turns and
/// transposition (image and label maps), the intensity steps, mirroring (both), then
/// rectangles, brightness gradient, local gamma and sharpening.
pub(super) fn apply_steps(
    params: &AugmentParams,
    mut data: Array4<f32>,
    mut seg: Array4<i16>,
) -> (Array4<f32>, Array4<i16>) {
    if let Some(t) = &params.rot90 {
        data = t.apply(data);
        seg = t.apply(seg);
    }
    if let Some(t) = &params.transpose {
        data = t.apply(data);
        seg = t.apply(seg);
    }
    if let Some(t) = &params.median {
        t.apply(data.view_mut());
    }
    if let Some(t) = &params.blur {
        t.apply(data.view_mut());
    }
    if let Some(t) = &params.noise {
        t.apply(data.view_mut());
    }
    if let Some(t) = &params.additive_brightness {
        t.apply(data.view_mut());
    }
    if let Some(t) = &params.contrast {
        t.apply(data.view_mut());
    }
    if let Some(t) = &params.low_resolution {
        t.apply(data.view_mut());
    }
    let gammas: [&Option<Gamma>; 2] = [&params.gamma_inverted, &params.gamma];
    for t in gammas.into_iter().flatten() {
        t.apply(data.view_mut());
    }
    if let Some(mirror) = &params.mirror {
        mirror.apply(data.view_mut());
        mirror.apply(seg.view_mut());
    }
    if let Some(t) = &params.blank_rectangles {
        t.apply(data.view_mut());
    }
    if let Some(t) = &params.brightness_gradient {
        t.apply(data.view_mut());
    }
    if let Some(t) = &params.local_gamma {
        t.apply(data.view_mut());
    }
    if let Some(t) = &params.sharpening {
        t.apply(data.view_mut());
    }
    (data, seg)
}

#[cfg(test)]
mod tests {
    use super::super::pipeline::{Pipeline, TargetOptions};
    use super::super::spatial::SpatialInterpolation;
    use super::*;
    use crate::sampling::Patch;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::BTreeSet;

    /// A patch with labels -1 (x < 2), 0, 1, 2 and a smooth image.
    fn patch(crop: [usize; 3], n_channels: usize, n_seg: usize) -> Patch {
        let [z, y, x] = crop;
        Patch {
            data: Array4::from_shape_fn((n_channels, z, y, x), |(c, z, y, x)| {
                ((z * 3 + y * 2 + x + 5 * c) % 19) as f32 * 0.3 - 2.0
            }),
            seg: Array4::from_shape_fn((n_seg, z, y, x), |(c, z, y, x)| {
                if x < 2 {
                    -1
                } else {
                    ((z / 3 + y / 4 + x / 5 + c) % 3) as i16
                }
            }),
        }
    }

    #[test]
    fn da5_samples_have_the_patch_shape_finite_values_and_input_labels() {
        let interpolations = [
            SpatialInterpolation::Default,
            SpatialInterpolation::SegNearest,
            SpatialInterpolation::Nearest,
        ];
        // Isotropic 3D (turns and transposes), anisotropic 3D, dummy 2D, 2D.
        for (ps, seed) in [
            (vec![12, 12, 12], 1),
            (vec![10, 14, 12], 2),
            (vec![6, 28, 28], 3),
            (vec![24, 24], 4),
        ] {
            let setup = DaSetup::da5(&ps).unwrap();
            let scales = [[1.0; 3], [0.5; 3]];
            for interpolation in interpolations {
                let pipeline = Pipeline::da5_training(&setup, &[true, false], &scales)
                    .unwrap()
                    .with_interpolation(interpolation);
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                for _ in 0..12 {
                    let out = pipeline.run(&mut rng, patch(setup.crop, 2, 1)).unwrap();
                    let p = setup.patch;
                    assert_eq!(out.data.shape(), &[2, p[0], p[1], p[2]]);
                    assert!(out.data.iter().all(|v| v.is_finite()), "{ps:?}");
                    let shapes: Vec<Vec<usize>> =
                        out.targets.iter().map(|t| t.shape().to_vec()).collect();
                    let half = pipeline.target_shape(p, 1);
                    assert_eq!(
                        shapes,
                        vec![
                            vec![1, p[0], p[1], p[2]],
                            vec![1, half[0], half[1], half[2]]
                        ]
                    );
                    let labels: BTreeSet<i16> =
                        out.targets.iter().flat_map(|t| t.iter().copied()).collect();
                    assert!(labels.is_subset(&BTreeSet::from([0, 1, 2])), "{labels:?}");
                }
            }
        }
    }

    #[test]
    fn da5_runs_repeat_by_seed_and_differ_across_seeds() {
        let setup = DaSetup::da5(&[10, 10, 10]).unwrap();
        let pipeline = Pipeline::da5_training(&setup, &[false], &[]).unwrap();
        let run = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..6)
                .map(|_| pipeline.run(&mut rng, patch(setup.crop, 1, 1)).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn da5_cascade_and_regions_keep_the_announced_channels() {
        let targets = TargetOptions {
            cascade_labels: Some(vec![1, 2]),
            regions: Some(vec![vec![1, 2], vec![2]]),
            ignore_label: None,
        };
        let setup = DaSetup::da5(&[8, 8, 8]).unwrap();
        let pipeline = Pipeline::da5_training(&setup, &[true], &[[1.0; 3], [0.5; 3]])
            .unwrap()
            .with_targets(targets);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..8 {
            let out = pipeline.run(&mut rng, patch(setup.crop, 1, 2)).unwrap();
            assert_eq!(out.data.shape(), &[pipeline.n_data_channels(1), 8, 8, 8]);
            let shapes: Vec<&[usize]> = out.targets.iter().map(|t| t.shape()).collect();
            assert_eq!(shapes, vec![&[2, 8, 8, 8][..], &[2, 4, 4, 4]]);
            let one_hot = out.data.slice(ndarray::s![1.., .., .., ..]);
            assert!(one_hot.iter().all(|&v| v == 0.0 || v == 1.0));
        }
    }

    #[test]
    fn da5_steps_fire_with_da5s_probabilities() {
        let n = 20_000;
        let rates = |ps: &[usize], seed| {
            let setup = DaSetup::da5(ps).unwrap();
            let pipeline = Pipeline::da5_training(&setup, &[false], &[]).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let draws: Vec<AugmentParams> = (0..n).map(|_| pipeline.sample(&mut rng, 1)).collect();
            let rate = |f: &dyn Fn(&AugmentParams) -> bool| {
                draws.iter().filter(|p| f(p)).count() as f64 / n as f64
            };
            let got = [
                rate(&|p| p.rot90.is_some()),
                rate(&|p| p.transpose.is_some()),
                rate(&|p| p.median.is_some()),
                rate(&|p| p.blur.is_some()),
                rate(&|p| p.noise.is_some()),
                rate(&|p| p.additive_brightness.is_some()),
                rate(&|p| p.contrast.as_ref().is_some_and(|c| c.preserve_range)),
                rate(&|p| p.contrast.as_ref().is_some_and(|c| !c.preserve_range)),
                rate(&|p| p.low_resolution.is_some()),
                rate(&|p| p.gamma_inverted.as_ref().is_some_and(|g| g.invert)),
                rate(&|p| p.gamma.as_ref().is_some_and(|g| g.invert)),
                rate(&|p| p.blank_rectangles.is_some()),
                rate(&|p| p.brightness_gradient.is_some()),
                rate(&|p| p.local_gamma.is_some()),
                rate(&|p| p.sharpening.is_some()),
                rate(&|p| p.spatial.as_ref().is_some_and(|s| s.resamples())),
            ];
            assert!(draws.iter().all(|p| p.brightness.is_none()
                && p.mirror.is_some()
                && p.cascade_morphology.is_none()));
            // Low resolution: DA5's wider scale range, axis 0 kept in-plane.
            let in_plane = setup.mode.in_plane();
            for (_, scale) in draws
                .iter()
                .filter_map(|p| p.low_resolution.as_ref())
                .flat_map(|l| &l.channels)
            {
                assert!((0.25..1.0).contains(&scale[1]) && scale[1] == scale[2]);
                assert_eq!(scale[0] == 1.0, in_plane || scale[1] == 1.0);
            }
            got
        };
        // OneOf halves the median, blur and each contrast; spatial: 1 - 0.6 · 0.8.
        let want = [
            0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.15, 0.1, 0.1, 0.4, 0.3, 0.3, 0.2, 0.52,
        ];
        let got = rates(&[16, 16, 16], 7);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < 0.015, "step {i}: {g} vs {w}");
        }
        // No two axes of equal length: no turns, no transposition.
        let got = rates(&[10, 14, 12], 8);
        assert_eq!((got[0], got[1]), (0.0, 0.0));
    }
}
