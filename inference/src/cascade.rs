//! The cascade's step between stages: the `3d_lowres` logits turned into the segmentation the
//! next stage trains on (the previous stage's segmentation as extra one-hot input channels is
//! `autoseg_preprocessing::cache::append_one_hot`, beside the file format it reads).
//!
//! nnU-Net: `resample_and_save` for `predicted_next_stage` (which resamples with the lowres
//! spacing as both the current and the target spacing, reproduced here).

use autoseg_evaluation::SegmentationRule;
use autoseg_preprocessing::resample::{resample_data, ResampleSettings};
use ndarray::Array3;
use tch::Tensor;

use crate::{array4_to_tensor, label_map_to_array, segmentation, tensor_to_array4, InferenceError};

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
    use ndarray::Array4;

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
