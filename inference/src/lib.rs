//! `autoseg-inference`: predicting new cases with trained models.
//!
//! Owns the Gaussian-weighted sliding window, mirroring test-time augmentation, fold and
//! configuration ensembling, export of masks and probabilities to the input's own geometry, and
//! applying the chosen postprocessing.
//!
//! Must not: train, or decide anything the plan or `best.toml` already decided.
//!
//! # Overview
//! - [`Segmenter`]: what the window runs; implemented for the network's `UNet` and for
//!   closures `Fn(&Tensor) -> Result<Tensor, TchError>`.
//! - [`sliding_window_logits`]: nnU-Net's sliding window over a preprocessed `[c, z, y, x]`
//!   image ([`compute_steps`], [`pad_to_patch`], [`gaussian_importance_map`], mirroring TTA via
//!   [`predict_with_mirroring`]), configured by [`SlidingWindowSettings`]. 2D patches run on
//!   every slice of axis 0.
//! - [`ensemble_logits`]: fold ensembling, the mean of the folds' logits.
//! - [`probabilities`], [`segmentation`], [`label_map_to_array`], [`tensor_to_array4`],
//!   [`array4_to_tensor`]: from logits to exported probabilities and label maps.
//!
//! Tensors are `(c, z, y, x)` like every array in autoseg.
//!
//! Buffers are float16 by default, as nnU-Net's ([`Accumulator::Half`]): the logits then equal
//! nnU-Net's bit for bit on the CPU (tested against its code). That includes a quirk: where only
//! the far borders of tiles reach (near corners of the image), the Gaussian weights are float16
//! subnormals and the blended logits are coarsely quantised (off by up to ~0.5 for inputs in
//! [-1, 1]). [`Accumulator::Float`] avoids it at twice the buffer memory.
//!
//! # Example
//! ```
//! use autoseg_inference::{sliding_window_logits, SlidingWindowSettings};
//! use tch::{Device, Kind, TchError, Tensor};
//!
//! // A "model" whose logits are its input (one channel in, one class out).
//! let identity = |batch: &Tensor| -> Result<Tensor, TchError> { Ok(batch.shallow_clone()) };
//! let image = Tensor::ones([1, 20, 24, 24], (Kind::Float, Device::Cpu));
//! let settings = SlidingWindowSettings::nnunet(&[16, 16, 16], Some(&[0, 1, 2]), Device::Cpu);
//! let logits = sliding_window_logits(&identity, &image, &settings)?;
//! assert_eq!(logits.size(), vec![1, 20, 24, 24]);
//! // Weighted means of ones are one, even where tiles overlap.
//! assert!(logits.to_kind(Kind::Float).allclose(&image, 1e-3, 0.0, false));
//! # Ok::<(), autoseg_inference::InferenceError>(())
//! ```

mod accumulate;
mod cascade;
mod convert;
mod elements;
mod ensemble;
mod error;
mod export;
mod gaussian;
mod predictor;
mod segmenter;
mod sliding_window;
mod tiling;
mod timing;

pub use cascade::next_stage_segmentation;
pub use convert::{
    array4_to_tensor, label_map_to_array, probabilities, probabilities_array, segmentation,
    tensor_to_array4,
};
pub use ensemble::ensemble_logits;
pub use error::InferenceError;
pub use export::{export_logits, ExportError, ExportSpec, ExportedCase};
pub use gaussian::{gaussian_importance_map, NNUNET_SIGMA_SCALE, NNUNET_VALUE_SCALING};
pub use predictor::validation::{
    evaluate_validation, predict_validation_cases, validate_fold, ValidationJob,
};
pub use predictor::{
    already_predicted, case_id_of, discover_input_cases, export_model, export_nnunet,
    import_nnunet, is_model_zip, is_nnunet_model_folder, is_nnunet_results_folder,
    nnunet_postprocessing, nnunet_zip_configurations, read_nnunet_best_choice,
    read_nnunet_postprocessing, select_cases, unpack_model_zip, unpack_nnunet_results_zip,
    unpack_nnunet_zip, CasePreprocessor, ImportSummary, InputCase, NnUnetBestChoice, Part,
    PredictError, PredictOptions, Prediction, Predictor, PreparedCase, RawImages,
    INFERENCE_INFORMATION,
};
pub use segmenter::{predict_with_mirroring, Segmenter};
pub use sliding_window::{sliding_window_logits, Accumulator, SlidingWindowSettings};
pub use tiling::{compute_steps, crop_padding, pad_to_patch, Padding};
pub use timing::{Phase, PhaseClock, PhaseGuard, PhaseTimes, TimedSegmenter};

// Re-exported so that the binary names devices without depending on tch.
pub use tch::Device;

// Re-exported so that callers name label rules without depending on the evaluation crate.
pub use autoseg_evaluation::SegmentationRule;
