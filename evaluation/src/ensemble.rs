//! Ensembling configurations: average probability maps, then turn probabilities (or logits)
//! into a label map.
//!
//! nnU-Net: `ensembling/ensemble.py::average_probabilities` (float32 sum in input order, then
//! one division) and `LabelManager.convert_probabilities_to_segmentation` (argmax, first index
//! on ties; or, for regions, `seg[p_i > 0.5] = regions_class_order[i]` in order, later regions
//! overwriting earlier ones).

use ndarray::{Array3, Array4, ArrayView4, Axis, Zip};

use crate::EvaluationError;

/// How class maps become a label map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentationRule {
    /// One channel per label (background first): the label is the argmax channel.
    Argmax,
    /// One channel per region: in order, voxels whose channel exceeds 0.5 get that region's
    /// output label (nnU-Net's `regions_class_order`).
    Regions {
        /// The output label of each channel.
        regions_class_order: Vec<u16>,
    },
}

fn shape4(a: &ArrayView4<'_, f32>) -> [usize; 4] {
    let (c, z, y, x) = a.dim();
    [c, z, y, x]
}

/// The voxel-wise mean of several probability maps, in float32.
///
/// # Shapes
/// every member `(c, z, y, x)`, equal; returns the same shape.
///
/// # Errors
/// [`EvaluationError::EmptyEnsemble`], [`EvaluationError::EnsembleShapeMismatch`].
pub fn average_probabilities(
    members: &[ArrayView4<'_, f32>],
) -> Result<Array4<f32>, EvaluationError> {
    let first = members.first().ok_or(EvaluationError::EmptyEnsemble)?;
    for (index, member) in members.iter().enumerate().skip(1) {
        if member.dim() != first.dim() {
            return Err(EvaluationError::EnsembleShapeMismatch {
                index,
                expected: shape4(first),
                found: shape4(member),
            });
        }
    }
    let mut sum = first.to_owned();
    for member in &members[1..] {
        Zip::from(&mut sum)
            .and(member)
            .par_for_each(|s, &m| *s += m);
    }
    let n = members.len() as f32;
    sum.par_mapv_inplace(|s| s / n);
    Ok(sum)
}

/// The label map of a probability map (nnU-Net: `convert_probabilities_to_segmentation`).
///
/// # Shapes
/// `probabilities`: `(c, z, y, x)`; returns `(z, y, x)`.
///
/// # Errors
/// [`EvaluationError::ChannelCount`] when regions and channels differ in number,
/// [`EvaluationError::TooManyChannels`] for an argmax over more than 65536 channels.
pub fn probabilities_to_segmentation(
    probabilities: ArrayView4<'_, f32>,
    rule: &SegmentationRule,
) -> Result<Array3<u16>, EvaluationError> {
    let n_channels = probabilities.len_of(Axis(0));
    match rule {
        SegmentationRule::Argmax => {
            if n_channels > usize::from(u16::MAX) + 1 {
                return Err(EvaluationError::TooManyChannels { found: n_channels });
            }
            Ok(
                Zip::from(probabilities.lanes(Axis(0))).par_map_collect(|lane| {
                    let mut best = 0;
                    for (c, &p) in lane.iter().enumerate() {
                        // np.argmax: first maximum; a NaN counts as the maximum.
                        if p > lane[best] || (p.is_nan() && !lane[best].is_nan()) {
                            best = c;
                        }
                    }
                    best as u16
                }),
            )
        }
        SegmentationRule::Regions {
            regions_class_order,
        } => {
            if n_channels != regions_class_order.len() {
                return Err(EvaluationError::ChannelCount {
                    expected: regions_class_order.len(),
                    found: n_channels,
                });
            }
            Ok(
                Zip::from(probabilities.lanes(Axis(0))).par_map_collect(|lane| {
                    lane.iter()
                        .zip(regions_class_order)
                        .fold(
                            0,
                            |label, (&p, &region_label)| if p > 0.5 { region_label } else { label },
                        )
                }),
            )
        }
    }
}

/// The label map of a logit map (nnU-Net: `convert_logits_to_segmentation`): argmax directly,
/// or for regions a float32 sigmoid first.
///
/// # Shapes
/// `logits`: `(c, z, y, x)`; returns `(z, y, x)`.
///
/// # Errors
/// As [`probabilities_to_segmentation`].
pub fn logits_to_segmentation(
    logits: ArrayView4<'_, f32>,
    rule: &SegmentationRule,
) -> Result<Array3<u16>, EvaluationError> {
    match rule {
        SegmentationRule::Argmax => probabilities_to_segmentation(logits, rule),
        SegmentationRule::Regions { .. } => {
            let mut probabilities = logits.to_owned();
            probabilities.par_mapv_inplace(|x| 1.0 / (1.0 + (-x).exp()));
            probabilities_to_segmentation(probabilities.view(), rule)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    fn map(values: &[f32]) -> Array4<f32> {
        Array4::from_shape_vec((values.len(), 1, 1, 1), values.to_vec()).unwrap()
    }

    #[test]
    fn average_is_the_float32_mean() {
        let a = map(&[0.2, 0.8]);
        let b = map(&[0.6, 0.4]);
        let mean = average_probabilities(&[a.view(), b.view()]).unwrap();
        assert_eq!(
            mean.as_slice().unwrap(),
            &[(0.2f32 + 0.6) / 2.0, (0.8f32 + 0.4) / 2.0]
        );
        let c = map(&[0.1, 0.2, 0.7]);
        assert!(matches!(
            average_probabilities(&[a.view(), c.view()]),
            Err(EvaluationError::EnsembleShapeMismatch { index: 1, .. })
        ));
        assert!(matches!(
            average_probabilities(&[]),
            Err(EvaluationError::EmptyEnsemble)
        ));
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        let tie = map(&[0.1, 0.45, 0.45]);
        let seg = probabilities_to_segmentation(tie.view(), &SegmentationRule::Argmax).unwrap();
        assert_eq!(seg[[0, 0, 0]], 1);
    }

    #[test]
    fn regions_overwrite_in_class_order() {
        let rule = SegmentationRule::Regions {
            regions_class_order: vec![1, 2, 3],
        };
        let p = map(&[0.9, 0.7, 0.5]);
        // Channel 2 is not > 0.5, so the last region above threshold (label 2) wins.
        assert_eq!(
            probabilities_to_segmentation(p.view(), &rule).unwrap()[[0, 0, 0]],
            2
        );
        let logits = map(&[2.0, -1.0, 0.0]);
        // sigmoid(0) = 0.5 is not above the threshold either.
        assert_eq!(
            logits_to_segmentation(logits.view(), &rule).unwrap()[[0, 0, 0]],
            1
        );
        let wrong = map(&[0.9, 0.7]);
        assert!(matches!(
            probabilities_to_segmentation(wrong.view(), &rule),
            Err(EvaluationError::ChannelCount {
                expected: 3,
                found: 2
            })
        ));
    }
}
