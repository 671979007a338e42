//! One case through nnU-Net's preprocessing, in nnU-Net's order: read, transpose, crop to the
//! nonzero region, normalize, resample, sample foreground locations.
//!
//! nnU-Net: `preprocessing/preprocessors/default_preprocessor.py::run_case_npy`
//! (`reference/nnunet.md` §4). [`PreprocessSpec`] gathers, once per configuration, everything
//! the per-case work depends on (and nothing else: it is also what the cache stamp hashes);
//! [`preprocess_case`] reads a case's files and [`preprocess_arrays`] runs the steps on arrays
//! already in memory. Both work without a label map (inference): then the crop's mask stands in
//! for the segmentation where normalization needs one, and no segmentation is returned.

use std::path::{Path, PathBuf};

use autoseg_planner::{
    compute_new_shape, Configuration, Dim, ForceSeparateZ, NormalizationScheme, PlanError, Plans,
    ResamplingSettings,
};
use ndarray::{Array4, ArrayView4, Axis};
use thiserror::Error;

use crate::cache::CacheError;
use crate::crop::{crop_to_nonzero, BoundingBox, CropError};
use crate::foreground::{sample_class_locations, ClassLocations, LocationClass};
use crate::normalize::{normalize, CtIntensities, Normalization, NormalizeError};
use crate::resample::{resample_data, resample_labels, ResampleError, ResampleSettings, SeparateZ};
use crate::{read_label_map, read_stacked, Case, CaseId, Geometry, ImageError, Labels, StackError};

/// Why preprocessing a configuration or a case failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PreprocessError {
    /// The configuration cannot be preprocessed as planned.
    #[error("configuration {configuration}: {fault}")]
    InvalidPlan {
        /// Configuration name.
        configuration: String,
        /// What is wrong with it.
        fault: String,
    },
    /// The configuration does not resolve.
    #[error("cannot resolve the configuration")]
    Plan(#[source] PlanError),
    /// A file of the case cannot be read.
    #[error("case {case}: cannot read an input file")]
    Read {
        /// Case identifier.
        case: CaseId,
        /// The reader's error (it names the file).
        #[source]
        source: ImageError,
    },
    /// A training case has no label file.
    #[error("case {case}: no label file")]
    MissingLabel {
        /// Case identifier.
        case: CaseId,
    },
    /// The case's channel files cannot be read and stacked into the plan's channels.
    #[error("case {case}: cannot read its channels (the plan normalizes {n_channels})")]
    Channels {
        /// Case identifier.
        case: CaseId,
        /// Channels in the plan.
        n_channels: usize,
        /// What went wrong, naming the file.
        #[source]
        source: Box<StackError>,
    },
    /// A channel or the label map has another shape than the first channel.
    #[error("case {case}: {} has shape {found:?}, expected {expected:?} (z, y, x)", path.display())]
    ShapeMismatch {
        /// Case identifier.
        case: CaseId,
        /// The offending file.
        path: PathBuf,
        /// The first channel's shape.
        expected: [usize; 3],
        /// This file's shape.
        found: [usize; 3],
    },
    /// A label value does not fit the cache's `i16` label maps.
    #[error("case {case}: {} holds label {value}, above the largest supported label 32767", path.display())]
    LabelTooLarge {
        /// Case identifier.
        case: CaseId,
        /// The label file.
        path: PathBuf,
        /// The value.
        value: u16,
    },
    /// Cropping failed.
    #[error("case {case}: cannot crop to the nonzero region")]
    Crop {
        /// Case identifier.
        case: CaseId,
        /// The cause.
        #[source]
        source: CropError,
    },
    /// Normalization failed.
    #[error("case {case}: cannot normalize")]
    Normalize {
        /// Case identifier.
        case: CaseId,
        /// The cause.
        #[source]
        source: NormalizeError,
    },
    /// Resampling failed.
    #[error("case {case}: cannot resample")]
    Resample {
        /// Case identifier.
        case: CaseId,
        /// The cause.
        #[source]
        source: ResampleError,
    },
    /// Reading or writing the preprocessed cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// Everything per-case preprocessing depends on, derived once per configuration from the plans
/// and the dataset's labels (nnU-Net reads the same from `PlansManager`,
/// `ConfigurationManager` and `LabelManager`).
#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessSpec {
    /// Configuration name, for messages.
    pub configuration: String,
    /// Axis permutation applied to images, labels and spacings (`transpose_forward`).
    pub transpose_forward: [usize; 3],
    /// Target spacing: 3 axes, or 2 for 2D configurations (axis 0 keeps the case's spacing).
    pub target_spacing: Vec<f64>,
    /// Normalization per channel, with the dataset statistics CT needs.
    pub normalization: Vec<Normalization>,
    /// Image resampling.
    pub resample_data: ResampleSettings,
    /// Segmentation resampling.
    pub resample_seg: ResampleSettings,
    /// The classes whose locations are sampled (foreground labels or regions, plus
    /// `(-1, *all_labels)` with an ignore label).
    pub location_classes: Vec<LocationClass>,
}

impl PreprocessSpec {
    /// The spec of configuration `config` of `plans` for a dataset with `labels`.
    ///
    /// # Errors
    /// [`PreprocessError::InvalidPlan`] for a transpose that is not a permutation, a target
    /// spacing that is not positive, a channel count that disagrees with the intensity
    /// properties, or CT normalization without statistics.
    pub fn new(
        plans: &Plans,
        config: &Configuration,
        labels: &Labels,
    ) -> Result<PreprocessSpec, PreprocessError> {
        let invalid = |fault: String| PreprocessError::InvalidPlan {
            configuration: config.name.clone(),
            fault,
        };
        check_permutation(plans.transpose_forward).map_err(invalid)?;
        check_target_spacing(config).map_err(invalid)?;
        Ok(PreprocessSpec {
            configuration: config.name.clone(),
            transpose_forward: plans.transpose_forward,
            target_spacing: config.spacing.clone(),
            normalization: normalizations(plans, config).map_err(invalid)?,
            resample_data: resample_settings(&config.resampling_data),
            resample_seg: resample_settings(&config.resampling_seg),
            location_classes: location_classes(labels),
        })
    }

    /// Number of image channels.
    pub fn n_channels(&self) -> usize {
        self.normalization.len()
    }

    /// The full 3-axis target spacing for a case whose transposed spacing is `spacing`: the
    /// configuration's, with the case's own axis-0 spacing prepended for 2D configurations.
    pub fn target_spacing_for(&self, spacing: [f64; 3]) -> [f64; 3] {
        match self.target_spacing.as_slice() {
            [y, x] => [spacing[0], *y, *x],
            [z, y, x] => [*z, *y, *x],
            _ => unreachable!("PreprocessSpec::new accepts only 2 or 3 spacing axes"),
        }
    }
}

fn check_permutation(perm: [usize; 3]) -> Result<(), String> {
    let mut sorted = perm;
    sorted.sort_unstable();
    if sorted == [0, 1, 2] {
        Ok(())
    } else {
        Err(format!(
            "transpose_forward {perm:?} is not a permutation of [0, 1, 2]"
        ))
    }
}

fn check_target_spacing(config: &Configuration) -> Result<(), String> {
    let expected = match config.dim() {
        Dim::Two => 2,
        Dim::Three => 3,
    };
    let spacing = &config.spacing;
    if spacing.len() != expected || !spacing.iter().all(|s| s.is_finite() && *s > 0.0) {
        return Err(format!(
            "spacing {spacing:?} must have {expected} positive entries"
        ));
    }
    Ok(())
}

fn normalizations(plans: &Plans, config: &Configuration) -> Result<Vec<Normalization>, String> {
    let n_channels = config.normalization_schemes.len();
    if config.use_mask_for_norm.len() != n_channels {
        return Err(format!(
            "{n_channels} normalization schemes but {} use_mask_for_norm entries",
            config.use_mask_for_norm.len()
        ));
    }
    let stats = &plans.foreground_intensity_properties;
    config
        .normalization_schemes
        .iter()
        .zip(&config.use_mask_for_norm)
        .enumerate()
        .map(|(channel, (scheme, &use_mask))| match scheme {
            NormalizationScheme::CTNormalization => {
                let p = stats.get(channel).ok_or_else(|| {
                    format!("channel {channel} uses CTNormalization but the plans have no foreground intensity properties for it")
                })?;
                Ok(Normalization::Ct(CtIntensities {
                    mean: p.mean,
                    std: p.std,
                    percentile_00_5: p.percentile_00_5,
                    percentile_99_5: p.percentile_99_5,
                }))
            }
            NormalizationScheme::ZScoreNormalization => Ok(Normalization::ZScore { use_mask }),
            NormalizationScheme::NoNormalization => Ok(Normalization::NoNorm),
            NormalizationScheme::RescaleTo01 => Ok(Normalization::RescaleTo01),
            NormalizationScheme::RgbTo01 => Ok(Normalization::RgbTo01),
        })
        .collect()
}

/// The resampler's settings for a plan entry.
pub fn resample_settings(entry: &ResamplingSettings) -> ResampleSettings {
    ResampleSettings {
        order: entry.order,
        order_z: entry.order_z,
        separate_z: match entry.force_separate_z {
            ForceSeparateZ::Auto => SeparateZ::Auto,
            ForceSeparateZ::Always => SeparateZ::Always,
            ForceSeparateZ::Never => SeparateZ::Never,
        },
    }
}

/// nnU-Net's `collect_for_this`: the foreground regions when the labels declare regions, else
/// every foreground label; with an ignore label also `(-1, *all_labels)`.
pub fn location_classes(labels: &Labels) -> Vec<LocationClass> {
    let as_i16 = |v: u16| v as i16;
    let mut classes: Vec<LocationClass> = match labels.regions() {
        Some(regions) => regions
            .into_iter()
            .map(|r| LocationClass::Region(r.into_iter().map(as_i16).collect()))
            .collect(),
        None => labels
            .all_labels()
            .into_iter()
            .filter(|&l| l != 0)
            .map(|l| LocationClass::Label(as_i16(l)))
            .collect(),
    };
    if labels.ignore_label().is_some() {
        let mut all = vec![-1];
        all.extend(labels.all_labels().into_iter().map(as_i16));
        classes.push(LocationClass::Region(all));
    }
    classes
}

/// What nnU-Net keeps in a case's `.pkl`, plus the source geometry export needs.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseProperties {
    /// Case identifier.
    pub case: CaseId,
    /// The input's spacing `(z, y, x)` in file axis order, before the transpose (nnU-Net's
    /// `properties['spacing']`).
    pub spacing: [f64; 3],
    /// Shape after the transpose, before cropping.
    pub shape_before_cropping: [usize; 3],
    /// The crop, in transposed voxel coordinates.
    pub bbox_used_for_cropping: BoundingBox,
    /// Shape after cropping, before resampling.
    pub shape_after_cropping_and_before_resampling: [usize; 3],
    /// The spacing the case was resampled to (transposed axis order).
    pub spacing_after_resampling: [f64; 3],
    /// Sampled foreground locations in the preprocessed array (empty without a label map).
    pub class_locations: Vec<ClassLocations>,
    /// Geometry of the first input image: what predictions are written back into.
    pub source_geometry: Geometry,
}

/// A preprocessed case: normalized, resampled image and segmentation with its properties.
#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessedCase {
    /// Image `(c, z, y, x)` in standard layout.
    pub data: Array4<f32>,
    /// Segmentation `(1, z, y, x)`, −1 outside the nonzero mask; `None` without a label map.
    pub seg: Option<Array4<i16>>,
    /// Properties.
    pub properties: CaseProperties,
}

/// Reads `case` (every channel, and its label file when it has one) and preprocesses it.
///
/// # Errors
/// [`PreprocessError`] naming the case: unreadable files, a channel count other than the
/// plan's, shapes that differ, labels above 32767, and the failures of
/// [`preprocess_arrays`].
pub fn preprocess_case(
    case: &Case,
    spec: &PreprocessSpec,
) -> Result<PreprocessedCase, PreprocessError> {
    let (data, geometry) = read_channels(case, spec.n_channels())?;
    let seg = match &case.label {
        Some(path) => Some(read_labels(case, path, spatial(data.view()))?),
        None => None,
    };
    preprocess_arrays(&case.id, data, seg, geometry, spec)
}

/// [`preprocess_case`] on arrays in memory: `data` `(c, z, y, x)` and optional `seg`
/// `(1, z, y, x)` in file axis order, described by `geometry` (whose spacing is used).
///
/// # Errors
/// [`PreprocessError::Crop`], [`PreprocessError::Normalize`] or
/// [`PreprocessError::Resample`] naming `case_id`.
pub fn preprocess_arrays(
    case_id: &str,
    data: Array4<f32>,
    seg: Option<Array4<i16>>,
    geometry: Geometry,
    spec: &PreprocessSpec,
) -> Result<PreprocessedCase, PreprocessError> {
    let perm = spec.transpose_forward;
    let spacing = geometry.spacing().0;
    let original_spacing = perm.map(|axis| spacing[axis]);
    let data = transpose_forward(data, perm);
    let has_seg = seg.is_some();
    let seg = seg.map(|seg| transpose_forward(seg, perm));
    let shape_before_cropping = spatial(data.view());
    let (cropped, cropped_seg, bbox) = crop_and_normalize(case_id, data, seg, spec)?;
    let target_spacing = spec.target_spacing_for(original_spacing);
    let seg_to_resample = has_seg.then(|| cropped_seg.view());
    let (data, seg) = resample_case(
        case_id,
        cropped.view(),
        seg_to_resample,
        [original_spacing, target_spacing],
        spec,
    )?;
    let class_locations = match &seg {
        Some(seg) => sample_class_locations(seg.index_axis(Axis(0), 0), &spec.location_classes),
        None => Vec::new(),
    };
    Ok(PreprocessedCase {
        data,
        seg,
        properties: CaseProperties {
            case: case_id.to_string(),
            spacing,
            shape_before_cropping,
            bbox_used_for_cropping: bbox,
            shape_after_cropping_and_before_resampling: bbox.shape(),
            spacing_after_resampling: target_spacing,
            class_locations,
            source_geometry: geometry,
        },
    })
}

/// nnU-Net steps 2 and 4: crop to the nonzero region, then normalize the crop (a copy, as
/// normalization runs in place; the uncropped input is freed on return). Returns the
/// normalized crop, the cropped segmentation (without a label map: 0 inside the mask, −1
/// outside) and the box.
fn crop_and_normalize(
    case_id: &str,
    data: Array4<f32>,
    seg: Option<Array4<i16>>,
    spec: &PreprocessSpec,
) -> Result<(Array4<f32>, Array4<i16>, BoundingBox), PreprocessError> {
    let cropped =
        crop_to_nonzero(data.view(), seg.as_ref().map(|s| s.view())).map_err(|source| {
            PreprocessError::Crop {
                case: case_id.to_string(),
                source,
            }
        })?;
    let mut normalized = cropped.data.to_owned();
    let mask = cropped.seg.index_axis(Axis(0), 0);
    normalize(normalized.view_mut(), Some(mask), &spec.normalization).map_err(|source| {
        PreprocessError::Normalize {
            case: case_id.to_string(),
            source,
        }
    })?;
    Ok((normalized, cropped.seg, cropped.bbox))
}

/// nnU-Net step 5: the image (order-3 rules) and, if given, the segmentation (one-hot rules)
/// from `spacings[0]` to `spacings[1]`.
fn resample_case(
    case_id: &str,
    data: ArrayView4<'_, f32>,
    seg: Option<ArrayView4<'_, i16>>,
    [from, to]: [[f64; 3]; 2],
    spec: &PreprocessSpec,
) -> Result<(Array4<f32>, Option<Array4<i16>>), PreprocessError> {
    let err = |source| PreprocessError::Resample {
        case: case_id.to_string(),
        source,
    };
    // The resampler refuses a spacing that is not positive and finite before using the shape.
    let new_shape = compute_new_shape(spatial(data), from, to);
    let data = resample_data(data, new_shape, from, to, &spec.resample_data).map_err(err)?;
    let seg = match seg {
        Some(seg) => {
            Some(resample_labels(seg, new_shape, from, to, &spec.resample_seg).map_err(err)?)
        }
        None => None,
    };
    Ok((data, seg))
}

/// nnU-Net `data.transpose([0, *[i + 1 for i in transpose_forward]])`, as a standard-layout
/// array (a copy only when the permutation is not the identity).
pub fn transpose_forward<T: Clone>(array: Array4<T>, perm: [usize; 3]) -> Array4<T> {
    if perm == [0, 1, 2] {
        return array;
    }
    let permuted = array.permuted_axes([0, perm[0] + 1, perm[1] + 1, perm[2] + 1]);
    permuted.as_standard_layout().into_owned()
}

fn spatial<T>(array: ArrayView4<'_, T>) -> [usize; 3] {
    let (_, z, y, x) = array.dim();
    [z, y, x]
}

/// The case's channel files stacked as `(c, z, y, x)` in file axis order, and the first
/// channel's geometry: what [`preprocess_arrays`] takes (a cascade keeps them to preprocess the
/// case again with the previous stage's segmentation).
///
/// # Errors
/// [`PreprocessError::Channels`], naming the case and the file at fault.
pub fn read_channels(
    case: &Case,
    n_channels: usize,
) -> Result<(Array4<f32>, Geometry), PreprocessError> {
    read_stacked(&case.images, n_channels, false).map_err(|source| PreprocessError::Channels {
        case: case.id.clone(),
        n_channels,
        source: Box::new(source),
    })
}

/// The label map as `i16` `(1, z, y, x)`.
fn read_labels(
    case: &Case,
    path: &Path,
    shape: [usize; 3],
) -> Result<Array4<i16>, PreprocessError> {
    let labels = read_label_map(path).map_err(|source| PreprocessError::Read {
        case: case.id.clone(),
        source,
    })?;
    check_shape(case, path, shape, labels.data_shape().0)?;
    let max = labels.data.iter().copied().max().unwrap_or(0);
    if max > i16::MAX as u16 {
        return Err(PreprocessError::LabelTooLarge {
            case: case.id.clone(),
            path: path.to_path_buf(),
            value: max,
        });
    }
    Ok(labels.data.mapv(|v| v as i16))
}

fn check_shape(
    case: &Case,
    path: &Path,
    expected: [usize; 3],
    found: [usize; 3],
) -> Result<(), PreprocessError> {
    if expected == found {
        return Ok(());
    }
    Err(PreprocessError::ShapeMismatch {
        case: case.id.clone(),
        path: path.to_path_buf(),
        expected,
        found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HeaderGeometry, Shape3, Spacing};
    use autoseg_planner::{plan, DatasetInfo, Fingerprint, ForegroundIntensityProperties};
    use ndarray::s;

    fn geometry(shape: [usize; 3], spacing: [f64; 3]) -> Geometry {
        Geometry::new(
            Shape3(shape),
            HeaderGeometry::axis_aligned(Spacing(spacing), [0.0; 3]),
        )
    }

    fn spec(target_spacing: Vec<f64>, normalization: Normalization) -> PreprocessSpec {
        PreprocessSpec {
            configuration: "test".into(),
            transpose_forward: [0, 1, 2],
            target_spacing,
            normalization: vec![normalization],
            resample_data: ResampleSettings::nnunet_data(),
            resample_seg: ResampleSettings::nnunet_seg(),
            location_classes: vec![LocationClass::Label(1), LocationClass::Label(2)],
        }
    }

    /// 8 x 10 x 12 volume; nonzero (value `1 + z + y + x`) in the box z 2..6, y 3..8, x 1..11
    /// except the notch y 3..5, x 1..4, which opens to the zero border (not a hole). Label 1 in
    /// z 3..5, y 5..7, x 5..9 (16 voxels), label 2 at one voxel (4, 7, 10).
    fn notched_case() -> (Array4<f32>, Array4<i16>) {
        let in_box = |z: usize, y: usize, x: usize| {
            (2..6).contains(&z) && (3..8).contains(&y) && (1..11).contains(&x)
        };
        let notch = |y: usize, x: usize| y < 5 && x < 4;
        let data = Array4::from_shape_fn((1, 8, 10, 12), |(_, z, y, x)| {
            if in_box(z, y, x) && !notch(y, x) {
                (1 + z + y + x) as f32
            } else {
                0.0
            }
        });
        let mut seg = Array4::<i16>::zeros((1, 8, 10, 12));
        seg.slice_mut(s![0, 3..5, 5..7, 5..9]).fill(1);
        seg[[0, 4, 7, 10]] = 2;
        (data, seg)
    }

    #[test]
    fn crop_properties_and_minus_one_outside_the_mask_without_resampling() {
        let (data, seg) = notched_case();
        let spec = spec(vec![2.0, 1.0, 1.0], Normalization::NoNorm);
        let out = preprocess_arrays(
            "c",
            data,
            Some(seg),
            geometry([8, 10, 12], [2.0, 1.0, 1.0]),
            &spec,
        )
        .unwrap();
        let p = &out.properties;
        assert_eq!(p.shape_before_cropping, [8, 10, 12]);
        assert_eq!(p.bbox_used_for_cropping.start, [2, 3, 1]);
        assert_eq!(p.bbox_used_for_cropping.end, [6, 8, 11]);
        assert_eq!(p.shape_after_cropping_and_before_resampling, [4, 5, 10]);
        assert_eq!(p.spacing, [2.0, 1.0, 1.0]);
        assert_eq!(p.spacing_after_resampling, [2.0, 1.0, 1.0]);
        assert_eq!(out.data.dim(), (1, 4, 5, 10));
        let seg = out.seg.unwrap();
        // The notch (cropped coordinates y 0..2, x 0..3) is outside the mask: -1; the rest of
        // the background stays 0; labels keep their values.
        for ((_, z, y, x), &v) in seg.indexed_iter() {
            let (gz, gy, gx) = (z + 2, y + 3, x + 1);
            let expected = if gy < 5 && gx < 4 {
                -1
            } else if (3..5).contains(&gz) && (5..7).contains(&gy) && (5..9).contains(&gx) {
                1
            } else if [gz, gy, gx] == [4, 7, 10] {
                2
            } else {
                0
            };
            assert_eq!(v, expected, "seg at cropped ({z}, {y}, {x})");
        }
        assert_eq!(out.data[[0, 0, 0, 3]], (1 + 2 + 3 + 4) as f32);
        // Class locations: every voxel (fewer than 10000), in the cropped grid.
        assert_eq!(p.class_locations[0].voxels.len(), 16);
        assert_eq!(p.class_locations[1].voxels, vec![[2, 4, 9]]);
    }

    #[test]
    fn resampling_shape_and_masked_z_score() {
        let (data, seg) = notched_case();
        let spec = spec(
            vec![1.0, 1.0, 2.0],
            Normalization::ZScore { use_mask: true },
        );
        let out = preprocess_arrays(
            "c",
            data,
            Some(seg),
            geometry([8, 10, 12], [2.0, 1.0, 1.0]),
            &spec,
        )
        .unwrap();
        // Cropped (4, 5, 10) at (2, 1, 1) mm -> (1, 1, 2) mm: round(8), 5, round(5).
        assert_eq!(out.data.dim(), (1, 8, 5, 5));
        let seg = out.seg.unwrap();
        assert_eq!(seg.dim(), (1, 8, 5, 5));
        assert!(seg.iter().any(|&v| v == -1));
        assert!(seg.iter().any(|&v| v == 1));
        // Outside the mask the image is untouched (0), before and after resampling.
        let mut inside = Vec::new();
        for (&v, &s) in out.data.iter().zip(seg.iter()) {
            if s >= 0 {
                inside.push(f64::from(v));
            }
        }
        let n = inside.len() as f64;
        let mean = inside.iter().sum::<f64>() / n;
        let std = (inside.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        // Resampling smooths a little, so the moments are close to (0, 1), not exact.
        assert!(mean.abs() < 0.1, "mean {mean}");
        assert!((std - 1.0).abs() < 0.1, "std {std}");
    }

    #[test]
    fn masked_z_score_is_exact_before_resampling() {
        let (data, seg) = notched_case();
        let spec = spec(
            vec![2.0, 1.0, 1.0],
            Normalization::ZScore { use_mask: true },
        );
        let out = preprocess_arrays(
            "c",
            data,
            Some(seg),
            geometry([8, 10, 12], [2.0, 1.0, 1.0]),
            &spec,
        )
        .unwrap();
        let seg = out.seg.unwrap();
        let (mut sum, mut sq, mut n) = (0.0, 0.0, 0.0);
        for (&v, &s) in out.data.iter().zip(seg.iter()) {
            if s >= 0 {
                sum += f64::from(v);
                sq += f64::from(v).powi(2);
                n += 1.0;
            } else {
                assert_eq!(v, 0.0);
            }
        }
        let mean = sum / n;
        assert!(mean.abs() < 1e-5, "mean {mean}");
        assert!((sq / n - mean * mean).sqrt() - 1.0 < 1e-5);
    }

    #[test]
    fn two_d_configuration_keeps_axis_zero() {
        let (data, seg) = notched_case();
        let spec = spec(vec![0.5, 0.5], Normalization::NoNorm);
        let out = preprocess_arrays(
            "c",
            data,
            Some(seg),
            geometry([8, 10, 12], [2.5, 1.0, 1.0]),
            &spec,
        )
        .unwrap();
        assert_eq!(out.properties.spacing_after_resampling, [2.5, 0.5, 0.5]);
        // Cropped (4, 5, 10): axis 0 unchanged, in-plane doubled.
        assert_eq!(out.data.dim(), (1, 4, 10, 20));
    }

    #[test]
    fn without_label_no_segmentation_is_returned() {
        let (data, _) = notched_case();
        let spec = spec(
            vec![2.0, 1.0, 1.0],
            Normalization::ZScore { use_mask: true },
        );
        let out = preprocess_arrays(
            "c",
            data,
            None,
            geometry([8, 10, 12], [2.0, 1.0, 1.0]),
            &spec,
        )
        .unwrap();
        assert!(out.seg.is_none());
        assert!(out.properties.class_locations.is_empty());
        // The crop's mask stood in for the segmentation: the notch is still 0.
        assert_eq!(out.data[[0, 0, 0, 0]], 0.0);
        assert_ne!(out.data[[0, 0, 4, 4]], 0.0);
    }

    #[test]
    fn transpose_round_trip_and_properties() {
        let data = Array4::from_shape_fn((2, 3, 4, 5), |(c, z, y, x)| {
            (c * 1000 + z * 100 + y * 10 + x) as f32
        });
        let perm = [2, 0, 1];
        let t = transpose_forward(data.clone(), perm);
        assert_eq!(t.dim(), (2, 5, 3, 4));
        assert!(t.is_standard_layout());
        assert_eq!(t[[1, 4, 2, 3]], data[[1, 2, 3, 4]]);
        // transpose_backward = argsort(transpose_forward) = [1, 2, 0].
        let back = transpose_forward(t, [1, 2, 0]);
        assert_eq!(back, data);

        let (img, seg) = notched_case();
        let mut spec = spec(vec![1.0, 2.0, 1.0], Normalization::NoNorm);
        spec.transpose_forward = perm;
        let out = preprocess_arrays(
            "c",
            img,
            Some(seg),
            geometry([8, 10, 12], [2.0, 1.0, 1.0]),
            &spec,
        )
        .unwrap();
        let p = &out.properties;
        assert_eq!(
            p.spacing,
            [2.0, 1.0, 1.0],
            "nnU-Net keeps the file's spacing"
        );
        assert_eq!(p.shape_before_cropping, [12, 8, 10]);
        assert_eq!(p.bbox_used_for_cropping.start, [1, 2, 3]);
        assert_eq!(p.shape_after_cropping_and_before_resampling, [10, 4, 5]);
        assert_eq!(out.data.dim(), (1, 10, 4, 5));
    }

    fn planned() -> (Plans, Labels) {
        let stats = ForegroundIntensityProperties {
            mean: 100.0,
            median: 98.0,
            std: 20.0,
            min: 0.0,
            max: 400.0,
            percentile_00_5: 10.0,
            percentile_99_5: 300.0,
        };
        let fp = Fingerprint::new(
            vec![[3.0, 1.0, 1.0]; 20],
            vec![[40, 160, 160]; 20],
            1.0,
            vec![stats],
        )
        .unwrap();
        let json = crate::parse_dataset_json(
            br#"{"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumour": 2, "ignore": 3},
                 "numTraining": 20, "file_ending": ".nii.gz"}"#,
            Path::new("dataset.json"),
        )
        .unwrap();
        let info: DatasetInfo = json.dataset_info("Dataset001_Test").unwrap();
        let plans = plan(
            &fp,
            &info,
            &autoseg_planner::PlannerSettings::nnunet_default(),
        )
        .unwrap();
        (plans, json.labels)
    }

    #[test]
    fn spec_from_plans_uses_dataset_ct_statistics_and_ignore_class() {
        let (plans, labels) = planned();
        let config = plans.resolve("3d_fullres").unwrap();
        let spec = PreprocessSpec::new(&plans, &config, &labels).unwrap();
        assert_eq!(spec.target_spacing, vec![3.0, 1.0, 1.0]);
        assert_eq!(
            spec.normalization,
            vec![Normalization::Ct(CtIntensities {
                mean: 100.0,
                std: 20.0,
                percentile_00_5: 10.0,
                percentile_99_5: 300.0
            })]
        );
        assert_eq!(
            spec.location_classes,
            vec![
                LocationClass::Label(1),
                LocationClass::Label(2),
                LocationClass::Region(vec![-1, 0, 1, 2])
            ]
        );
        let two_d = PreprocessSpec::new(&plans, &plans.resolve("2d").unwrap(), &labels).unwrap();
        assert_eq!(two_d.target_spacing, vec![1.0, 1.0]);
        assert_eq!(two_d.target_spacing_for([3.0, 1.0, 1.0]), [3.0, 1.0, 1.0]);
    }

    #[test]
    fn invalid_plans_are_refused_with_the_configuration_named() {
        let (mut plans, labels) = planned();
        plans.transpose_forward = [0, 0, 1];
        let config = plans.resolve("3d_fullres").unwrap();
        let err = PreprocessSpec::new(&plans, &config, &labels).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration 3d_fullres: transpose_forward [0, 0, 1] is not a permutation of [0, 1, 2]"
        );
    }
}
