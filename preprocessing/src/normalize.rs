//! Per-channel intensity normalization, in place, as nnU-Net applies it to the cropped image
//! before resampling.
//!
//! nnU-Net: `preprocessing/normalization/default_normalization_schemes.py`
//! (`reference/nnunet.md` §3.7). Arithmetic is `f32` like numpy's on float32 images; the
//! statistics of the z-score scheme are accumulated in `f64` (numpy uses pairwise `f32` sums,
//! so results may differ in the last bit or two).

use ndarray::{ArrayView3, ArrayViewMut3, ArrayViewMut4, Axis, Zip};
use thiserror::Error;

/// nnU-Net's `eps` for float32 targets.
const EPS: f32 = 1e-8;

/// Why a channel cannot be normalized.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum NormalizeError {
    /// Z-score with `use_mask_for_norm` needs the label map whose `>= 0` voxels form the mask.
    #[error("channel {channel}: z-score normalization with use_mask_for_norm needs the cropped segmentation (mask = seg >= 0)")]
    MissingMask {
        /// Channel index.
        channel: usize,
    },
    /// The mask's shape differs from the image's.
    #[error("segmentation shape {seg:?} does not match image shape {image:?} (z, y, x)")]
    ShapeMismatch {
        /// Image shape `(z, y, x)`.
        image: [usize; 3],
        /// Segmentation shape `(z, y, x)`.
        seg: [usize; 3],
    },
    /// An RGB channel holds values outside `0..=255`.
    #[error("channel {channel}: RGBTo01Normalization expects values in 0..=255, found range [{min}, {max}]")]
    NotRgb {
        /// Channel index.
        channel: usize,
        /// Smallest value found.
        min: f32,
        /// Largest value found.
        max: f32,
    },
    /// The number of schemes differs from the number of channels.
    #[error("{n_schemes} normalization schemes for {n_channels} channels")]
    ChannelCount {
        /// Schemes given.
        n_schemes: usize,
        /// Channels in the image.
        n_channels: usize,
    },
}

/// The dataset-wide foreground statistics CT normalization uses (the fingerprint's
/// `foreground_intensity_properties` of the channel).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CtIntensities {
    /// Foreground mean.
    pub mean: f64,
    /// Foreground standard deviation (population).
    pub std: f64,
    /// 0.5th percentile: lower clipping bound.
    pub percentile_00_5: f64,
    /// 99.5th percentile: upper clipping bound.
    pub percentile_99_5: f64,
}

/// One channel's normalization, with what it needs to run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Normalization {
    /// `CTNormalization`: clip to the dataset's percentiles, then `(x - mean) / max(std, 1e-8)`
    /// with the dataset's statistics.
    Ct(CtIntensities),
    /// `ZScoreNormalization`: `(x - mean) / max(std, 1e-8)` with this image's statistics,
    /// over the voxels where `seg >= 0` when `use_mask` (others untouched), else over all.
    ZScore {
        /// nnU-Net's `use_mask_for_norm` for this channel.
        use_mask: bool,
    },
    /// `NoNormalization`: unchanged.
    NoNorm,
    /// `RescaleTo01Normalization`: `(x - min) / max(max - min, 1e-8)`.
    RescaleTo01,
    /// `RGBTo01Normalization`: `x / 255`, values must lie in `0..=255`.
    RgbTo01,
}

/// Normalize every channel of `data` `(c, z, y, x)` in place with its scheme; `seg` is the
/// cropped label map `(z, y, x)` (−1 outside the nonzero mask), needed by masked z-score.
/// nnU-Net: `DefaultPreprocessor._normalize`.
///
/// # Errors
/// [`NormalizeError::ChannelCount`] when `schemes` does not have one entry per channel, and
/// the errors of [`normalize_channel`].
pub fn normalize(
    mut data: ArrayViewMut4<'_, f32>,
    seg: Option<ArrayView3<'_, i16>>,
    schemes: &[Normalization],
) -> Result<(), NormalizeError> {
    let n_channels = data.len_of(Axis(0));
    if schemes.len() != n_channels {
        return Err(NormalizeError::ChannelCount {
            n_schemes: schemes.len(),
            n_channels,
        });
    }
    for (channel, (image, scheme)) in data.outer_iter_mut().zip(schemes).enumerate() {
        normalize_channel(image, seg, scheme).map_err(|err| with_channel(err, channel))?;
    }
    Ok(())
}

/// Normalize one channel `(z, y, x)` in place.
///
/// # Errors
/// [`NormalizeError::MissingMask`] for masked z-score without `seg`,
/// [`NormalizeError::ShapeMismatch`] when `seg`'s shape differs, [`NormalizeError::NotRgb`]
/// for RGB values outside `0..=255` (channel 0 in these errors; [`normalize`] fills in the
/// real one).
pub fn normalize_channel(
    image: ArrayViewMut3<'_, f32>,
    seg: Option<ArrayView3<'_, i16>>,
    scheme: &Normalization,
) -> Result<(), NormalizeError> {
    match scheme {
        Normalization::Ct(stats) => ct(image, stats),
        Normalization::ZScore { use_mask: true } => {
            let seg = seg.ok_or(NormalizeError::MissingMask { channel: 0 })?;
            z_score_masked(image, seg)?;
        }
        Normalization::ZScore { use_mask: false } => z_score(image),
        Normalization::NoNorm => {}
        Normalization::RescaleTo01 => rescale_to_01(image),
        Normalization::RgbTo01 => rgb_to_01(image)?,
    }
    Ok(())
}

fn with_channel(err: NormalizeError, channel: usize) -> NormalizeError {
    match err {
        NormalizeError::MissingMask { .. } => NormalizeError::MissingMask { channel },
        NormalizeError::NotRgb { min, max, .. } => NormalizeError::NotRgb { channel, min, max },
        other => other,
    }
}

fn ct(mut image: ArrayViewMut3<'_, f32>, stats: &CtIntensities) {
    let (lo, hi) = (stats.percentile_00_5 as f32, stats.percentile_99_5 as f32);
    let mean = stats.mean as f32;
    let std = (stats.std as f32).max(EPS);
    image.mapv_inplace(|v| (v.clamp(lo, hi) - mean) / std);
}

fn z_score(mut image: ArrayViewMut3<'_, f32>) {
    let Some((mean, std)) = mean_std(image.iter().copied()) else {
        return;
    };
    image.mapv_inplace(|v| (v - mean) / std.max(EPS));
}

fn z_score_masked(
    mut image: ArrayViewMut3<'_, f32>,
    seg: ArrayView3<'_, i16>,
) -> Result<(), NormalizeError> {
    if image.shape() != seg.shape() {
        let dims = |s: &[usize]| [s[0], s[1], s[2]];
        return Err(NormalizeError::ShapeMismatch {
            image: dims(image.shape()),
            seg: dims(seg.shape()),
        });
    }
    let inside = image.iter().zip(seg.iter()).filter(|(_, s)| **s >= 0);
    let Some((mean, std)) = mean_std(inside.map(|(v, _)| *v)) else {
        return Ok(());
    };
    Zip::from(&mut image).and(&seg).for_each(|v, &s| {
        if s >= 0 {
            *v = (*v - mean) / std.max(EPS);
        }
    });
    Ok(())
}

/// Mean and population standard deviation (two passes, `f64`), rounded to `f32`; `None` for
/// no values.
fn mean_std(values: impl Iterator<Item = f32> + Clone) -> Option<(f32, f32)> {
    let (n, sum) = values
        .clone()
        .fold((0usize, 0.0f64), |(n, s), v| (n + 1, s + f64::from(v)));
    if n == 0 {
        return None;
    }
    let mean = sum / n as f64;
    let var = values.map(|v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n as f64;
    Some((mean as f32, var.sqrt() as f32))
}

fn rescale_to_01(mut image: ArrayViewMut3<'_, f32>) {
    let min = image.iter().copied().fold(f32::INFINITY, f32::min);
    image.mapv_inplace(|v| v - min);
    let max = image.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let denominator = max.max(EPS);
    image.mapv_inplace(|v| v / denominator);
}

fn rgb_to_01(mut image: ArrayViewMut3<'_, f32>) -> Result<(), NormalizeError> {
    let (min, max) = image
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if min < 0.0 || max > 255.0 {
        return Err(NormalizeError::NotRgb {
            channel: 0,
            min,
            max,
        });
    }
    image.mapv_inplace(|v| v / 255.0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, Array4};

    fn volume(values: &[f32]) -> Array3<f32> {
        Array3::from_shape_vec((1, 1, values.len()), values.to_vec()).expect("1x1xn")
    }

    fn run(
        values: &[f32],
        seg: Option<&[i16]>,
        scheme: Normalization,
    ) -> Result<Vec<f32>, NormalizeError> {
        let mut image = volume(values);
        let seg = seg.map(|s| Array3::from_shape_vec((1, 1, s.len()), s.to_vec()).expect("1x1xn"));
        normalize_channel(image.view_mut(), seg.as_ref().map(|s| s.view()), &scheme)?;
        Ok(image.iter().copied().collect())
    }

    fn assert_close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn z_score_uses_population_std() {
        // mean 2.5, population std sqrt(1.25).
        let got = run(
            &[1.0, 2.0, 3.0, 4.0],
            None,
            Normalization::ZScore { use_mask: false },
        )
        .unwrap();
        let s = 1.25f32.sqrt();
        assert_close(&got, &[-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s]);
    }

    #[test]
    fn masked_z_score_leaves_outside_untouched() {
        // Inside (seg >= 0): 2, 4, 6 -> mean 4, std sqrt(8/3).
        let got = run(
            &[0.0, 2.0, 4.0, 6.0, 0.0],
            Some(&[-1, 0, 1, 0, -1]),
            Normalization::ZScore { use_mask: true },
        )
        .unwrap();
        let s = (8.0f32 / 3.0).sqrt();
        assert_close(&got, &[0.0, -2.0 / s, 0.0, 2.0 / s, 0.0]);
    }

    #[test]
    fn masked_z_score_without_seg_is_an_error() {
        let err = run(&[1.0], None, Normalization::ZScore { use_mask: true }).unwrap_err();
        assert_eq!(err, NormalizeError::MissingMask { channel: 0 });
    }

    #[test]
    fn constant_image_divides_by_eps() {
        let got = run(&[3.0, 3.0], None, Normalization::ZScore { use_mask: false }).unwrap();
        assert_eq!(got, [0.0, 0.0]);
    }

    #[test]
    fn ct_clips_then_uses_dataset_statistics() {
        let stats = CtIntensities {
            mean: 100.0,
            std: 50.0,
            percentile_00_5: -200.0,
            percentile_99_5: 400.0,
        };
        let got = run(
            &[-1000.0, 100.0, 150.0, 3000.0],
            None,
            Normalization::Ct(stats),
        )
        .unwrap();
        assert_close(&got, &[-6.0, 0.0, 1.0, 6.0]);
    }

    #[test]
    fn rescale_maps_range_to_unit_interval() {
        let got = run(&[-2.0, 0.0, 6.0], None, Normalization::RescaleTo01).unwrap();
        assert_close(&got, &[0.0, 0.25, 1.0]);
    }

    #[test]
    fn rgb_divides_by_255_and_rejects_out_of_range() {
        let got = run(&[0.0, 51.0, 255.0], None, Normalization::RgbTo01).unwrap();
        assert_close(&got, &[0.0, 0.2, 1.0]);
        let err = run(&[0.0, 256.0], None, Normalization::RgbTo01).unwrap_err();
        assert_eq!(
            err,
            NormalizeError::NotRgb {
                channel: 0,
                min: 0.0,
                max: 256.0
            }
        );
    }

    #[test]
    fn normalize_applies_schemes_per_channel_and_names_the_channel() {
        let mut data = Array4::<f32>::zeros((2, 1, 1, 2));
        data[[0, 0, 0, 1]] = 10.0;
        data[[1, 0, 0, 1]] = 300.0;
        let schemes = [Normalization::RescaleTo01, Normalization::RgbTo01];
        let err = normalize(data.view_mut(), None, &schemes).unwrap_err();
        assert_eq!(
            err,
            NormalizeError::NotRgb {
                channel: 1,
                min: 0.0,
                max: 300.0
            }
        );
        assert_eq!(data[[0, 0, 0, 1]], 1.0);
        let err = normalize(data.view_mut(), None, &schemes[..1]).unwrap_err();
        assert_eq!(
            err,
            NormalizeError::ChannelCount {
                n_schemes: 1,
                n_channels: 2
            }
        );
    }
}
