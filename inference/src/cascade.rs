//! The two pieces of the cascade that live between stages: the previous stage's segmentation
//! as extra one-hot input channels, and the `3d_lowres` logits turned into the segmentation the
//! next stage trains on.
//!
//! nnU-Net: `convert_labelmap_to_one_hot` appended to the image in `preprocessing_iterator_fromfiles`
//! and `perform_actual_validation`; `resample_and_save` for `predicted_next_stage` (which
//! resamples with the lowres spacing as both the current and the target spacing, reproduced
//! here).

use autoseg_evaluation::SegmentationRule;
use autoseg_preprocessing::resample::{resample_data, ResampleSettings};
use ndarray::{s, Array3, Array4, ArrayView3, Axis};
use tch::Tensor;

use crate::{array4_to_tensor, label_map_to_array, segmentation, tensor_to_array4, InferenceError};

/// `data` `(c, z, y, x)` with one 0/1 channel per label of `labels` appended (in that order),
/// 1 where `seg` equals the label. Values of `seg` outside `labels` (background, -1) give zeros.
/// Used by the predictor and by the trainer's augmentation pipeline (nnU-Net's
/// `MoveSegAsOneHotToDataTransform`).
///
/// `seg` must have `data`'s spatial shape (an internal invariant: both come from the same
/// preprocessing or crop, or from files checked against it).
pub fn append_one_hot<T, L>(data: Array4<f32>, seg: ArrayView3<'_, T>, labels: &[L]) -> Array4<f32>
where
    T: Copy + Into<i32>,
    L: Copy + Into<i32>,
{
    let (c, z, y, x) = data.dim();
    assert_eq!(
        seg.dim(),
        (z, y, x),
        "the previous-stage segmentation has the image's shape"
    );
    let mut out = Array4::<f32>::zeros((c + labels.len(), z, y, x));
    out.slice_mut(s![..c, .., .., ..]).assign(&data);
    drop(data);
    for (k, &label) in labels.iter().enumerate() {
        let label: i32 = label.into();
        let mut channel = out.index_axis_mut(Axis(0), c + k);
        ndarray::Zip::from(&mut channel)
            .and(&seg)
            .for_each(|o, &v| {
                if v.into() == label {
                    *o = 1.0;
                }
            });
    }
    out
}

/// The segmentation the next stage trains on: `logits` `[k, z, y, x]` of a `3d_lowres` case
/// resampled (order and separate-z rule of `resampling`, with `spacing` as both the current and
/// the target spacing, as nnU-Net's `resample_and_save`) to `target_shape`, then argmax or
/// regions.
///
/// # Errors
/// [`InferenceError::Resample`]; [`InferenceError::Torch`] and the conversions' errors.
pub fn next_stage_segmentation(
    logits: &Tensor,
    target_shape: [usize; 3],
    spacing: [f64; 3],
    resampling: &ResampleSettings,
    rule: &SegmentationRule,
) -> Result<Array3<u16>, InferenceError> {
    let logits = tensor_to_array4(logits)?;
    let resampled = if logits.shape()[1..] == target_shape[..] {
        logits
    } else {
        resample_data(logits.view(), target_shape, spacing, spacing, resampling)?
    };
    let labels = segmentation(&array4_to_tensor(resampled.view())?, rule)?;
    label_map_to_array(&labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoseg_preprocessing::resample::ResampleSettings;

    #[test]
    fn one_hot_channels_follow_the_image() {
        let data = Array4::from_shape_fn((1, 2, 2, 2), |(_, z, y, x)| (z * 4 + y * 2 + x) as f32);
        let seg = Array3::from_shape_vec((2, 2, 2), vec![0i16, 1, 2, -1, 2, 2, 0, 1]).unwrap();
        let out = append_one_hot(data.clone(), seg.view(), &[1, 2]);
        assert_eq!(out.dim(), (3, 2, 2, 2));
        assert_eq!(out.slice(s![0..1, .., .., ..]), data);
        let ones: Vec<f32> = out.index_axis(Axis(0), 1).iter().copied().collect();
        assert_eq!(ones, vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        let twos: Vec<f32> = out.index_axis(Axis(0), 2).iter().copied().collect();
        assert_eq!(twos, vec![0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn next_stage_segmentation_upsamples_then_takes_the_argmax() {
        // Class 1 wins on the left half of x, class 0 on the right; upsampling 2 -> 4 along x
        // with linear interpolation keeps the boundary in the middle.
        let logits =
            Array4::from_shape_fn(
                (2, 1, 1, 2),
                |(k, _, _, x)| {
                    if (k == 1) == (x == 0) {
                        5.0
                    } else {
                        -5.0
                    }
                },
            );
        let tensor = array4_to_tensor(logits.view()).unwrap();
        let settings = ResampleSettings::nnunet_probabilities();
        let labels = next_stage_segmentation(
            &tensor,
            [1, 1, 4],
            [1.0, 1.0, 1.0],
            &settings,
            &SegmentationRule::Argmax,
        )
        .unwrap();
        assert_eq!(labels.iter().copied().collect::<Vec<_>>(), vec![1, 1, 0, 0]);
    }
}
