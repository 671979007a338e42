//! The augmentation pipeline in nnU-Net's order: spatial, noise, blur, brightness, contrast,
//! low resolution, inverted gamma, gamma, mirroring, mask for normalisation, `-1 → 0`, cascade
//! inputs (previous-stage segmentation as one-hot image channels, randomly corrupted), region
//! targets, deep-supervision targets. Validation runs only `-1 → 0`, the one-hot cascade
//! inputs (uncorrupted), region targets and deep-supervision targets.
//!
//! Presets: [`Pipeline::nnunet_training`] (nnU-Net's default set), [`Pipeline::da5_training`]
//! (the DA5 set, its steps and order in `da5.rs`, the label steps after it as above), and
//! [`Pipeline::with_interpolation`] for the variants that resample label maps (or images too)
//! nearest-neighbour.
//!
//! | nnU-Net trainer | pipeline |
//! |---|---|
//! | `nnUNetTrainer` | `nnunet_training(&DaSetup::nnunet(ps)?, ..)` |
//! | `nnUNetTrainer_DASegOrd0` | the same `.with_interpolation(SpatialInterpolation::SegNearest)` |
//! | `nnUNetTrainerDA5` | `da5_training(&DaSetup::da5(ps)?, ..)` |
//! | `nnUNetTrainerDA5Segord0` | the same `.with_interpolation(SpatialInterpolation::SegNearest)` |
//! | `nnUNetTrainerDA5ord0` | the same `.with_interpolation(SpatialInterpolation::Nearest)` |
//!
//! nnU-Net: `nnUNetTrainer.get_training_transforms` (steps 1–15 of reference §6.5) and
//! `get_validation_transforms`; `nnUNetTrainerDA5.get_training_transforms`,
//! `nnUNetTrainerDAOrd0.py`.

use autoseg_preprocessing::cache::append_one_hot;
use autoseg_preprocessing::recycle::recycle_array;
use ndarray::{s, Array4, Axis};
use rand::Rng;

use super::additive::AdditiveBrightness;
use super::blur::{GaussianBlur, RandomGaussianBlur};
use super::brightness::{MultiplicativeBrightness, RandomBrightness};
use super::cascade::{
    BinaryOperators, ComponentRemoval, RandomBinaryOperator, RandomComponentRemoval,
};
use super::contrast::{Contrast, RandomContrast};
use super::da5::{self, Da5Transforms};
use super::gamma::{Gamma, RandomGamma};
use super::labels::{downsample_seg, mask_outside, outside_to_background};
use super::local::{BrightnessGradient, LocalGamma};
use super::lowres::{RandomLowResolution, SimulateLowResolution};
use super::median::MedianFilter;
use super::mirror::{Mirror, RandomMirror};
use super::noise::{GaussianNoise, RandomGaussianNoise};
use super::rectangles::BlankRectangles;
use super::regions::region_targets;
use super::rot90::{Rot90, Transpose};
use super::setup::DaSetup;
use super::sharpen::Sharpening;
use super::spatial::{RandomSpatial, Spatial, SpatialInterpolation};
use crate::sampling::{DataError, Patch};

/// The random transforms of the training pipeline: one set, then the cascade steps.
#[derive(Clone, Debug, PartialEq)]
struct RandomTransforms {
    set: TransformSet,
    cascade_morphology: RandomBinaryOperator,
    cascade_components: RandomComponentRemoval,
}

/// Which augmentation set a training pipeline runs.
#[derive(Clone, Debug, PartialEq)]
enum TransformSet {
    /// nnU-Net's default set.
    Nnunet(Box<NnunetTransforms>),
    /// The DA5 set.
    Da5(Box<Da5Transforms>),
}

/// The random transforms of nnU-Net's default set.
#[derive(Clone, Debug, PartialEq)]
struct NnunetTransforms {
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

/// Drawn parameters of one pass through the pipeline; `None`: the step does not fire (or the
/// pipeline's set does not have it). The DA5 set uses `contrast` for whichever of its two
/// contrast variants was chosen and `gamma_inverted` and `gamma` for its two inverted gammas.
#[derive(Clone, Debug, Default, PartialEq)]
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
    /// Cascade: random binary morphology of the previous-stage channels (training only).
    pub cascade_morphology: Option<BinaryOperators>,
    /// Cascade: removal of random connected components from them (training only).
    pub cascade_components: Option<ComponentRemoval>,
    /// DA5: quarter turns (image and label maps).
    pub rot90: Option<Rot90>,
    /// DA5: axis permutation (image and label maps).
    pub transpose: Option<Transpose>,
    /// DA5: median filter (chosen instead of `blur`).
    pub median: Option<MedianFilter>,
    /// DA5: additive brightness.
    pub additive_brightness: Option<AdditiveBrightness>,
    /// DA5: blank rectangles.
    pub blank_rectangles: Option<BlankRectangles>,
    /// DA5: additive brightness gradient.
    pub brightness_gradient: Option<BrightnessGradient>,
    /// DA5: local gamma.
    pub local_gamma: Option<LocalGamma>,
    /// DA5: sharpening.
    pub sharpening: Option<Sharpening>,
}

/// One augmented sample, ready for the batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Augmented {
    /// Network input `(c, z, y, x)` at the network patch size,
    /// `c = `[`Pipeline::n_data_channels`]: the image channels, then for a cascade stage one
    /// 0/1 channel per previous-stage label.
    pub data: Array4<f32>,
    /// Targets `(t, z, y, x)`, one per deep-supervision level (full resolution first),
    /// `t = `[`Pipeline::n_target_channels`]: the label map with -1 already mapped to 0, or
    /// one 0/1 channel per region (+ the ignore-label channel).
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
        let set = TransformSet::Nnunet(Box::new(NnunetTransforms {
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
        }));
        Pipeline::training(set, use_mask_for_norm, ds_scales)
    }

    /// nnU-Net's DA5 training pipeline (`nnUNetTrainerDA5`) for `setup`, which should come
    /// from [`DaSetup::da5`] (its crop allows for DA5's stronger zoom-out). Arguments and label
    /// steps (mask for normalisation, `-1 → 0`, cascade inputs and their corruption, region and
    /// deep-supervision targets) as [`Pipeline::nnunet_training`]; the DA5 steps before them
    /// are listed in the module docs of `da5.rs`. The `ord0` variants add
    /// [`Pipeline::with_interpolation`].
    ///
    /// # Errors
    /// [`DataError::DsScale`] for a scale outside (0, 1].
    pub fn da5_training(
        setup: &DaSetup,
        use_mask_for_norm: &[bool],
        ds_scales: &[[f64; 3]],
    ) -> Result<Pipeline, DataError> {
        let set = TransformSet::Da5(Box::new(Da5Transforms::new(setup)));
        Pipeline::training(set, use_mask_for_norm, ds_scales)
    }

    /// A training pipeline running `set`, then the cascade steps.
    fn training(
        set: TransformSet,
        use_mask_for_norm: &[bool],
        ds_scales: &[[f64; 3]],
    ) -> Result<Pipeline, DataError> {
        let mut pipeline = Pipeline::nnunet_validation(ds_scales)?;
        pipeline.use_mask_for_norm = use_mask_for_norm.to_vec();
        pipeline.transforms = Some(RandomTransforms {
            set,
            cascade_morphology: RandomBinaryOperator::nnunet(),
            cascade_components: RandomComponentRemoval::nnunet(),
        });
        Ok(pipeline)
    }

    /// The pipeline with its spatial transform sampling images and label maps as
    /// `interpolation` says (`SegNearest`: `nnUNetTrainer_DASegOrd0` on the default set,
    /// `nnUNetTrainerDA5Segord0` on DA5; `Nearest`: `nnUNetTrainerDA5ord0`). Draws are
    /// unchanged; a validation pipeline (no spatial transform) is returned as it is.
    pub fn with_interpolation(mut self, interpolation: SpatialInterpolation) -> Pipeline {
        if let Some(t) = &mut self.transforms {
            match &mut t.set {
                TransformSet::Nnunet(set) => set.spatial.interpolation = interpolation,
                TransformSet::Da5(set) => set.spatial.interpolation = interpolation,
            }
        }
        self
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

    /// Draws the parameters of every step for a sample with `n_channels` image channels
    /// (cascade steps last, and only for a cascade stage, so other draws do not shift).
    pub fn sample<R: Rng>(&self, rng: &mut R, n_channels: usize) -> AugmentParams {
        let Some(t) = &self.transforms else {
            return AugmentParams::default();
        };
        let mut params = match &t.set {
            TransformSet::Nnunet(set) => AugmentParams {
                spatial: Some(set.spatial.sample(rng)),
                noise: set.noise.sample(rng),
                blur: set.blur.sample(rng, n_channels),
                brightness: set.brightness.sample(rng, n_channels),
                contrast: set.contrast.sample(rng, n_channels),
                low_resolution: set.low_resolution.sample(rng, n_channels),
                gamma_inverted: set.gamma_inverted.sample(rng, n_channels),
                gamma: set.gamma.sample(rng, n_channels),
                mirror: Some(set.mirror.sample(rng)),
                ..AugmentParams::default()
            },
            TransformSet::Da5(set) => set.sample(rng, n_channels),
        };
        let n_labels = self.targets.cascade_labels.as_ref().map(Vec::len);
        params.cascade_morphology = n_labels.and_then(|n| t.cascade_morphology.sample(rng, n));
        params.cascade_components = n_labels.and_then(|n| t.cascade_components.sample(rng, n));
        params
    }

    /// Draws parameters and applies them to `patch`.
    ///
    /// # Errors
    /// As [`Pipeline::apply`].
    pub fn run<R: Rng>(&self, rng: &mut R, patch: Patch) -> Result<Augmented, DataError> {
        let params = self.sample(rng, patch.data.shape()[0]);
        self.apply(&params, patch)
    }

    /// Applies drawn parameters to `patch`: data `(c, z, y, x)`, seg `(1, z, y, x)`, or
    /// `(2, z, y, x)` for a cascade stage (label map, previous stage's segmentation).
    ///
    /// # Errors
    /// [`DataError::MaskFlags`] when `use_mask_for_norm` does not have one flag per channel;
    /// [`DataError::SampleChannels`] when the seg does not have 2 channels for a cascade stage
    /// or 1 otherwise (the data channels the sample would get against those expected).
    pub fn apply(&self, params: &AugmentParams, patch: Patch) -> Result<Augmented, DataError> {
        let n_channels = patch.data.shape()[0];
        if self.transforms.is_some() && self.use_mask_for_norm.len() != n_channels {
            return Err(DataError::MaskFlags {
                n_flags: self.use_mask_for_norm.len(),
                n_channels,
            });
        }
        self.check_seg_channels(n_channels, patch.seg.shape())?;
        let (mut data, mut seg) = match &params.spatial {
            Some(spatial) => {
                let out = spatial.apply(patch.data.view(), patch.seg.view());
                // The crop's buffers serve this thread's next read (`recycle` docs).
                recycle_array(patch.data);
                recycle_array(patch.seg);
                out
            }
            None => (patch.data, patch.seg),
        };
        let is_da5 = matches!(
            &self.transforms,
            Some(RandomTransforms {
                set: TransformSet::Da5(_),
                ..
            })
        );
        if is_da5 {
            (data, seg) = da5::apply_steps(params, data, seg);
        } else {
            self.apply_intensity(params, &mut data);
            if let Some(mirror) = &params.mirror {
                mirror.apply(data.view_mut());
                mirror.apply(seg.view_mut());
            }
        }
        let masked: Vec<usize> = (0..n_channels)
            .filter(|&c| self.use_mask_for_norm.get(c).copied().unwrap_or(false))
            .collect();
        mask_outside(data.view_mut(), seg.view(), &masked);
        outside_to_background(seg.view_mut());
        let (data, seg) = self.cascade_inputs(params, data, seg);
        let seg = match &self.targets.regions {
            Some(regions) => region_targets(
                seg.index_axis(Axis(0), 0),
                regions,
                self.targets.ignore_label,
            ),
            None => seg,
        };
        Ok(Augmented {
            data,
            targets: self.targets(seg),
        })
    }

    /// Seg channels a patch must have: 2 for a cascade stage, 1 otherwise.
    fn check_seg_channels(&self, n_channels: usize, seg_shape: &[usize]) -> Result<(), DataError> {
        let n_seg = if self.targets.cascade_labels.is_some() {
            2
        } else {
            1
        };
        if seg_shape[0] == n_seg {
            return Ok(());
        }
        // What the sample would become: seg channel 1 moves to the data only if it exists.
        let n_moved = match &self.targets.cascade_labels {
            Some(labels) if seg_shape[0] >= 2 => labels.len(),
            _ => 0,
        };
        let mut expected_target = seg_shape.to_vec();
        expected_target[0] = self.n_target_channels();
        let mut found_target = seg_shape.to_vec();
        found_target[0] = seg_shape[0] - usize::from(n_moved > 0);
        Err(DataError::SampleChannels {
            expected_data: self.n_data_channels(n_channels),
            found_data: n_channels + n_moved,
            expected_targets: vec![expected_target],
            found_targets: vec![found_target],
        })
    }

    /// Cascade stage: seg channel 1 leaves the seg as one-hot image channels, corrupted by
    /// the drawn cascade steps; otherwise `data` and `seg` unchanged.
    fn cascade_inputs(
        &self,
        params: &AugmentParams,
        data: Array4<f32>,
        seg: Array4<i16>,
    ) -> (Array4<f32>, Array4<i16>) {
        let Some(labels) = &self.targets.cascade_labels else {
            return (data, seg);
        };
        assert_eq!(
            seg.shape()[0],
            2,
            "the spatial transform keeps every seg channel"
        );
        let n_image = data.shape()[0];
        let mut data = append_one_hot(data, seg.index_axis(Axis(0), 1), labels);
        let mut one_hot = data.slice_mut(s![n_image.., .., .., ..]);
        if let Some(t) = &params.cascade_morphology {
            t.apply(one_hot.view_mut());
        }
        if let Some(t) = &params.cascade_components {
            t.apply(one_hot.view_mut());
        }
        (data, seg.slice_move(s![0..1, .., .., ..]))
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
    /// downsampling of every channel otherwise; just the seg without deep supervision.
    fn targets(&self, seg: Array4<i16>) -> Vec<Array4<i16>> {
        if self.ds_scales.is_empty() {
            return vec![seg];
        }
        let downsampled: Vec<Option<Array4<i16>>> = self
            .ds_scales
            .iter()
            .map(|&scale| {
                let full = scale.iter().all(|&s| s == 1.0);
                (!full).then(|| downsample_seg(seg.view(), scale))
            })
            .collect();
        // Full-resolution levels get the seg itself (the last one by move, no copy).
        let last_full = downsampled.iter().rposition(Option::is_none);
        let mut seg = seg;
        downsampled
            .into_iter()
            .enumerate()
            .map(|(level, target)| {
                target.unwrap_or_else(|| {
                    if Some(level) == last_full {
                        std::mem::take(&mut seg)
                    } else {
                        seg.clone()
                    }
                })
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

    /// FNV-1a over the bits of every output value of `n` runs of `pipeline` from `seed`.
    fn digest(
        pipeline: &Pipeline,
        crop: [usize; 3],
        n_channels: usize,
        seed: u64,
        n: usize,
    ) -> u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        let mut eat = |v: u64| {
            hash ^= v;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        };
        for _ in 0..n {
            let out = pipeline.run(&mut rng, patch(crop, n_channels)).unwrap();
            out.data.iter().for_each(|v| eat(u64::from(v.to_bits())));
            for t in &out.targets {
                t.iter().for_each(|&v| eat(v as u16 as u64));
            }
        }
        hash
    }

    // Pinned outputs of nnU-Net's default pipeline (3D, dummy 2D, 2D): digests of the pipeline
    // as it was before the DA5 set was added (computed by running that code), unchanged by it;
    // any change to its draws or arithmetic shows here.
    #[test]
    fn default_pipeline_outputs_are_pinned() {
        let run = |ps: &[usize], seed| {
            let setup = DaSetup::nnunet(ps).unwrap();
            let scales = [[1.0; 3], [0.5; 3]];
            let pipeline = Pipeline::nnunet_training(&setup, &[true, false], &scales).unwrap();
            digest(&pipeline, setup.crop, 2, seed, 24)
        };
        let got = [
            run(&[16, 20, 24], 1),
            run(&[6, 40, 36], 2),
            run(&[28, 32], 3),
        ];
        // Gamma's vectorised power needs AVX2; elsewhere libm's `powf` may differ in the last
        // bit.
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            assert_eq!(
                got,
                [
                    12_666_040_975_505_389_183,
                    15_204_327_838_922_782_662,
                    9_405_462_634_721_548_364
                ]
            );
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
            mirror: Some(Mirror {
                flip: [false, false, true],
            }),
            ..AugmentParams::default()
        };
        let out = pipeline.apply(&params, p).unwrap();
        // x < 3 was outside; mirrored along x it is x >= 3, zeroed in the image, 0 in the seg.
        for ((_, _, _, x), &v) in out.data.indexed_iter() {
            assert_eq!(v == 0.0, x >= 3, "x {x}");
        }
    }

    /// A 2-channel seg: the label map of `patch`, and as previous stage labels 1 (x < 4),
    /// 2 (x >= 4, y even), 0 elsewhere, -1 on the first z slice.
    fn cascade_patch(crop: [usize; 3], n_channels: usize) -> Patch {
        let p = patch(crop, n_channels);
        let [z, y, x] = crop;
        let prev = Array4::from_shape_fn((1, z, y, x), |(_, z, y, x)| match (z, y % 2, x < 4) {
            (0, _, _) => -1,
            (_, _, true) => 1,
            (_, 0, false) => 2,
            _ => 0,
        });
        Patch {
            data: p.data,
            seg: ndarray::concatenate(Axis(0), &[p.seg.view(), prev.view()]).unwrap(),
        }
    }

    fn cascade_targets() -> TargetOptions {
        TargetOptions {
            cascade_labels: Some(vec![1, 2]),
            regions: None,
            ignore_label: None,
        }
    }

    /// `sample`, with the spatial step replaced by a centre crop (no interpolation).
    fn sample_cropped(pipeline: &Pipeline, seed: u64, crop: [usize; 3]) -> AugmentParams {
        let mut params = pipeline.sample(&mut ChaCha8Rng::seed_from_u64(seed), 1);
        params.spatial = Some(Spatial::crop(crop));
        params
    }

    #[test]
    fn validation_moves_the_previous_stage_as_one_hot() {
        let pipeline = Pipeline::nnunet_validation(&[[1.0; 3], [0.5; 3]])
            .unwrap()
            .with_targets(cascade_targets());
        let p = cascade_patch([4, 6, 8], 1);
        let params = pipeline.sample(&mut ChaCha8Rng::seed_from_u64(0), 1);
        assert_eq!(params.cascade_morphology, None);
        assert_eq!(params.cascade_components, None);
        let out = pipeline.apply(&params, p.clone()).unwrap();
        assert_eq!(out.data.shape(), &[pipeline.n_data_channels(1), 4, 6, 8]);
        assert_eq!(out.data.shape()[0], 3);
        assert_eq!(out.data.slice(s![0..1, .., .., ..]), p.data);
        for ((c, z, y, x), &v) in out.data.indexed_iter().filter(|((c, ..), _)| *c > 0) {
            let want = i16::try_from(c).unwrap() == p.seg[[1, z, y, x]];
            assert_eq!(v, f32::from(u8::from(want)), "{c} {z} {y} {x}");
        }
        assert_eq!(
            out.targets[0],
            p.seg.slice(s![0..1, .., .., ..]).mapv(|v| v.max(0))
        );
        assert_eq!(
            out.targets[1].shape(),
            &[pipeline.n_target_channels(), 2, 3, 4]
        );
    }

    #[test]
    fn training_corrupts_only_the_cascade_channels() {
        let setup = DaSetup::nnunet(&[6, 8, 8]).unwrap();
        let pipeline = Pipeline::nnunet_training(&setup, &[false], &[])
            .unwrap()
            .with_targets(cascade_targets());
        let validation = Pipeline::nnunet_validation(&[])
            .unwrap()
            .with_targets(cascade_targets());
        let (mut n_morphology, mut n_components, mut n_changed) = (0, 0, 0);
        for seed in 0..60 {
            let params = sample_cropped(&pipeline, seed, [6, 8, 8]);
            n_morphology += usize::from(params.cascade_morphology.is_some());
            n_components += usize::from(params.cascade_components.is_some());
            let out = pipeline
                .apply(&params, cascade_patch([6, 8, 8], 1))
                .unwrap();
            let mut plain = params.clone();
            plain.cascade_morphology = None;
            plain.cascade_components = None;
            let clean = pipeline.apply(&plain, cascade_patch([6, 8, 8], 1)).unwrap();
            assert_eq!(out.targets, clean.targets);
            assert_eq!(
                out.data.slice(s![0..1, .., .., ..]),
                clean.data.slice(s![0..1, .., .., ..])
            );
            n_changed += usize::from(out.data != clean.data);
            // The cascade channels stay 0/1 and never overlap.
            let one_hot = out.data.slice(s![1.., .., .., ..]);
            assert!(one_hot.iter().all(|&v| v == 0.0 || v == 1.0));
            assert!(one_hot.sum_axis(Axis(0)).iter().all(|&v| v <= 1.0));
        }
        // p 0.4 and 0.2 over 60 draws; whether a draw changes anything depends on the draw.
        assert!((12..=36).contains(&n_morphology), "{n_morphology}");
        assert!((3..=24).contains(&n_components), "{n_components}");
        assert!(n_changed > 0);
        let val_params = validation.sample(&mut ChaCha8Rng::seed_from_u64(1), 1);
        assert_eq!(
            (val_params.cascade_morphology, val_params.cascade_components),
            (None, None)
        );
    }

    #[test]
    fn cascade_runs_are_deterministic_by_seed() {
        let setup = DaSetup::nnunet(&[6, 8, 8]).unwrap();
        let pipeline = Pipeline::nnunet_training(&setup, &[true], &[[1.0; 3], [0.5; 3]])
            .unwrap()
            .with_targets(cascade_targets());
        let run = |seed: u64| {
            (0..12u64)
                .map(|i| {
                    let params = sample_cropped(&pipeline, seed * 100 + i, [6, 8, 8]);
                    pipeline
                        .apply(&params, cascade_patch([6, 8, 8], 1))
                        .unwrap()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        // Draws before the cascade steps do not shift: a non-cascade pipeline draws the same.
        let plain = Pipeline::nnunet_training(&setup, &[true], &[]).unwrap();
        let a = plain.sample(&mut ChaCha8Rng::seed_from_u64(8), 1);
        let b = pipeline.sample(&mut ChaCha8Rng::seed_from_u64(8), 1);
        assert_eq!(
            (a.spatial, a.noise, a.mirror),
            (b.spatial, b.noise, b.mirror)
        );
    }

    #[test]
    fn region_targets_follow_the_regions_and_the_ignore_label() {
        // Labels {1, 2}, regions [[1, 2], [2]], ignore label 3.
        let targets = TargetOptions {
            cascade_labels: None,
            regions: Some(vec![vec![1, 2], vec![2]]),
            ignore_label: Some(3),
        };
        let pipeline = Pipeline::nnunet_validation(&[[1.0; 3], [1.0, 0.5, 0.5]])
            .unwrap()
            .with_targets(targets);
        let seg = Array4::from_shape_fn((1, 2, 4, 4), |(_, z, y, x)| {
            [-1i16, 0, 1, 2, 3][(z + y + x) % 5]
        });
        let p = Patch {
            data: Array4::zeros((1, 2, 4, 4)),
            seg: seg.clone(),
        };
        let params = pipeline.sample(&mut ChaCha8Rng::seed_from_u64(0), 1);
        let out = pipeline.apply(&params, p).unwrap();
        assert_eq!(pipeline.n_target_channels(), 3);
        assert_eq!(out.targets[0].shape(), &[3, 2, 4, 4]);
        assert_eq!(out.targets[1].shape(), &[3, 2, 2, 2]);
        for ((c, z, y, x), &v) in out.targets[0].indexed_iter() {
            let label = seg[[0, z, y, x]];
            let want = match c {
                0 => label == 1 || label == 2,
                1 => label == 2,
                _ => label == 3,
            };
            assert_eq!(v, i16::from(want), "channel {c} label {label}");
        }
        // Downsampling keeps every channel: nearest-exact picks rows/columns 1 and 3.
        for ((c, z, y, x), &v) in out.targets[1].indexed_iter() {
            assert_eq!(v, out.targets[0][[c, z, 2 * y + 1, 2 * x + 1]]);
        }
    }

    #[test]
    fn cascade_with_regions_has_the_announced_channels() {
        let targets = TargetOptions {
            cascade_labels: Some(vec![1, 2]),
            regions: Some(vec![vec![1, 2], vec![2]]),
            ignore_label: None,
        };
        let setup = DaSetup::nnunet(&[6, 8, 8]).unwrap();
        let pipeline = Pipeline::nnunet_training(&setup, &[false, false], &[[1.0; 3], [0.5; 3]])
            .unwrap()
            .with_targets(targets);
        let mut params = pipeline.sample(&mut ChaCha8Rng::seed_from_u64(2), 2);
        params.spatial = Some(Spatial::crop([6, 8, 8]));
        let out = pipeline
            .apply(&params, cascade_patch([6, 8, 8], 2))
            .unwrap();
        assert_eq!(out.data.shape(), &[pipeline.n_data_channels(2), 6, 8, 8]);
        assert_eq!(pipeline.n_data_channels(2), 4);
        let shapes: Vec<&[usize]> = out.targets.iter().map(|t| t.shape()).collect();
        assert_eq!(shapes, vec![&[2, 6, 8, 8][..], &[2, 3, 4, 4]]);
    }

    #[test]
    fn full_cascade_runs_have_the_announced_shapes_and_repeat_by_seed() {
        let targets = TargetOptions {
            cascade_labels: Some(vec![1, 2]),
            regions: Some(vec![vec![1, 2], vec![2]]),
            ignore_label: Some(3),
        };
        let setup = DaSetup::nnunet(&[8, 10, 12]).unwrap();
        let scales = [[1.0; 3], [0.5; 3]];
        let pipeline = Pipeline::nnunet_training(&setup, &[true], &scales)
            .unwrap()
            .with_targets(targets);
        let run = |seed: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..10)
                .map(|_| {
                    pipeline
                        .run(&mut rng, cascade_patch(setup.crop, 1))
                        .unwrap()
                })
                .collect::<Vec<_>>()
        };
        let outs = run(6);
        for out in &outs {
            assert_eq!(out.data.shape(), &[pipeline.n_data_channels(1), 8, 10, 12]);
            let shapes: Vec<&[usize]> = out.targets.iter().map(|t| t.shape()).collect();
            assert_eq!(shapes, vec![&[3, 8, 10, 12][..], &[3, 4, 5, 6]]);
            assert!(out
                .targets
                .iter()
                .all(|t| t.iter().all(|&v| v == 0 || v == 1)));
        }
        assert_eq!(outs, run(6));
        assert_ne!(outs, run(7));
    }

    #[test]
    fn seg_channels_must_match_the_cascade_option() {
        let cascade = Pipeline::nnunet_validation(&[])
            .unwrap()
            .with_targets(cascade_targets());
        let params = cascade.sample(&mut ChaCha8Rng::seed_from_u64(0), 1);
        let err = cascade.apply(&params, patch([2, 3, 4], 1));
        assert!(matches!(
            err,
            Err(DataError::SampleChannels {
                expected_data: 3,
                found_data: 1,
                ..
            })
        ));
        let plain = Pipeline::nnunet_validation(&[]).unwrap();
        let err = plain.apply(&params, cascade_patch([2, 3, 4], 1));
        assert!(matches!(
            err,
            Err(DataError::SampleChannels { ref found_targets, .. }) if found_targets[0][0] == 2
        ));
    }
}
