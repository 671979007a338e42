//! `autoseg-inference`: predicting new cases with trained models.
//!
//! Owns the Gaussian-weighted sliding window, mirroring test-time augmentation, fold and
//! configuration ensembling, export of masks and probabilities to the input's own geometry, and
//! applying the chosen postprocessing.
//!
//! Must not: train, or decide anything the plan or `best.toml` already decided.
