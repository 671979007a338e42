//! The augmentation pipeline in nnU-Net's order: spatial, noise, blur, brightness, contrast,
//! low resolution, inverted gamma, gamma, mirroring, mask for normalisation, `-1 → 0`,
//! deep-supervision targets. Validation runs only the last two steps.
//!
//! nnU-Net: `nnUNetTrainer.get_training_transforms` (steps 1–15 of reference §6.5; cascade and
//! region steps are not part of this pipeline) and `get_validation_transforms`.

use ndarray::Array4;
use rand::Rng;

use super::blur::{GaussianBlur, RandomGaussianBlur};
use super::brightness::{MultiplicativeBrightness, RandomBrightness};
use super::contrast::{Contrast, RandomContrast};
use super::gamma::{Gamma, RandomGamma};
use super::labels::{downsample_seg, mask_outside, outside_to_background};
use super::lowres::{RandomLowResolution, SimulateLowResolution};
use super::mirror::{Mirror, RandomMirror};
use super::noise::{GaussianNoise, RandomGaussianNoise};
use super::setup::DaSetup;
use super::spatial::{RandomSpatial, Spatial};
use crate::sampling::{DataError, Patch};

/// The random transforms of the training pipeline.
#[derive(Clone, Debug, PartialEq)]
struct RandomTransforms {
    spatial: RandomSpatial,
    noise: RandomGaussianNoise,
    blur: RandomGaussianBlur,
    brightness: RandomBrightness,
    contrast: RandomContrast,
    low_resolution: RandomLowResolution,
    gamma_inverted: RandomGamma,
    gamma: RandomGamma,
    mirror: RandomMirror,
}

/// Drawn parameters of one pass through the pipeline; `None`: the step does not fire.
#[derive(Clone, Debug, PartialEq)]
pub struct AugmentParams {
    /// Rotation/scaling or centre crop (`None` only in validation).
    pub spatial: Option<Spatial>,
    /// Additive noise.
    pub noise: Option<GaussianNoise>,
    /// Blur.
    pub blur: Option<GaussianBlur>,
    /// Multiplicative brightness.
    pub brightness: Option<MultiplicativeBrightness>,
    /// Contrast.
    pub contrast: Option<Contrast>,
    /// Simulated low resolution.
    pub low_resolution: Option<SimulateLowResolution>,
    /// Gamma on the inverted image.
    pub gamma_inverted: Option<Gamma>,
    /// Gamma.
    pub gamma: Option<Gamma>,
    /// Mirroring.
    pub mirror: Option<Mirror>,
}

/// One augmented sample, ready for the batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Augmented {
    /// Image `(c, z, y, x)` at the network patch size.
    pub data: Array4<f32>,
    /// Segmentation targets `(1, z, y, x)`, one per deep-supervision level (full resolution
    /// first), -1 already mapped to 0.
    pub targets: Vec<Array4<i16>>,
}

/// How the segmentation becomes the network's input and targets beyond nnU-Net's plain label
/// maps (steps 13–14 of reference §6.5).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetOptions {
    /// Cascade: the patch's seg has 2 channels, the second the previous stage's segmentation.
    /// After `-1 → 0` that channel leaves the seg and is appended to the image as one 0/1
    /// channel per label listed here (the foreground labels, ascending); training then applies
    /// random binary morphology (p 0.4) and connected-component removal (p 0.2) to them.
    pub cascade_labels: Option<Vec<i16>>,
    /// Region-based training: the target becomes one 0/1 channel per region (the labels it
    /// unites), plus a last channel marking ignore-label voxels when `ignore_label` is set.
    pub regions: Option<Vec<Vec<i16>>>,
    /// The dataset's ignore label, if any.
    pub ignore_label: Option<i16>,
}

/// The augmentation pipeline of one configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    transforms: Option<RandomTransforms>,
    use_mask_for_norm: Vec<bool>,
    ds_scales: Vec<[f64; 3]>,
    targets: TargetOptions,
}

impl Pipeline {
    /// nnU-Net's training pipeline for `setup`. `use_mask_for_norm` has one flag per image
    /// channel (from the plan); `ds_scales` are the deep-supervision scales `(z, y, x)`,
    /// full resolution first (`z` scale 1 for 2D); empty: no deep supervision.
    ///
    /// # Errors
    /// [`DataError::DsScale`] for a scale outside (0, 1].
    pub fn nnunet_training(
        setup: &DaSetup,
        use_mask_for_norm: &[bool],
        ds_scales: &[[f64; 3]],
    ) -> Result<Pipeline, DataError> {
        let mut pipeline = Pipeline::nnunet_validation(ds_scales)?;
        pipeline.use_mask_for_norm = use_mask_for_norm.to_vec();
        pipeline.transforms = Some(RandomTransforms {
            spatial: RandomSpatial::nnunet(setup),
            noise: RandomGaussianNoise::nnunet(),
            blur: RandomGaussianBlur::nnunet(setup.mode),
            brightness: RandomBrightness::nnunet(),
            contrast: RandomContrast::nnunet(),
            low_resolution: RandomLowResolution::nnunet(setup.mode),
            gamma_inverted: RandomGamma::nnunet(true),
            gamma: RandomGamma::nnunet(false),
            mirror: RandomMirror {
                axes: setup.mirror_axes.clone(),
            },
        });
        Ok(pipeline)
    }

    /// nnU-Net's validation pipeline: `-1 → 0` and the deep-supervision targets only.
    ///
    /// # Errors
    /// [`DataError::DsScale`] for a scale outside (0, 1].
    pub fn nnunet_validation(ds_scales: &[[f64; 3]]) -> Result<Pipeline, DataError> {
        if let Some(&scale) = ds_scales
            .iter()
            .find(|s| s.iter().any(|&v| !(v > 0.0 && v <= 1.0)))
        {
            return Err(DataError::DsScale { scale });
        }
        Ok(Pipeline {
            transforms: None,
            use_mask_for_norm: Vec::new(),
            ds_scales: ds_scales.to_vec(),
            targets: TargetOptions::default(),
        })
    }

    /// The pipeline with cascade and/or region targets.
    pub fn with_targets(mut self, targets: TargetOptions) -> Pipeline {
        self.targets = targets;
        self
    }

    /// Channels of [`Augmented::data`] for patches with `n_image_channels` image channels
    /// (cascade: one more per previous-stage label).
    pub fn n_data_channels(&self, n_image_channels: usize) -> usize {
        n_image_channels + self.targets.cascade_labels.as_ref().map_or(0, Vec::len)
    }

    /// Channels of each target: 1 (a label map), or one per region plus one for the ignore label.
    pub fn n_target_channels(&self) -> usize {
        match &self.targets.regions {
            Some(regions) => regions.len() + usize::from(self.targets.ignore_label.is_some()),
            None => 1,
        }
    }

    /// Draws the parameters of every step for a sample with `n_channels` image channels.
    pub fn sample<R: Rng>(&self, rng: &mut R, n_channels: usize) -> AugmentParams {
        let Some(t) = &self.transforms else {
            return AugmentParams {
                spatial: None,
                noise: None,
                blur: None,
                brightness: None,
                contrast: None,
                low_resolution: None,
                gamma_inverted: None,
                gamma: None,
                mirror: None,
            };
        };
        AugmentParams {
            spatial: Some(t.spatial.sample(rng)),
            noise: t.noise.sample(rng),
            blur: t.blur.sample(rng, n_channels),
            brightness: t.brightness.sample(rng, n_channels),
            contrast: t.contrast.sample(rng, n_channels),
            low_resolution: t.low_resolution.sample(rng, n_channels),
            gamma_inverted: t.gamma_inverted.sample(rng, n_channels),
            gamma: t.gamma.sample(rng, n_channels),
            mirror: Some(t.mirror.sample(rng)),
        }
    }

    /// Draws parameters and applies them to `patch`.
    ///
    /// # Errors
    /// As [`Pipeline::apply`].
    pub fn run<R: Rng>(&self, rng: &mut R, patch: Patch) -> Result<Augmented, DataError> {
        let params = self.sample(rng, patch.data.shape()[0]);
        self.apply(&params, patch)
    }

    /// Applies drawn parameters to `patch` (data `(c, z, y, x)`, seg `(1, z, y, x)`).
    ///
    /// # Errors
    /// [`DataError::MaskFlags`] when `use_mask_for_norm` does not have one flag per channel.
    pub fn apply(&self, params: &AugmentParams, patch: Patch) -> Result<Augmented, DataError> {
        let n_channels = patch.data.shape()[0];
        if self.transforms.is_some() && self.use_mask_for_norm.len() != n_channels {
            return Err(DataError::MaskFlags {
                n_flags: self.use_mask_for_norm.len(),
                n_channels,
            });
        }
        let (mut data, mut seg) = match &params.spatial {
            Some(spatial) => spatial.apply(patch.data.view(), patch.seg.view()),
            None => (patch.data, patch.seg),
        };
        self.apply_intensity(params, &mut data);
        if let Some(mirror) = &params.mirror {
            mirror.apply(data.view_mut());
            mirror.apply(seg.view_mut());
        }
        let masked: Vec<usize> = (0..n_channels)
            .filter(|&c| self.use_mask_for_norm.get(c).copied().unwrap_or(false))
            .collect();
        mask_outside(data.view_mut(), seg.view(), &masked);
        outside_to_background(seg.view_mut());
        Ok(Augmented {
            data,
            targets: self.targets(seg),
        })
    }

    fn apply_intensity(&self, params: &AugmentParams, data: &mut Array4<f32>) {
        if let Some(t) = &params.noise {
            t.apply(data.view_mut());
        }
        if let Some(t) = &params.blur {
            t.apply(data.view_mut());
        }
        if let Some(t) = &params.brightness {
            t.apply(data.view_mut());
        }
        if let Some(t) = &params.contrast {
            t.apply(data.view_mut());
        }
        if let Some(t) = &params.low_resolution {
            t.apply(data.view_mut());
        }
        if let Some(t) = &params.gamma_inverted {
            t.apply(data.view_mut());
        }
        if let Some(t) = &params.gamma {
            t.apply(data.view_mut());
        }
    }

    /// Deep-supervision targets: the full-resolution seg for scale 1, `nearest-exact`
    /// downsampling otherwise; just the seg without deep supervision.
    fn targets(&self, seg: Array4<i16>) -> Vec<Array4<i16>> {
        if self.ds_scales.is_empty() {
            return vec![seg];
        }
        self.ds_scales
            .iter()
            .map(|&scale| {
                if scale.iter().all(|&s| s == 1.0) {
                    seg.clone()
                } else {
                    downsample_seg(seg.view(), scale)
                }
            })
            .collect()
    }

    /// Number of segmentation targets each sample yields.
    pub fn n_targets(&self) -> usize {
        self.ds_scales.len().max(1)
    }

    /// Shape `(z, y, x)` of target `level` for a network patch `patch`.
    pub fn target_shape(&self, patch: [usize; 3], level: usize) -> [usize; 3] {
        match self.ds_scales.get(level) {
            Some(&scale) => super::labels::ds_shape(patch, scale),
            None => patch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn patch(crop: [usize; 3], n_channels: usize) -> Patch {
        let [z, y, x] = crop;
        Patch {
            data: Array4::from_shape_fn((n_channels, z, y, x), |(c, z, y, x)| {
                (c + z + y + x) as f32 / 10.0
            }),
            seg: Array4::from_shape_fn(
                (1, z, y, x),
                |(_, z, y, x)| {
                    if x < 3 {
                        -1
                    } else {
                        ((z + y) % 3) as i16
                    }
                },
            ),
        }
    }

    #[test]
    fn training_pipeline_produces_patch_sized_targets() {
        let setup = DaSetup::nnunet(&[16, 20, 24]).unwrap();
        let scales = [[1.0, 1.0, 1.0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]];
        let pipeline = Pipeline::nnunet_training(&setup, &[true, false], &scales).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for _ in 0..10 {
            let out = pipeline.run(&mut rng, patch(setup.crop, 2)).unwrap();
            assert_eq!(out.data.shape(), &[2, 16, 20, 24]);
            let shapes: Vec<&[usize]> = out.targets.iter().map(|t| t.shape()).collect();
            assert_eq!(
                shapes,
                vec![&[1, 16, 20, 24][..], &[1, 8, 10, 12], &[1, 4, 5, 6]]
            );
            assert!(out
                .targets
                .iter()
                .all(|t| t.iter().all(|&v| (0..3).contains(&v))));
            assert!(out.data.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn same_seed_same_sample() {
        let setup = DaSetup::nnunet(&[12, 12, 12]).unwrap();
        let pipeline = Pipeline::nnunet_training(&setup, &[false], &[]).unwrap();
        let run = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..8)
                .map(|_| pipeline.run(&mut rng, patch(setup.crop, 1)).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(4), run(4));
        assert_ne!(run(4), run(5));
    }

    #[test]
    fn validation_only_relabels_and_downsamples() {
        let pipeline = Pipeline::nnunet_validation(&[[1.0; 3], [1.0, 0.5, 0.5]]).unwrap();
        let p = patch([4, 6, 8], 1);
        let params = pipeline.sample(&mut ChaCha8Rng::seed_from_u64(0), 1);
        let out = pipeline.apply(&params, p.clone()).unwrap();
        assert_eq!(out.data, p.data);
        assert_eq!(out.targets[0], p.seg.mapv(|v| v.max(0)));
        assert_eq!(out.targets[1].shape(), &[1, 4, 3, 4]);
    }

    #[test]
    fn mask_flags_must_match_channels_and_scales_must_be_valid() {
        let setup = DaSetup::nnunet(&[8, 8, 8]).unwrap();
        let pipeline = Pipeline::nnunet_training(&setup, &[true], &[]).unwrap();
        let err = pipeline.run(&mut ChaCha8Rng::seed_from_u64(0), patch(setup.crop, 2));
        assert!(matches!(
            err,
            Err(DataError::MaskFlags {
                n_flags: 1,
                n_channels: 2
            })
        ));
        assert!(Pipeline::nnunet_validation(&[[0.0, 1.0, 1.0]]).is_err());
    }

    #[test]
    fn masking_zeroes_the_outside_after_augmentation() {
        let pipeline =
            Pipeline::nnunet_training(&DaSetup::nnunet(&[6, 6, 6]).unwrap(), &[true], &[]).unwrap();
        let p = patch([6, 6, 6], 1);
        let params = AugmentParams {
            spatial: Some(Spatial::crop([6, 6, 6])),
            noise: None,
            blur: None,
            brightness: None,
            contrast: None,
            low_resolution: None,
            gamma_inverted: None,
            gamma: None,
            mirror: Some(Mirror {
                flip: [false, false, true],
            }),
        };
        let out = pipeline.apply(&params, p).unwrap();
        // x < 3 was outside; mirrored along x it is x >= 3, zeroed in the image, 0 in the seg.
        for ((_, _, _, x), &v) in out.data.indexed_iter() {
            assert_eq!(v == 0.0, x >= 3, "x {x}");
        }
    }
}
