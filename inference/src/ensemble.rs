//! Fold ensembling: the mean of several models' sliding-window logits.
//!
//! nnU-Net: `predict_from_raw_data.py::predict_logits_from_preprocessed_data` sums each fold's
//! logits on the CPU, in the buffers' float16, and divides by the number of folds (logits, not
//! probabilities; configuration ensembles average probabilities instead, in
//! `autoseg-evaluation`).

use tch::{Device, Tensor};

use crate::sliding_window::Window;
use crate::{InferenceError, Segmenter, SlidingWindowSettings};

/// The mean logits of `models` over `data`, on the CPU.
///
/// Each model runs [`sliding_window_logits`](crate::sliding_window_logits) with `settings`
/// (the image is padded and the Gaussian weights summed once for all of them: they are the same
/// for every model); the results are moved to the CPU and summed in order in
/// `settings.accumulator`'s kind, then divided by the number of models (not at all for one
/// model, whose logits come back unchanged).
///
/// # Shapes
/// `data`: `[c, z, y, x]`; returns `[n_classes, z, y, x]` on the CPU.
///
/// # Errors
/// [`InferenceError::EmptyEnsemble`]; [`InferenceError::EnsembleShapeMismatch`] when models
/// disagree on the number of classes; `sliding_window_logits`'s errors.
pub fn ensemble_logits(
    models: &[&dyn Segmenter],
    data: &Tensor,
    settings: &SlidingWindowSettings,
) -> Result<Tensor, InferenceError> {
    let (first, rest) = models.split_first().ok_or(InferenceError::EmptyEnsemble)?;
    let window = Window::new(data, settings)?;
    let mut sum = window.logits(*first)?.f_to_device(Device::Cpu)?;
    for (idx, model) in rest.iter().enumerate() {
        let logits = window.logits(*model)?.f_to_device(Device::Cpu)?;
        if logits.size() != sum.size() {
            return Err(InferenceError::EnsembleShapeMismatch {
                index: idx + 1,
                expected: sum.size(),
                found: logits.size(),
            });
        }
        // In place (nnU-Net's `prediction +=`); the returned alias is not needed.
        let _ = sum.f_add_(&logits)?;
    }
    if models.len() > 1 {
        let _ = sum.f_div_scalar_(models.len() as f64)?;
    }
    Ok(sum)
}
