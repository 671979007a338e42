//! What the sliding window runs: anything that turns a batch of tiles into logits, and the
//! mirroring test-time augmentation around it.
//!
//! nnU-Net: `predict_from_raw_data.py::_internal_maybe_mirror_and_predict`.

use autoseg_network::UNet;
use tch::{TchError, Tensor};

use crate::InferenceError;

/// A model that predicts logits for a batch of tiles.
///
/// Implemented for the [`UNet`] (its top head) and for closures
/// `Fn(&Tensor) -> Result<Tensor, TchError>`, which tests use as known-answer models.
pub trait Segmenter {
    /// Logits of a batch of tiles.
    ///
    /// # Shapes
    /// `batch`: `[b, c_in, *patch]`; returns `[b, n_classes, *patch]`.
    ///
    /// # Errors
    /// Whatever the model reports, as an [`InferenceError`].
    fn logits(&self, batch: &Tensor) -> Result<Tensor, InferenceError>;
}

impl Segmenter for UNet {
    fn logits(&self, batch: &Tensor) -> Result<Tensor, InferenceError> {
        Ok(self.forward(batch)?)
    }
}

impl<F> Segmenter for F
where
    F: Fn(&Tensor) -> Result<Tensor, TchError>,
{
    fn logits(&self, batch: &Tensor) -> Result<Tensor, InferenceError> {
        Ok(self(batch)?)
    }
}

/// Every non-empty subset of `axes`, smallest first, each in the order of `axes` (Python's
/// `itertools.combinations` for sizes 1, 2, ...).
pub(crate) fn mirror_combinations(axes: &[usize]) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    for size in 1..=axes.len() {
        push_combinations(axes, size, &mut Vec::new(), &mut out);
    }
    out
}

/// Appends to `out` every `size`-subset of `axes` that extends `prefix`, lexicographically.
fn push_combinations(
    axes: &[usize],
    size: usize,
    prefix: &mut Vec<usize>,
    out: &mut Vec<Vec<usize>>,
) {
    if prefix.len() == size {
        out.push(prefix.clone());
        return;
    }
    for (i, &axis) in axes.iter().enumerate() {
        prefix.push(axis);
        push_combinations(&axes[i + 1..], size, prefix, out);
        prefix.pop();
    }
}

/// Logits of a batch, averaged over the plain pass and one mirrored pass per non-empty subset
/// of `mirror_axes` (patch axes: 0 is the first spatial axis); `None` runs the plain pass only.
///
/// The mirrored passes are `flip(model(flip(x, axes)), axes)`, added in `itertools` order to the
/// plain pass, and the sum divided by the number of passes (8 for three axes, 4 for two), in the
/// model's output dtype, as nnU-Net does.
///
/// # Shapes
/// `batch`: `[b, c_in, *patch]`; returns `[b, n_classes, *patch]`.
///
/// # Errors
/// The model's errors; [`InferenceError::Torch`] when libtorch fails.
pub fn predict_with_mirroring(
    model: &dyn Segmenter,
    batch: &Tensor,
    mirror_axes: Option<&[usize]>,
) -> Result<Tensor, InferenceError> {
    let prediction = model.logits(batch)?;
    let Some(axes) = mirror_axes.filter(|a| !a.is_empty()) else {
        return Ok(prediction);
    };
    let combinations = mirror_combinations(axes);
    let mut prediction = prediction;
    for combination in &combinations {
        let dims: Vec<i64> = combination.iter().map(|&a| a as i64 + 2).collect();
        let flipped = model.logits(&batch.f_flip(dims.as_slice())?)?;
        // Out of place: a model may return a view of its input (the identity does).
        prediction = prediction.f_add(&flipped.f_flip(dims.as_slice())?)?;
    }
    Ok(prediction.f_div_scalar((combinations.len() + 1) as f64)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn combinations_follow_itertools_order() {
        assert_eq!(
            mirror_combinations(&[0, 1, 2]),
            vec![
                vec![0],
                vec![1],
                vec![2],
                vec![0, 1],
                vec![0, 2],
                vec![1, 2],
                vec![0, 1, 2]
            ]
        );
        assert_eq!(
            mirror_combinations(&[1, 0]),
            vec![vec![1], vec![0], vec![1, 0]]
        );
        assert!(mirror_combinations(&[]).is_empty());
    }

    #[test]
    fn mirroring_averages_the_unflipped_views() {
        // A model that is not mirror-equivariant: logits = the x coordinate of each voxel,
        // independent of the input. Flipping x back turns x into (w-1-x), so with mirroring
        // over x the average is (w-1)/2 everywhere; over y only, x is unchanged.
        let w = 6;
        let model = |batch: &Tensor| -> Result<Tensor, TchError> {
            let ramp = Tensor::f_arange(w, (Kind::Float, Device::Cpu))?;
            let (b, _, h, _) = batch.size4()?;
            ramp.f_expand([b, 1, h, w], false)
        };
        let batch = Tensor::zeros([2, 1, 4, w], (Kind::Float, Device::Cpu));
        let x_mirrored = predict_with_mirroring(&model, &batch, Some(&[1])).unwrap();
        assert!(x_mirrored.allclose(&batch.ones_like().g_mul_scalar(2.5), 0.0, 0.0, false));
        let y_mirrored = predict_with_mirroring(&model, &batch, Some(&[0])).unwrap();
        assert!(y_mirrored.equal(&model(&batch).unwrap()));
        let both = predict_with_mirroring(&model, &batch, Some(&[0, 1])).unwrap();
        assert!(both.allclose(&x_mirrored, 0.0, 0.0, false));
    }
}
